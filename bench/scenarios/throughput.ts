/**
 * Scenario 2, throughput: actions per second with many calls in flight, 64 B and 1 KiB payloads.
 * (a) one agent with many concurrent callers; (b) 32 agents, each with its own caller. Next to it,
 * in the same process and interleaved: the JetStream floors F1 and F2 (bench/lib/floors.ts) with
 * as many mailboxes and calls in flight, and bare NATS core request/reply with the same number of
 * requests in flight (pipelined) to one responder, and to 32 responders. Durable replies are
 * judged against F2, core replies against F1.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { BenchEcho } from "../agents.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { FloorKind, openFloor } from "../lib/floors.ts";
import { bytes, ratio } from "../lib/stats.ts";

/** Calls in flight with one agent. */
const CALLERS_ONE_AGENT = 64;
const AGENTS = 32;

/** Run `callers` loops calling `call(i)` back to back for `ms`; returns completed calls per second. */
async function drive(callers: number, ms: number, call: (caller: number) => Promise<unknown>): Promise<number> {
  let done = 0;
  const deadline = performance.now() + ms;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      while (performance.now() < deadline) {
        await call(caller);
        done++;
      }
    }),
  );
  return done / ((performance.now() - start) / 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Row {
  shape: string;
  payloadBytes: number;
  callers: number;
  exchangePerS: number;
  /** Durable replies with effectively-once execution off (`resultWindowMs: 0`). */
  noRecordsPerS: number;
  coreRepliesPerS: number;
  bareNatsPerS: number;
  floorF1PerS: number;
  floorF2PerS: number;
  /** F1 and F2 with a result record stored per call (bench/lib/floors.ts). */
  floorF1rPerS: number;
  floorF2rPerS: number;
  /** Over bare NATS. */
  ratio: number;
  coreRatio: number;
  /** Exchange (durable replies) over F2. */
  vsF2: number;
  /** Exchange with core replies over F1. */
  coreVsF1: number;
  /** Durable replies without result records over F2. */
  noRecordsVsF2: number;
  /** Exchange over F2r, core replies over F1r: the same stored messages. */
  vsF2r: number;
  coreVsF1r: number;
}

const PAYLOADS = [64, 1024];

export default async function throughput(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick, server } = ctx;
  const windowMs = quick ? 1000 : 2000;
  const rounds = quick ? 2 : 3;

  await using durable = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("tp") }));
  await using noRecords = await Manager.fromExchangeFactory(
    new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("tpnorec"), resultWindowMs: 0 }),
  );
  await using fast = await Manager.fromExchangeFactory(
    new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("tpcore"), replies: "core" }),
  );
  const launch = (manager: Manager, count: number): Promise<Handle<BenchEcho>[]> =>
    Promise.all(Array.from({ length: count }, () => manager.launch(BenchEcho)));
  const durableAgents = await launch(durable, AGENTS);
  const noRecordsAgents = await launch(noRecords, AGENTS);
  const fastAgents = await launch(fast, AGENTS);

  const requester: NatsConnection = await connect({ servers: server.url, noAsyncTraces: true });
  const responder: NatsConnection = await connect({ servers: server.url });
  for (let i = 0; i < AGENTS; i++) responder.subscribe(`bench.tp.${i}`, { callback: (_error, msg) => void msg.respond(msg.data) });
  await responder.flush();
  const bare = (subject: string, payload: Uint8Array) => requester.request(subject, payload, { timeout: 30_000 });
  const f1 = await openFloor({ servers: server.url, prefix: ctx.prefix("tpf1"), kind: FloorKind.F1, agents: AGENTS });
  const f2 = await openFloor({ servers: server.url, prefix: ctx.prefix("tpf2"), kind: FloorKind.F2, agents: AGENTS });
  const f1r = await openFloor({ servers: server.url, prefix: ctx.prefix("tpf1r"), kind: FloorKind.F1, agents: AGENTS, records: true });
  const f2r = await openFloor({ servers: server.url, prefix: ctx.prefix("tpf2r"), kind: FloorKind.F2, agents: AGENTS, records: true });

  const shapes = [
    { shape: `1 agent, ${CALLERS_ONE_AGENT} callers`, callers: CALLERS_ONE_AGENT, agentOf: () => 0 },
    { shape: `${AGENTS} agents, ${AGENTS} callers`, callers: AGENTS, agentOf: (caller: number) => caller },
  ];
  const rows: Row[] = [];
  try {
    for (const size of PAYLOADS) {
      const payload = new Uint8Array(size).fill(7);
      for (const { shape, callers, agentOf } of shapes) {
        const paths: Array<[keyof typeof samples, (caller: number) => Promise<unknown>]> = [
          ["bare", (c) => bare(`bench.tp.${agentOf(c)}`, payload)],
          ["f2", (c) => f2.call(agentOf(c), payload)],
          ["exchange", (c) => durableAgents[agentOf(c)]!.echo(payload)],
          ["noRecords", (c) => noRecordsAgents[agentOf(c)]!.echo(payload)],
          ["f2r", (c) => f2r.call(agentOf(c), payload)],
          ["f1", (c) => f1.call(agentOf(c), payload)],
          ["f1r", (c) => f1r.call(agentOf(c), payload)],
          ["core", (c) => fastAgents[agentOf(c)]!.echo(payload)],
        ];
        const samples = { exchange: [] as number[], noRecords: [] as number[], core: [] as number[], bare: [] as number[], f1: [] as number[], f2: [] as number[], f1r: [] as number[], f2r: [] as number[] };
        // Warm up every path.
        for (const [, call] of paths) await drive(callers, 300, call);
        for (let round = 0; round < rounds; round++) {
          for (const [name, call] of paths) samples[name].push(await drive(callers, windowMs, call));
        }
        const row = {
          shape,
          payloadBytes: size,
          callers,
          exchangePerS: median(samples.exchange),
          noRecordsPerS: median(samples.noRecords),
          coreRepliesPerS: median(samples.core),
          bareNatsPerS: median(samples.bare),
          floorF1PerS: median(samples.f1),
          floorF2PerS: median(samples.f2),
          floorF1rPerS: median(samples.f1r),
          floorF2rPerS: median(samples.f2r),
        };
        rows.push({
          ...row,
          ratio: row.exchangePerS / row.bareNatsPerS,
          coreRatio: row.coreRepliesPerS / row.bareNatsPerS,
          vsF2: row.exchangePerS / row.floorF2PerS,
          coreVsF1: row.coreRepliesPerS / row.floorF1PerS,
          noRecordsVsF2: row.noRecordsPerS / row.floorF2PerS,
          vsF2r: row.exchangePerS / row.floorF2rPerS,
          coreVsF1r: row.coreRepliesPerS / row.floorF1rPerS,
        });
        ctx.log(
          `throughput ${shape}, ${bytes(size)}: exchange ${Math.round(row.exchangePerS)}/s (F2 ${Math.round(row.floorF2PerS)}/s, no records ${Math.round(row.noRecordsPerS)}/s), ` +
            `core replies ${Math.round(row.coreRepliesPerS)}/s (F1 ${Math.round(row.floorF1PerS)}/s), bare ${Math.round(row.bareNatsPerS)}/s`,
        );
      }
    }
  } finally {
    await requester.close();
    await responder.close();
    await f1.close();
    await f2.close();
    await f1r.close();
    await f2r.close();
  }

  const perS = (value: number): string => Math.round(value).toLocaleString("en-US");
  return {
    id: "throughput",
    title: "2. Throughput, actions per second: exchange (durable replies) vs floor F2, replies over core NATS vs floor F1, and pipelined bare NATS request/reply",
    headers: ["shape", "payload", "exchange /s", "F2 /s", "vs F2", "F2r /s", "vs F2r", "no records /s", "vs F2", "core replies /s", "F1 /s", "vs F1", "F1r /s", "vs F1r", "bare NATS /s", "vs bare", "core vs bare"],
    rows: rows.map((r) => [
      r.shape,
      bytes(r.payloadBytes),
      perS(r.exchangePerS),
      perS(r.floorF2PerS),
      ratio(r.vsF2),
      perS(r.floorF2rPerS),
      ratio(r.vsF2r),
      perS(r.noRecordsPerS),
      ratio(r.noRecordsVsF2),
      perS(r.coreRepliesPerS),
      perS(r.floorF1PerS),
      ratio(r.coreVsF1),
      perS(r.floorF1rPerS),
      ratio(r.coreVsF1r),
      perS(r.bareNatsPerS),
      ratio(r.ratio),
      ratio(r.coreRatio),
    ]),
    figures: { windowMs, rounds, rows },
    targets: rows.flatMap((r) => [
      { name: `throughput, ${r.shape}, ${bytes(r.payloadBytes)}, durable replies vs F2`, goal: ">= 0.8x", measured: ratio(r.vsF2), met: r.vsF2 >= 0.8 },
      { name: `throughput, ${r.shape}, ${bytes(r.payloadBytes)}, core replies vs F1`, goal: ">= 0.8x", measured: ratio(r.coreVsF1), met: r.coreVsF1 >= 0.8 },
    ]),
    notes: [
      `Median of ${rounds} windows of ${windowMs} ms per path, interleaved (bare, F2, exchange, no records, F2r, F1, F1r, core replies); callers, agents, floors and responders all run in this process.`,
      "F1/F2: the same durable messages with no runtime code (bench/lib/floors.ts), one mailbox and consumer per agent, one caller mailbox (F2) as the exchange's one user client has.",
      "F1r / F2r = F1 / F2 with the reply also stored as a result record, as the exchange does by default (effectively-once execution): the same stored messages as the exchange, with no runtime code.",
      "no records = durable replies with effectively-once execution off (resultWindowMs: 0): no result record written after each action (a third stored message per call, which F2 does not have).",
      "Each action is one JetStream publish and acknowledgement plus the response; bare NATS is one core message each way.",
    ],
  };
}

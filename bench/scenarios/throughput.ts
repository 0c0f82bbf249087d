/**
 * Scenario 2, throughput: actions per second with many calls in flight. (a) one agent with many
 * concurrent callers; (b) 32 agents, each with its own caller. Next to it, in the same process
 * and interleaved: bare NATS core request/reply with the same number of requests in flight
 * (pipelined) to one responder, and to 32 responders.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { BenchEcho } from "../agents.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { ratio } from "../lib/stats.ts";

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
  callers: number;
  exchangePerS: number;
  coreRepliesPerS: number;
  bareNatsPerS: number;
  ratio: number;
  coreRatio: number;
}

export default async function throughput(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick, server } = ctx;
  const windowMs = quick ? 1500 : 4000;
  const rounds = quick ? 2 : 3;
  const payload = new Uint8Array(64).fill(7);

  await using durable = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("tp") }));
  await using fast = await Manager.fromExchangeFactory(
    new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("tpcore"), replies: "core" }),
  );
  const launch = (manager: Manager, count: number): Promise<Handle<BenchEcho>[]> =>
    Promise.all(Array.from({ length: count }, () => manager.launch(BenchEcho)));
  const durableAgents = await launch(durable, AGENTS);
  const fastAgents = await launch(fast, AGENTS);

  const requester: NatsConnection = await connect({ servers: server.url, noAsyncTraces: true });
  const responder: NatsConnection = await connect({ servers: server.url });
  for (let i = 0; i < AGENTS; i++) responder.subscribe(`bench.tp.${i}`, { callback: (_error, msg) => void msg.respond(msg.data) });
  await responder.flush();
  const bare = (subject: string) => requester.request(subject, payload, { timeout: 30_000 });

  const shapes = [
    { shape: `1 agent, ${CALLERS_ONE_AGENT} callers`, callers: CALLERS_ONE_AGENT, agentOf: () => 0 },
    { shape: `${AGENTS} agents, ${AGENTS} callers`, callers: AGENTS, agentOf: (caller: number) => caller },
  ];
  const rows: Row[] = [];
  try {
    for (const { shape, callers, agentOf } of shapes) {
      const samples = { exchange: [] as number[], core: [] as number[], bare: [] as number[] };
      // Warm up every path.
      await drive(callers, 300, (c) => durableAgents[agentOf(c)]!.echo(payload));
      await drive(callers, 300, (c) => fastAgents[agentOf(c)]!.echo(payload));
      await drive(callers, 300, (c) => bare(`bench.tp.${agentOf(c)}`));
      for (let round = 0; round < rounds; round++) {
        samples.bare.push(await drive(callers, windowMs, (c) => bare(`bench.tp.${agentOf(c)}`)));
        samples.exchange.push(await drive(callers, windowMs, (c) => durableAgents[agentOf(c)]!.echo(payload)));
        samples.core.push(await drive(callers, windowMs, (c) => fastAgents[agentOf(c)]!.echo(payload)));
      }
      const row = { shape, callers, exchangePerS: median(samples.exchange), coreRepliesPerS: median(samples.core), bareNatsPerS: median(samples.bare) };
      rows.push({ ...row, ratio: row.exchangePerS / row.bareNatsPerS, coreRatio: row.coreRepliesPerS / row.bareNatsPerS });
      ctx.log(`throughput ${shape}: exchange ${Math.round(row.exchangePerS)}/s, bare ${Math.round(row.bareNatsPerS)}/s`);
    }
  } finally {
    await requester.close();
    await responder.close();
  }

  const perS = (value: number): string => Math.round(value).toLocaleString("en-US");
  return {
    id: "throughput",
    title: "2. Throughput, 64 B actions per second: exchange (durable replies) and replies over core NATS, vs pipelined bare NATS request/reply",
    headers: ["shape", "exchange /s", "core replies /s", "bare NATS /s", "ratio", "core ratio"],
    rows: rows.map((r) => [r.shape, perS(r.exchangePerS), perS(r.coreRepliesPerS), perS(r.bareNatsPerS), ratio(r.ratio), ratio(r.coreRatio)]),
    figures: { windowMs, rounds, payloadBytes: payload.byteLength, rows },
    targets: rows.flatMap((r) => [
      { name: `throughput, ${r.shape}, vs bare NATS`, goal: ">= 0.5x", measured: ratio(r.ratio), met: r.ratio >= 0.5 },
      { name: `the same, replies over core NATS`, goal: ">= 0.5x", measured: ratio(r.coreRatio), met: r.coreRatio >= 0.5 },
    ]),
    notes: [
      `Median of ${rounds} windows of ${windowMs} ms per path, interleaved; callers, agents and responders all run in this process.`,
      "Each action is one JetStream publish and acknowledgement plus the response; bare NATS is one core message each way.",
    ],
  };
}

/**
 * Scenario 1, action round trip: a user calls an agent's action and waits for the answer,
 * sequentially, with payloads of 64 B to 1 MiB. Next to it, in the same process and interleaved
 * round by round: the JetStream floors F1 and F2 (bench/lib/floors.ts: the same durable messages
 * with no runtime code), a bare NATS core request/reply with the same payload, and the in-process
 * exchange (no network at all). Durable replies are judged against F2, core replies against F1.
 */
import { connect } from "@nats-io/transport-node";
import { LocalExchangeFactory, Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { BenchEcho } from "../agents.ts";
import { FloorKind, openFloor } from "../lib/floors.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { bytes, ms, ratio, summarize, time } from "../lib/stats.ts";
import type { Summary } from "../lib/stats.ts";

const SIZES = [64, 1024, 100 * 1024, 1024 * 1024];

interface Row {
  payloadBytes: number;
  exchange: Summary;
  coreReplies: Summary;
  bareNats: Summary;
  inProcess: Summary;
  /** Durable replies with effectively-once execution off (`resultWindowMs: 0`). */
  noRecords: Summary;
  /** F1: request stored, reply over core NATS, no runtime code. */
  floorF1: Summary;
  /** F2: request and reply stored, no runtime code. */
  floorF2: Summary;
  /** F1 and F2 with a result record stored per call, as the exchange does by default. */
  floorF1r: Summary;
  floorF2r: Summary;
  /** Exchange p50 over bare NATS p50 (same payload, same run). */
  p50Ratio: number;
  /** The same with replies over core NATS. */
  coreRepliesP50Ratio: number;
  /** Exchange (durable replies) p50 over F2's. */
  p50VsF2: number;
  /** The same without result records. */
  noRecordsP50VsF2: number;
  /** Exchange with core replies, p50 over F1's. */
  coreRepliesP50VsF1: number;
  /** Exchange (durable replies, records) over F2r, core replies over F1r: the same stored messages. */
  p50VsF2r: number;
  coreRepliesP50VsF1r: number;
}

/** Payload sizes the targets judge (the floors are measured at every size). */
const JUDGED = [64, 1024];

export default async function roundTrip(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick, server } = ctx;
  await using durable = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("rt") }));
  await using fast = await Manager.fromExchangeFactory(
    new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("rtcore"), replies: "core" }),
  );
  // Durable replies without effectively-once execution: no result record read before each action
  // and written after it (what the floors do not have either).
  await using noRecords = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("rtnorec"), resultWindowMs: 0 }));
  await using local = await Manager.fromExchangeFactory(new LocalExchangeFactory({ maxPayload: 8 * 1024 * 1024 }));
  const paths: Array<[keyof typeof samplesTemplate, Handle<BenchEcho>]> = [
    ["exchange", await durable.launch(BenchEcho)],
    ["coreReplies", await fast.launch(BenchEcho)],
    ["noRecords", await noRecords.launch(BenchEcho)],
    ["inProcess", await local.launch(BenchEcho)],
  ];
  const samplesTemplate = { exchange: [] as number[], coreReplies: [] as number[], bareNats: [] as number[], inProcess: [] as number[], floorF1: [] as number[], floorF2: [] as number[], floorF1r: [] as number[], floorF2r: [] as number[], noRecords: [] as number[] };
  const f1 = await openFloor({ servers: server.url, prefix: ctx.prefix("rtf1"), kind: FloorKind.F1, agents: 1 });
  const f2 = await openFloor({ servers: server.url, prefix: ctx.prefix("rtf2"), kind: FloorKind.F2, agents: 1 });
  const f1r = await openFloor({ servers: server.url, prefix: ctx.prefix("rtf1r"), kind: FloorKind.F1, agents: 1, records: true });
  const f2r = await openFloor({ servers: server.url, prefix: ctx.prefix("rtf2r"), kind: FloorKind.F2, agents: 1, records: true });
  const floors: Array<[keyof typeof samplesTemplate, (payload: Uint8Array) => Promise<unknown>]> = [
    ["floorF1", (payload) => f1.call(0, payload)],
    ["floorF2", (payload) => f2.call(0, payload)],
    ["floorF1r", (payload) => f1r.call(0, payload)],
    ["floorF2r", (payload) => f2r.call(0, payload)],
  ];

  const nc = await connect({ servers: server.url, noAsyncTraces: true });
  const subject = "bench.rt.echo";
  const responder = await connect({ servers: server.url });
  responder.subscribe(subject, { callback: (_error, msg) => void msg.respond(msg.data) });
  await responder.flush();
  const bare = (payload: Uint8Array) => nc.request(subject, payload, { timeout: 10_000 });

  const rows: Row[] = [];
  try {
    for (const size of SIZES) {
      const payload = new Uint8Array(size).fill(7);
      const big = size >= 100 * 1024;
      const rounds = quick ? 5 : 20;
      const perRound = quick ? (big ? 10 : 100) : big ? 25 : 250;
      const samples = { exchange: [] as number[], coreReplies: [] as number[], bareNats: [] as number[], inProcess: [] as number[], floorF1: [] as number[], floorF2: [] as number[], floorF1r: [] as number[], floorF2r: [] as number[], noRecords: [] as number[] };
      // Warm every path (JIT, buffers, the registry view) before measuring.
      for (let i = 0; i < (big ? 20 : 300); i++) {
        for (const [, handle] of paths) await handle.echo(payload);
        for (const [, call] of floors) await call(payload);
        await bare(payload);
      }
      for (let round = 0; round < rounds; round++) {
        for (let i = 0; i < perRound; i++) await time(samples.bareNats, () => bare(payload));
        for (const [name, call] of floors) for (let i = 0; i < perRound; i++) await time(samples[name], () => call(payload));
        for (const [name, handle] of paths) for (let i = 0; i < perRound; i++) await time(samples[name], () => handle.echo(payload));
      }
      const row = {
        payloadBytes: size,
        exchange: summarize(samples.exchange),
        coreReplies: summarize(samples.coreReplies),
        bareNats: summarize(samples.bareNats),
        inProcess: summarize(samples.inProcess),
        floorF1: summarize(samples.floorF1),
        floorF2: summarize(samples.floorF2),
        floorF1r: summarize(samples.floorF1r),
        floorF2r: summarize(samples.floorF2r),
        noRecords: summarize(samples.noRecords),
      };
      rows.push({
        ...row,
        p50Ratio: row.exchange.p50Ms / row.bareNats.p50Ms,
        coreRepliesP50Ratio: row.coreReplies.p50Ms / row.bareNats.p50Ms,
        p50VsF2: row.exchange.p50Ms / row.floorF2.p50Ms,
        noRecordsP50VsF2: row.noRecords.p50Ms / row.floorF2.p50Ms,
        coreRepliesP50VsF1: row.coreReplies.p50Ms / row.floorF1.p50Ms,
        p50VsF2r: row.exchange.p50Ms / row.floorF2r.p50Ms,
        coreRepliesP50VsF1r: row.coreReplies.p50Ms / row.floorF1r.p50Ms,
      });
      ctx.log(`round trip ${bytes(size)}: exchange p50 ${ms(row.exchange.p50Ms)} ms, F2 ${ms(row.floorF2.p50Ms)} ms, core replies ${ms(row.coreReplies.p50Ms)} ms, F1 ${ms(row.floorF1.p50Ms)} ms, bare ${ms(row.bareNats.p50Ms)} ms`);
    }
  } finally {
    await nc.close();
    await responder.close();
    await f1.close();
    await f2.close();
    await f1r.close();
    await f2r.close();
  }

  const judged = rows.filter((r) => JUDGED.includes(r.payloadBytes));
  return {
    id: "roundTrip",
    title: "1. Action round trip, sequential (ms): exchange (durable replies) vs floor F2, replies over core NATS vs floor F1, and bare NATS request/reply and in-process",
    headers: ["payload", "exchange p50", "p99", "F2 p50", "vs F2", "F2r p50", "vs F2r", "no records p50", "vs F2", "core replies p50", "p99", "F1 p50", "vs F1", "F1r p50", "vs F1r", "bare NATS p50", "p99", "in-process p50", "vs bare", "core vs bare"],
    rows: rows.map((r) => [
      bytes(r.payloadBytes),
      ms(r.exchange.p50Ms),
      ms(r.exchange.p99Ms),
      ms(r.floorF2.p50Ms),
      ratio(r.p50VsF2),
      ms(r.floorF2r.p50Ms),
      ratio(r.p50VsF2r),
      ms(r.noRecords.p50Ms),
      ratio(r.noRecordsP50VsF2),
      ms(r.coreReplies.p50Ms),
      ms(r.coreReplies.p99Ms),
      ms(r.floorF1.p50Ms),
      ratio(r.coreRepliesP50VsF1),
      ms(r.floorF1r.p50Ms),
      ratio(r.coreRepliesP50VsF1r),
      ms(r.bareNats.p50Ms),
      ms(r.bareNats.p99Ms),
      ms(r.inProcess.p50Ms),
      ratio(r.p50Ratio),
      ratio(r.coreRepliesP50Ratio),
    ]),
    figures: rows,
    targets: judged.flatMap((r) => [
      { name: `round trip p50, ${bytes(r.payloadBytes)}, durable replies vs F2`, goal: "<= 1.25x", measured: ratio(r.p50VsF2), met: r.p50VsF2 <= 1.25 },
      { name: `round trip p50, ${bytes(r.payloadBytes)}, core replies vs F1`, goal: "<= 1.15x", measured: ratio(r.coreRepliesP50VsF1), met: r.coreRepliesP50VsF1 <= 1.15 },
    ]),
    notes: [
      "F1 = the request stored in a work-queue stream (Nats-Msg-Id, PubAck awaited with the reply), a push consumer, a core reply, then the ack; F2 = the same with the reply stored in the caller's mailbox in that stream and the request acked after its PubAck. Raw payloads, no runtime code, one connection as the exchange has (bench/lib/floors.ts).",
      "F1r / F2r = F1 / F2 with the reply also stored as a result record (a KV publish beside the reply; the request acked once both are stored): the same stored messages as the exchange with effectively-once execution on, its default, still with no runtime code. vs F2r / vs F1r isolate the runtime's own cost.",
      "no records = durable replies with effectively-once execution off (resultWindowMs: 0): no result record read before each action and written after it, which the floors do not have either.",
      "vs F2 / vs F1 = exchange p50 / floor p50; vs bare = exchange p50 / bare NATS p50, of the same payload in the same run. Every path runs in this one process, interleaved round by round.",
      "The exchange stores each request in JetStream before the agent sees it, and (durable replies) each response before the caller sees it.",
    ],
  };
}

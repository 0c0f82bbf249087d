/**
 * Scenario 1, action round trip: a user calls an agent's action and waits for the answer,
 * sequentially, with payloads of 64 B to 1 MiB. Next to it, in the same process and interleaved
 * round by round: a bare NATS core request/reply with the same payload, and the in-process
 * exchange (no network at all).
 */
import { connect } from "@nats-io/transport-node";
import { LocalExchangeFactory, Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { BenchEcho } from "../agents.ts";
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
  /** Exchange p50 over bare NATS p50 (same payload, same run). */
  p50Ratio: number;
  /** The same with replies over core NATS. */
  coreRepliesP50Ratio: number;
}

export default async function roundTrip(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick, server } = ctx;
  await using durable = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("rt") }));
  await using fast = await Manager.fromExchangeFactory(
    new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("rtcore"), replies: "core" }),
  );
  await using local = await Manager.fromExchangeFactory(new LocalExchangeFactory({ maxPayload: 8 * 1024 * 1024 }));
  const paths: Array<[keyof typeof samplesTemplate, Handle<BenchEcho>]> = [
    ["exchange", await durable.launch(BenchEcho)],
    ["coreReplies", await fast.launch(BenchEcho)],
    ["inProcess", await local.launch(BenchEcho)],
  ];
  const samplesTemplate = { exchange: [] as number[], coreReplies: [] as number[], bareNats: [] as number[], inProcess: [] as number[] };

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
      const samples = { exchange: [] as number[], coreReplies: [] as number[], bareNats: [] as number[], inProcess: [] as number[] };
      // Warm every path (JIT, buffers, the registry view) before measuring.
      for (let i = 0; i < (big ? 20 : 300); i++) {
        for (const [, handle] of paths) await handle.echo(payload);
        await bare(payload);
      }
      for (let round = 0; round < rounds; round++) {
        for (let i = 0; i < perRound; i++) await time(samples.bareNats, () => bare(payload));
        for (const [name, handle] of paths) for (let i = 0; i < perRound; i++) await time(samples[name], () => handle.echo(payload));
      }
      const row = {
        payloadBytes: size,
        exchange: summarize(samples.exchange),
        coreReplies: summarize(samples.coreReplies),
        bareNats: summarize(samples.bareNats),
        inProcess: summarize(samples.inProcess),
      };
      rows.push({ ...row, p50Ratio: row.exchange.p50Ms / row.bareNats.p50Ms, coreRepliesP50Ratio: row.coreReplies.p50Ms / row.bareNats.p50Ms });
      ctx.log(`round trip ${bytes(size)}: exchange p50 ${ms(row.exchange.p50Ms)} ms, bare ${ms(row.bareNats.p50Ms)} ms`);
    }
  } finally {
    await nc.close();
    await responder.close();
  }

  const first = rows[0]!;
  return {
    id: "roundTrip",
    title: "1. Action round trip, sequential (ms): exchange (durable replies) and with replies over core NATS, vs bare NATS request/reply and in-process",
    headers: ["payload", "exchange p50", "p99", "core replies p50", "p99", "bare NATS p50", "p99", "in-process p50", "p99", "ratio", "core ratio"],
    rows: rows.map((r) => [
      bytes(r.payloadBytes),
      ms(r.exchange.p50Ms),
      ms(r.exchange.p99Ms),
      ms(r.coreReplies.p50Ms),
      ms(r.coreReplies.p99Ms),
      ms(r.bareNats.p50Ms),
      ms(r.bareNats.p99Ms),
      ms(r.inProcess.p50Ms),
      ms(r.inProcess.p99Ms),
      ratio(r.p50Ratio),
      ratio(r.coreRepliesP50Ratio),
    ]),
    figures: rows,
    targets: [
      { name: "round trip p50, 64 B, vs bare NATS", goal: "<= 2x", measured: ratio(first.p50Ratio), met: first.p50Ratio <= 2 },
      { name: "the same, replies over core NATS", goal: "<= 2x", measured: ratio(first.coreRepliesP50Ratio), met: first.coreRepliesP50Ratio <= 2 },
    ],
    notes: [
      "ratio = exchange p50 / bare NATS p50 of the same payload in the same run. Both sides of every path run in this one process.",
      "The exchange stores each request in JetStream before the agent sees it, and (durable replies) each response before the caller sees it.",
    ],
  };
}

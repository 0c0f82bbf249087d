/**
 * Scenario 9, the cost of effectively-once execution: the same agent with result records (the
 * default, `resultWindowMs` 10 minutes) and without (`resultWindowMs: 0`), side by side in one run,
 * interleaved round by round: sequential round trips (64 B and 100 KiB), and pipelined throughput
 * (one agent with 64 callers; 32 agents with a caller each). With records, each action costs one
 * read of the results bucket at its stream's leader before it runs (on the agent's critical path)
 * and one KV write concurrent with the response (off the caller's path, before the ack).
 */
import { Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { BenchEcho } from "../agents.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { bytes, ms, ratio, summarize, time } from "../lib/stats.ts";
import type { Summary } from "../lib/stats.ts";

const SIZES = [64, 100 * 1024];
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

interface LatencyRow {
  payloadBytes: number;
  once: Summary;
  atLeastOnce: Summary;
  p50Ratio: number;
  p99Ratio: number;
}

interface ThroughputRow {
  shape: string;
  oncePerS: number;
  atLeastOncePerS: number;
  ratio: number;
}

export default async function effectivelyOnce(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick, server } = ctx;
  await using once = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("once") }));
  await using plain = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("noonce"), resultWindowMs: 0 }));
  const launch = (manager: Manager, count: number): Promise<Handle<BenchEcho>[]> => Promise.all(Array.from({ length: count }, () => manager.launch(BenchEcho)));
  const onceAgents = await launch(once, AGENTS);
  const plainAgents = await launch(plain, AGENTS);

  const latency: LatencyRow[] = [];
  for (const size of SIZES) {
    const payload = new Uint8Array(size).fill(7);
    const big = size >= 100 * 1024;
    const rounds = quick ? 5 : 20;
    const perRound = quick ? (big ? 10 : 100) : big ? 25 : 250;
    const samples = { once: [] as number[], atLeastOnce: [] as number[] };
    for (let i = 0; i < (big ? 20 : 300); i++) {
      await onceAgents[0]!.echo(payload);
      await plainAgents[0]!.echo(payload);
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < perRound; i++) await time(samples.atLeastOnce, () => plainAgents[0]!.echo(payload));
      for (let i = 0; i < perRound; i++) await time(samples.once, () => onceAgents[0]!.echo(payload));
    }
    const row = { payloadBytes: size, once: summarize(samples.once), atLeastOnce: summarize(samples.atLeastOnce) };
    latency.push({ ...row, p50Ratio: row.once.p50Ms / row.atLeastOnce.p50Ms, p99Ratio: row.once.p99Ms / row.atLeastOnce.p99Ms });
    ctx.log(`effectively-once round trip ${bytes(size)}: p50 ${ms(row.once.p50Ms)} ms with records, ${ms(row.atLeastOnce.p50Ms)} ms without`);
  }

  const windowMs = quick ? 1500 : 4000;
  const rounds = quick ? 2 : 3;
  const payload = new Uint8Array(64).fill(7);
  const shapes = [
    { shape: `1 agent, ${CALLERS_ONE_AGENT} callers`, callers: CALLERS_ONE_AGENT, agentOf: () => 0 },
    { shape: `${AGENTS} agents, ${AGENTS} callers`, callers: AGENTS, agentOf: (caller: number) => caller },
  ];
  const throughput: ThroughputRow[] = [];
  for (const { shape, callers, agentOf } of shapes) {
    const samples = { once: [] as number[], atLeastOnce: [] as number[] };
    await drive(callers, 300, (c) => onceAgents[agentOf(c)]!.echo(payload));
    await drive(callers, 300, (c) => plainAgents[agentOf(c)]!.echo(payload));
    for (let round = 0; round < rounds; round++) {
      samples.atLeastOnce.push(await drive(callers, windowMs, (c) => plainAgents[agentOf(c)]!.echo(payload)));
      samples.once.push(await drive(callers, windowMs, (c) => onceAgents[agentOf(c)]!.echo(payload)));
    }
    const row = { shape, oncePerS: median(samples.once), atLeastOncePerS: median(samples.atLeastOnce) };
    throughput.push({ ...row, ratio: row.oncePerS / row.atLeastOncePerS });
    ctx.log(`effectively-once throughput ${shape}: ${Math.round(row.oncePerS)}/s with records, ${Math.round(row.atLeastOncePerS)}/s without`);
  }

  const perS = (value: number): string => Math.round(value).toLocaleString("en-US");
  const small = latency[0]!;
  return {
    id: "effectivelyOnce",
    title: "9. The cost of effectively-once execution: with result records (default) vs without (resultWindowMs: 0), durable replies",
    headers: ["measure", "with records", "without", "ratio"],
    rows: [
      ...latency.flatMap((r) => [
        [`round trip p50, ${bytes(r.payloadBytes)} (ms)`, ms(r.once.p50Ms), ms(r.atLeastOnce.p50Ms), ratio(r.p50Ratio)],
        [`round trip p99, ${bytes(r.payloadBytes)} (ms)`, ms(r.once.p99Ms), ms(r.atLeastOnce.p99Ms), ratio(r.p99Ratio)],
      ]),
      ...throughput.map((r) => [`throughput, ${r.shape} (/s)`, perS(r.oncePerS), perS(r.atLeastOncePerS), ratio(r.ratio)]),
    ],
    figures: { latency, throughput: { windowMs, rounds, payloadBytes: payload.byteLength, rows: throughput } },
    targets: [
      { name: "effectively-once round trip p50, 64 B, vs without", goal: "<= 1.3x", measured: ratio(small.p50Ratio), met: small.p50Ratio <= 1.3 },
      ...throughput.map((r) => ({ name: `effectively-once throughput, ${r.shape}, vs without`, goal: ">= 0.7x", measured: ratio(r.ratio), met: r.ratio >= 0.7 })),
    ],
    notes: [
      "ratio = with records / without, same payload, same run, interleaved; both agents on the same server and in this process.",
      "With records each action adds one read at the results bucket's leader before it runs and one KV write beside the response.",
    ],
  };
}

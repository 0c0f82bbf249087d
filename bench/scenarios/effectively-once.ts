/**
 * Scenario 9, the cost of effectively-once execution: the same agent with result records (the
 * default, `resultWindowMs` 10 minutes) and without (`resultWindowMs: 0`), side by side in one run,
 * interleaved round by round: sequential round trips (64 B and 100 KiB), and pipelined throughput
 * (one agent with 64 callers; 32 agents with a caller each). With records, each action costs one
 * read of the results bucket at its stream's leader before it runs (on the agent's critical path)
 * and one KV write concurrent with the response (off the caller's path, before the ack).
 *
 * Only deliveries that may be duplicates read their record (PROTOCOL.md 10.10); a third agent,
 * whose deliveries are all marked as possible duplicates (the behaviour before that rule: every
 * delivery read its record), is measured beside them, interleaved the same way.
 */
import { AgentEngine, Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { ExchangeFactory, Handle, RequestDelivery } from "../../src/index.ts";
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

/**
 * `factory`, with every request delivery to its agents marked as a possible duplicate: each reads
 * its result record before the action runs, as every delivery did before the duplicate rule. Only
 * engines given this factory itself see the marks (a manager's engines take the factory of its
 * client, the unwrapped one).
 */
function readingEveryDelivery(factory: ExchangeFactory): ExchangeFactory {
  const mark = (delivery: RequestDelivery): RequestDelivery => Object.create(delivery, { mayBeDuplicate: { value: true } }) as RequestDelivery;
  return new Proxy(factory, {
    get(target, property) {
      if (property === "createAgentClient") {
        return (registration: Parameters<ExchangeFactory["createAgentClient"]>[0], handler: (d: RequestDelivery) => void, options?: Parameters<ExchangeFactory["createAgentClient"]>[2]) =>
          target.createAgentClient(registration, (delivery) => handler(mark(delivery)), options);
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface LatencyRow {
  payloadBytes: number;
  once: Summary;
  /** Records, every delivery reading its record (the behaviour before the duplicate rule). */
  readEvery: Summary;
  atLeastOnce: Summary;
  p50Ratio: number;
  p99Ratio: number;
  readEveryP50Ratio: number;
}

interface ThroughputRow {
  shape: string;
  oncePerS: number;
  readEveryPerS: number;
  atLeastOncePerS: number;
  ratio: number;
  readEveryRatio: number;
}

export default async function effectivelyOnce(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick, server } = ctx;
  await using once = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("once") }));
  await using plain = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("noonce"), resultWindowMs: 0 }));
  const everyFactory = new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("readevery") });
  const everyUser = await everyFactory.createUserClient();
  const everyRuns: Array<{ engine: AgentEngine<BenchEcho>; running: Promise<void> }> = [];
  await using _every = {
    async [Symbol.asyncDispose]() {
      for (const run of everyRuns) run.engine.requestShutdown({ expected: true });
      await Promise.allSettled(everyRuns.map((run) => run.running));
      await everyUser.close();
      await everyFactory.close();
    },
  };
  const launch = (manager: Manager, count: number): Promise<Handle<BenchEcho>[]> => Promise.all(Array.from({ length: count }, () => manager.launch(BenchEcho)));
  const onceAgents = await launch(once, AGENTS);
  const plainAgents = await launch(plain, AGENTS);
  const everyAgents: Handle<BenchEcho>[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const registration = await everyUser.registerAgent(BenchEcho);
    const engine = new AgentEngine(new BenchEcho(), { exchangeFactory: readingEveryDelivery(everyFactory), registration });
    everyRuns.push({ engine, running: engine.run() });
    everyAgents.push(everyUser.getHandle(registration.agentId));
  }

  const latency: LatencyRow[] = [];
  for (const size of SIZES) {
    const payload = new Uint8Array(size).fill(7);
    const big = size >= 100 * 1024;
    const rounds = quick ? 5 : 20;
    const perRound = quick ? (big ? 10 : 100) : big ? 25 : 250;
    const samples = { once: [] as number[], readEvery: [] as number[], atLeastOnce: [] as number[] };
    for (let i = 0; i < (big ? 20 : 300); i++) {
      await onceAgents[0]!.echo(payload);
      await everyAgents[0]!.echo(payload);
      await plainAgents[0]!.echo(payload);
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < perRound; i++) await time(samples.atLeastOnce, () => plainAgents[0]!.echo(payload));
      for (let i = 0; i < perRound; i++) await time(samples.once, () => onceAgents[0]!.echo(payload));
      for (let i = 0; i < perRound; i++) await time(samples.readEvery, () => everyAgents[0]!.echo(payload));
    }
    const row = { payloadBytes: size, once: summarize(samples.once), readEvery: summarize(samples.readEvery), atLeastOnce: summarize(samples.atLeastOnce) };
    latency.push({
      ...row,
      p50Ratio: row.once.p50Ms / row.atLeastOnce.p50Ms,
      p99Ratio: row.once.p99Ms / row.atLeastOnce.p99Ms,
      readEveryP50Ratio: row.readEvery.p50Ms / row.atLeastOnce.p50Ms,
    });
    ctx.log(`effectively-once round trip ${bytes(size)}: p50 ${ms(row.once.p50Ms)} ms with records, ${ms(row.readEvery.p50Ms)} ms reading every record, ${ms(row.atLeastOnce.p50Ms)} ms without`);
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
    const samples = { once: [] as number[], readEvery: [] as number[], atLeastOnce: [] as number[] };
    await drive(callers, 300, (c) => onceAgents[agentOf(c)]!.echo(payload));
    await drive(callers, 300, (c) => everyAgents[agentOf(c)]!.echo(payload));
    await drive(callers, 300, (c) => plainAgents[agentOf(c)]!.echo(payload));
    for (let round = 0; round < rounds; round++) {
      samples.atLeastOnce.push(await drive(callers, windowMs, (c) => plainAgents[agentOf(c)]!.echo(payload)));
      samples.once.push(await drive(callers, windowMs, (c) => onceAgents[agentOf(c)]!.echo(payload)));
      samples.readEvery.push(await drive(callers, windowMs, (c) => everyAgents[agentOf(c)]!.echo(payload)));
    }
    const row = { shape, oncePerS: median(samples.once), readEveryPerS: median(samples.readEvery), atLeastOncePerS: median(samples.atLeastOnce) };
    throughput.push({ ...row, ratio: row.oncePerS / row.atLeastOncePerS, readEveryRatio: row.readEveryPerS / row.atLeastOncePerS });
    ctx.log(`effectively-once throughput ${shape}: ${Math.round(row.oncePerS)}/s with records, ${Math.round(row.readEveryPerS)}/s reading every record, ${Math.round(row.atLeastOncePerS)}/s without`);
  }

  const perS = (value: number): string => Math.round(value).toLocaleString("en-US");
  const small = latency[0]!;
  return {
    id: "effectivelyOnce",
    title: "10. The cost of effectively-once execution: with result records (default) vs without (resultWindowMs: 0), durable replies",
    headers: ["measure", "with records", "reading every record", "without", "ratio", "ratio, reading every"],
    rows: [
      ...latency.flatMap((r) => [
        [`round trip p50, ${bytes(r.payloadBytes)} (ms)`, ms(r.once.p50Ms), ms(r.readEvery.p50Ms), ms(r.atLeastOnce.p50Ms), ratio(r.p50Ratio), ratio(r.readEveryP50Ratio)],
        [`round trip p99, ${bytes(r.payloadBytes)} (ms)`, ms(r.once.p99Ms), ms(r.readEvery.p99Ms), ms(r.atLeastOnce.p99Ms), ratio(r.p99Ratio), ratio(r.readEvery.p99Ms / r.atLeastOnce.p99Ms)],
      ]),
      ...throughput.map((r) => [`throughput, ${r.shape} (/s)`, perS(r.oncePerS), perS(r.readEveryPerS), perS(r.atLeastOncePerS), ratio(r.ratio), ratio(r.readEveryRatio)]),
    ],
    figures: { latency, throughput: { windowMs, rounds, payloadBytes: payload.byteLength, rows: throughput } },
    targets: [
      { name: "effectively-once round trip p50, 64 B, vs without", goal: "<= 1.3x", measured: ratio(small.p50Ratio), met: small.p50Ratio <= 1.3 },
      ...throughput.map((r) => ({ name: `effectively-once throughput, ${r.shape}, vs without`, goal: ">= 0.7x", measured: ratio(r.ratio), met: r.ratio >= 0.7 })),
    ],
    notes: [
      "ratio = with records / without, same payload, same run, interleaved; all agents on the same server and in this process.",
      "With records each action adds one KV write beside the response; only a delivery that may be a duplicate (PROTOCOL.md 10.10) reads its record before it runs.",
      "reading every record: the same agents with every delivery marked as a possible duplicate (the behaviour before the duplicate rule).",
    ],
  };
}

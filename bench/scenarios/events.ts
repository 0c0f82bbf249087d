/**
 * Scenario 12, events: events per second handled by agents' durable subscriptions (`@subscribe`
 * on a JetStream stream), by one agent and by a `shared` group of 4, against bare JetStream pull
 * consumers doing the same work (decode the JSON, acknowledge) in the same run: one consumer, and
 * four readers of one durable. Throughput is measured on events already in the stream (the
 * readers drain a backlog); latency from publish to handler with events published at a steady
 * rate while the readers run. Rounds are interleaved, each on subjects of its own.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient } from "@nats-io/jetstream";
import { Agent, Manager, NatsExchangeFactory, subscribe } from "../../src/index.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { ms, ratio, summarize } from "../lib/stats.ts";

const STREAM = "BENCH_EVENTS";
const GROUP = 4;

/** What the readers of one round report to. */
interface Sink {
  readonly expected: number;
  count: number;
  readonly latencies: number[];
  readonly done: Promise<void>;
  resolve(): void;
}

function sink(expected: number): Sink {
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  return { expected, count: 0, latencies: [], done, resolve };
}

/** The sink the agents of the round being measured report to. */
let current: Sink | undefined;

/** Count one handled event; with a publish time in the payload, its latency. */
function handled(s: Sink | undefined, payload: { t?: number }): void {
  if (s === undefined) return;
  if (payload.t !== undefined) s.latencies.push(performance.timeOrigin + performance.now() - payload.t);
  if (++s.count === s.expected) s.resolve();
}

/** An agent class subscribed to `subject` (each round its own), alone or in a shared group. */
function agentClass(subject: string, group: "each" | "shared", once: boolean) {
  class BenchSubscriber extends Agent {
    // One class per round: each needs a type name of its own.
    static override agentType = `BenchSubscriber_${subject.replace(/\./g, "_")}`;
    @subscribe(subject, { stream: STREAM, group, start: "all", prefetch: 256, once })
    async onEvent(payload: { t?: number }) {
      handled(current, payload);
    }
  }
  return BenchSubscriber;
}

/** Bare JetStream: `readers` pull readers of one durable, each decoding and acking. */
async function bare(nc: NatsConnection, js: JetStreamClient, subject: string, readers: number, s: Sink): Promise<() => Promise<void>> {
  const jsm = await jetstreamManager(nc);
  const name = `bare_${subject.replace(/\./g, "_")}`;
  await jsm.consumers.add(STREAM, { durable_name: name, ack_policy: AckPolicy.Explicit, filter_subject: subject, deliver_policy: DeliverPolicy.All, max_ack_pending: 1_000 });
  const stops: Array<() => Promise<void>> = [];
  for (let i = 0; i < readers; i++) {
    const consumer = await js.consumers.get(STREAM, name);
    const messages = await consumer.consume({ max_messages: 256 });
    const loop = (async () => {
      for await (const m of messages) {
        handled(s, JSON.parse(m.string()) as { t?: number });
        m.ack();
      }
    })();
    stops.push(async () => {
      await messages.close();
      await loop;
    });
  }
  return async () => {
    await Promise.all(stops.map((stop) => stop()));
    await jsm.consumers.delete(STREAM, name);
  };
}

async function publishBacklog(js: JetStreamClient, subject: string, count: number): Promise<void> {
  const data = new TextEncoder().encode(JSON.stringify({ order: 1, customer: "c1", amount: 12.5 }));
  for (let i = 0; i < count; i += 1_000) {
    await Promise.all(Array.from({ length: Math.min(1_000, count - i) }, () => js.publish(subject, data)));
  }
}

/** Publish `count` events at `perSecond`, each carrying its publish time. */
async function publishPaced(js: JetStreamClient, subject: string, count: number, perSecond: number): Promise<void> {
  const encoder = new TextEncoder();
  const start = performance.now();
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1_000) / perSecond;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(js.publish(subject, encoder.encode(JSON.stringify({ t: performance.timeOrigin + performance.now(), order: i }))));
  }
  await Promise.all(pending);
}

interface Row {
  shape: string;
  once: boolean;
  libraryPerS: number;
  barePerS: number;
  ratio: number;
  library: { p50Ms: number; p99Ms: number };
  bareLatency: { p50Ms: number; p99Ms: number };
}

export default async function events(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick, server } = ctx;
  const backlog = quick ? 5_000 : 20_000;
  const paced = quick ? 1_000 : 3_000;
  const rate = 1_000;
  const rounds = quick ? 1 : 3;
  const nc = await connect({ servers: server.url });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: ["bench.ev.>"] });
  const factory = new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("events") });
  const manager = await Manager.fromExchangeFactory(factory);
  let serial = 0;

  /** One measurement: `readers` agents (or bare readers) drain a backlog, then take paced events. */
  async function measure(kind: "library" | "bare", readers: number, once: boolean): Promise<{ perS: number; latencies: number[] }> {
    const subject = `bench.ev.r${++serial}`;
    await publishBacklog(js, subject, backlog);
    const drained = sink(backlog);
    current = drained;
    const start = performance.now();
    let stop: () => Promise<void>;
    if (kind === "library") {
      const cls = agentClass(subject, readers === 1 ? "each" : "shared", once);
      const agents = await Promise.all(Array.from({ length: readers }, () => manager.launch(cls)));
      stop = async () => {
        for (const agent of agents) await manager.shutdown(agent);
      };
    } else {
      stop = await bare(nc, js, subject, readers, drained);
    }
    await drained.done;
    const perS = backlog / ((performance.now() - start) / 1_000);
    const live = sink(paced);
    current = live;
    if (kind === "bare") {
      // The bare readers report to the sink they were given: hand them the live one.
      await stop();
      stop = await bare(nc, js, `${subject}.live`, readers, live);
      await publishPaced(js, `${subject}.live`, paced, rate);
    } else {
      await publishPaced(js, subject, paced, rate);
    }
    await live.done;
    current = undefined;
    await stop();
    return { perS, latencies: live.latencies };
  }

  const rows: Row[] = [];
  try {
    const shapes = [
      ["1 agent", 1, true],
      [`shared group of ${GROUP}`, GROUP, true],
      ["1 agent, once: false", 1, false],
      [`shared group of ${GROUP}, once: false`, GROUP, false],
    ] as const;
    for (const [shape, readers, once] of shapes) {
      const library: number[] = [];
      const bareRates: number[] = [];
      const libraryLatencies: number[] = [];
      const bareLatencies: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const b = await measure("bare", readers, once);
        const l = await measure("library", readers, once);
        bareRates.push(b.perS);
        library.push(l.perS);
        bareLatencies.push(...b.latencies);
        libraryLatencies.push(...l.latencies);
      }
      const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
      const libraryPerS = med(library);
      const barePerS = med(bareRates);
      const l = summarize(libraryLatencies);
      const b = summarize(bareLatencies);
      rows.push({ shape, once, libraryPerS, barePerS, ratio: libraryPerS / barePerS, library: { p50Ms: l.p50Ms, p99Ms: l.p99Ms }, bareLatency: { p50Ms: b.p50Ms, p99Ms: b.p99Ms } });
      ctx.log(`events ${shape}: library ${Math.round(libraryPerS)}/s, bare ${Math.round(barePerS)}/s`);
    }
  } finally {
    await manager.close().catch(() => undefined);
    await jsm.streams.delete(STREAM).catch(() => undefined);
    await nc.close();
  }

  const perS = (value: number): string => Math.round(value).toLocaleString("en-US");
  return {
    id: "events",
    title: "12. Events: durable subscriptions of agents vs bare JetStream consumers (events/s draining a backlog; publish-to-handler latency at 1,000 events/s)",
    headers: ["shape", "agents /s", "bare /s", "ratio", "agents p50", "agents p99", "bare p50", "bare p99"],
    rows: rows.map((r) => [r.shape, perS(r.libraryPerS), perS(r.barePerS), ratio(r.ratio), ms(r.library.p50Ms), ms(r.library.p99Ms), ms(r.bareLatency.p50Ms), ms(r.bareLatency.p99Ms)]),
    figures: { backlog, paced, ratePerS: rate, rounds, rows },
    // The target compares the same work (decode, handler, ack): once: false. With records
    // (the default), each event also costs a record write: reported beside it, not a target.
    targets: rows.filter((r) => !r.once).map((r) => ({ name: `events handled, ${r.shape}, vs bare JetStream`, goal: ">= 0.5x", measured: ratio(r.ratio), met: r.ratio >= 0.5 })),
    notes: [
      `Throughput: median of ${rounds} interleaved rounds draining ${backlog.toLocaleString("en-US")} JSON events of 50 B; latency: ${paced.toLocaleString("en-US")} events published at ${rate}/s per round, all rounds together.`,
      "Both sides decode the JSON and acknowledge each event; the agents also run the event interceptors and keep the ack deadline alive.",
      "Rows without once: false record completed events (effectively-once, the default): one record per subscription rewritten as events complete for 1 agent (its events complete in order), one KV write per event for a shared group.",
      "Publisher, readers and server share the machine's cores.",
    ],
  };
}

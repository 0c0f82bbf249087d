/**
 * Event subscriptions of agents run by runtime hosts (child processes) against a real
 * nats-server, fed by a plain nats.js publisher: a durable subscription through kill -9 of its
 * host, `shared` and `each` groups across two hosts, and keyed routing with two routers racing
 * (and one of them killed). Handlers publish what they handled to the RESULTS stream, which the
 * tests read in stream order.
 */
import { fileURLToPath } from "node:url";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import type { JetStreamClient } from "@nats-io/jetstream";
import { afterEach, beforeAll, expect, test } from "vitest";
import { HostPoolExecutor, Manager, NatsExchangeFactory, keyedAgentId } from "../../../src/index.ts";
import { NatsPoolBackend } from "../../../src/exchange/nats/nats-pool-backend.ts";
import { Broadcast, OrderedRecorder, SharedWorker } from "../../fixtures/event-agents.ts";
import { spawnHost } from "../../support/host-process.ts";
import type { HostProcess } from "../../support/host-process.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

const EVENT_AGENTS = fileURLToPath(new URL("../../fixtures/event-agents.ts", import.meta.url));
const FAST = { heartbeatMs: 300, hostTtlMs: 1_500 } as const;

let js: JetStreamClient;
let serial = 0;
const hosts: HostProcess[] = [];

beforeAll(async () => {
  js = jetstream(shared.nc);
  const jsm = await jetstreamManager(shared.nc);
  await jsm.streams.add({ name: "RESULTS", subjects: ["results.>"] });
});
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.kill()));
});

async function stream(name: string, subjects: string[]): Promise<void> {
  await (await jetstreamManager(shared.nc)).streams.add({ name, subjects });
}

async function host(prefix: string, pool: string, capacity = 100, extra: Partial<Parameters<typeof spawnHost>[0]> = {}): Promise<HostProcess> {
  const h = await spawnHost({ servers: shared.nats.url, prefix, pool, capacity, modules: [EVENT_AGENTS], ...FAST, ...extra });
  hosts.push(h);
  return h;
}

async function managerFor(prefix: string, pool: string): Promise<Manager> {
  const factory = new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix });
  return Manager.fromExchangeFactory(factory, { executors: { pool: new HostPoolExecutor({ pool }) }, defaultExecutor: "pool" });
}

/** Publish with plain nats.js, pipelined 500 at a time. */
async function publishAll(events: Array<[string, unknown]>): Promise<void> {
  const encoder = new TextEncoder();
  for (let i = 0; i < events.length; i += 500) {
    await Promise.all(events.slice(i, i + 500).map(([subject, payload]) => js.publish(subject, encoder.encode(JSON.stringify(payload)))));
  }
}

/** Messages on `subject` of the RESULTS stream. */
async function resultCount(subject: string): Promise<number> {
  const jsm = await jetstreamManager(shared.nc);
  const info = await jsm.streams.info("RESULTS", { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

async function waitForResults(subject: string, count: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await resultCount(subject);
    if (n >= count || Date.now() > deadline) return n;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Every result on `subject`, in stream order. */
async function results<T>(subject: string): Promise<T[]> {
  const total = await resultCount(subject);
  // One filter subject (nats-server 2.9 has no filter_subjects).
  const info = await (await jetstreamManager(shared.nc)).consumers.add("RESULTS", { filter_subject: subject, ack_policy: AckPolicy.None, inactive_threshold: nanos(60_000) });
  const consumer = await js.consumers.get("RESULTS", info.name);
  const found: T[] = [];
  while (found.length < total) {
    const batch = await consumer.fetch({ max_messages: Math.min(1000, total - found.length), expires: 5_000 });
    for await (const m of batch) found.push(m.json<T>());
  }
  return found;
}

/** The keys whose agents a host's routers launched, from its log. */
function launchedBy(h: HostProcess): string[] {
  return h.logs().filter((l) => l.msg === "launched keyed agent").map((l) => l.key as string);
}

function assertOrderedPerKey(rows: Array<{ key: string; n: number }>): void {
  const last = new Map<string, number>();
  for (const row of rows) {
    const previous = last.get(row.key) ?? -1;
    expect(row.n, `key ${row.key}`).toBeGreaterThan(previous);
    last.set(row.key, row.n);
  }
}

test("durable subscription: 5,000 events from a plain publisher, the agent's host killed with kill -9 half way: every event handled once, in order per key", async () => {
  const prefix = `evh${process.pid}_${++serial}`;
  await stream("DURABLE", ["durable.>"]);
  const victim = await host(prefix, "events", 1);
  const manager = await managerFor(prefix, "events");
  try {
    const recorder = await manager.launch(OrderedRecorder);
    expect(await recorder.where()).toBe(victim.child.pid);
    const survivor = await host(prefix, "events", 1);
    const keys = 50;
    const events: Array<[string, unknown]> = [];
    for (let n = 0; n < 5_000 / keys; n++) for (let k = 0; k < keys; k++) events.push([`durable.k${k}.ev`, { key: `k${k}`, n }]);
    const publishing = publishAll(events);
    expect(await waitForResults("results.durable", 2_500, 60_000)).toBeGreaterThanOrEqual(2_500);
    await victim.kill();
    await publishing;
    expect(await waitForResults("results.durable", 5_000, 90_000)).toBe(5_000);
    const rows = await results<{ key: string; n: number; seq: number; pid: number }>("results.durable");
    expect(rows).toHaveLength(5_000);
    expect(new Set(rows.map((r) => r.seq)).size).toBe(5_000);
    expect(Math.min(...rows.map((r) => r.seq))).toBe(1);
    expect(Math.max(...rows.map((r) => r.seq))).toBe(5_000);
    assertOrderedPerKey(rows);
    // Handled on both hosts: before and after the kill.
    expect(new Set(rows.map((r) => r.pid))).toEqual(new Set([victim.child.pid, survivor.child.pid]));
    expect(await recorder.where()).toBe(survivor.child.pid);
  } finally {
    await manager.close().catch(() => undefined);
  }
}, 180_000);

test("shared group: 4 agents on 2 hosts split 10,000 events, each handled exactly once", async () => {
  const prefix = `evh${process.pid}_${++serial}`;
  await stream("SHARED", ["shared.>"]);
  const a = await host(prefix, "shared", 2);
  const b = await host(prefix, "shared", 2);
  const manager = await managerFor(prefix, "shared");
  try {
    const workers = await Promise.all([1, 2, 3, 4].map(() => manager.launch(SharedWorker)));
    const pids = await Promise.all(workers.map((w) => w.where()));
    expect(new Set(pids)).toEqual(new Set([a.child.pid, b.child.pid]));
    const events: Array<[string, unknown]> = Array.from({ length: 10_000 }, (_, n) => ["shared.jobs", { n }]);
    await publishAll(events);
    expect(await waitForResults("results.shared", 10_000, 120_000)).toBeGreaterThanOrEqual(10_000);
    // Anything handled twice would arrive now.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const rows = await results<{ n: number; agent: string; pid: number }>("results.shared");
    expect(rows).toHaveLength(10_000);
    expect(new Set(rows.map((r) => r.n)).size).toBe(10_000);
    const perAgent = new Map<string, number>();
    for (const row of rows) perAgent.set(row.agent, (perAgent.get(row.agent) ?? 0) + 1);
    expect([...perAgent.keys()].sort()).toEqual(workers.map((w) => w.agentId.uid).sort());
    expect(new Set(rows.map((r) => r.pid))).toEqual(new Set([a.child.pid, b.child.pid]));
    console.log(`shared group of 4 on 2 hosts: events per agent ${[...perAgent.values()].join(", ")}`);
  } finally {
    await manager.close().catch(() => undefined);
  }
}, 180_000);

test("each group: 2 agents on 2 hosts each see all 1,000 events; terminating one deletes its consumer", async () => {
  const prefix = `evh${process.pid}_${++serial}`;
  await stream("EACH", ["each.>"]);
  const a = await host(prefix, "each", 1);
  const b = await host(prefix, "each", 1);
  const manager = await managerFor(prefix, "each");
  try {
    const agents = [await manager.launch(Broadcast), await manager.launch(Broadcast)];
    expect(new Set(await Promise.all(agents.map((x) => x.where())))).toEqual(new Set([a.child.pid, b.child.pid]));
    await publishAll(Array.from({ length: 1_000 }, (_, n) => ["each.news", { n }] as [string, unknown]));
    expect(await waitForResults("results.each", 2_000, 60_000)).toBe(2_000);
    const rows = await results<{ n: number; agent: string }>("results.each");
    for (const agent of agents) {
      expect(rows.filter((r) => r.agent === agent.agentId.uid).map((r) => r.n)).toEqual([...Array(1_000).keys()]);
    }
    const jsm = await jetstreamManager(shared.nc);
    const consumerOf = (uid: string) => `${prefix}_ev_${uid}_onNews`;
    expect((await jsm.consumers.info("EACH", consumerOf(agents[0]!.agentId.uid))).num_pending).toBe(0);
    await manager.shutdown(agents[0]!);
    await expect(jsm.consumers.info("EACH", consumerOf(agents[0]!.agentId.uid))).rejects.toThrow();
    expect((await jsm.consumers.info("EACH", consumerOf(agents[1]!.agentId.uid))).config.durable_name).toBe(consumerOf(agents[1]!.agentId.uid));
  } finally {
    await manager.close().catch(() => undefined);
  }
}, 120_000);

test("keyed routing: 100 keys launch 100 agents on demand on a pool of 2 hosts whose routers race; each agent sees its key's events in order; a router killed loses nothing", async () => {
  const prefix = `evh${process.pid}_${++serial}`;
  await stream("SENSORS", ["sensors.>"]);
  const a = await host(prefix, "sensors");
  const b = await host(prefix, "sensors", 100, { extra: ["--json-calls"] });
  const manager = await managerFor(prefix, "sensors");
  try {
    const keys = Array.from({ length: 100 }, (_, k) => `s${k}`);
    const half = (from: number, to: number): Array<[string, unknown]> => {
      const events: Array<[string, unknown]> = [];
      for (let n = from; n < to; n++) for (const key of keys) events.push([`sensors.${key}.readings`, { key, n }]);
      return events;
    };
    await publishAll(half(0, 5));
    expect(await waitForResults("results.sensors", 500, 90_000)).toBe(500);
    // Both routers launched agents, and together exactly one per key. A router logs a launch after
    // the launch is published, so the agent it launched may have handled its events before the log
    // line reaches this process: wait for the lines, then compare.
    await expect.poll(() => [a, b].flatMap(launchedBy).sort(), { timeout: 20_000 }).toEqual([...keys].sort());
    const launched = [a, b].map(launchedBy);
    expect(launched.every((list) => list.length > 0)).toBe(true);

    await a.kill();
    await publishAll(half(5, 10));
    expect(await waitForResults("results.sensors", 1_000, 90_000)).toBe(1_000);
    const rows = await results<{ key: string; n: number; agent: string; ctxKey: string }>("results.sensors");
    expect(rows).toHaveLength(1_000);
    assertOrderedPerKey(rows);
    for (const key of keys) {
      const mine = rows.filter((r) => r.key === key);
      expect(mine.map((r) => r.n)).toEqual([...Array(10).keys()]);
      expect(new Set(mine.map((r) => r.agent))).toEqual(new Set([keyedAgentId("Sensor", key).uid]));
      expect(mine[0]!.ctxKey).toBe(key);
    }
    const placements = await (await NatsPoolBackend.for(await (manager.exchangeFactory as NatsExchangeFactory).context())).listPlacements("sensors");
    expect(placements).toHaveLength(100);
    const found = await manager.exchangeClient.discover("Sensor");
    expect(found.map((id) => id.name).sort()).toEqual([...keys].sort());
    const sensor = manager.getHandle(keyedAgentId("Sensor", "s7")) as unknown as { count(): Promise<number> };
    expect(await sensor.count()).toBeGreaterThan(0);
    // The surviving host serves JSON calls: a plain client calls the agent of a key by its key.
    const reply = await shared.nc.request(`${prefix}.json.Sensor.s7`, new TextEncoder().encode(JSON.stringify({ action: "count" })), { timeout: 10_000 });
    expect(reply.json<{ result: number }>().result).toBe(await sensor.count());
  } finally {
    await manager.close().catch(() => undefined);
  }
}, 240_000);

test("keyed routing by a payload field: each account's events copied to its agent in stream order, one agent per account; an event without the field is dead-lettered", async () => {
  const prefix = `evh${process.pid}_${++serial}`;
  await stream("PAYMENTS", ["payments.>"]);
  const a = await host(prefix, "accounts");
  const b = await host(prefix, "accounts");
  const manager = await managerFor(prefix, "accounts");
  try {
    const accounts = Array.from({ length: 20 }, (_, k) => `acct-${k}`);
    const events: Array<[string, unknown]> = [];
    for (let n = 0; n < 5; n++) for (const [k, account] of accounts.entries()) events.push([`payments.region${k % 3}`, { account, n }]);
    events.splice(7, 0, ["payments.region0", { n: 99 }]); // no account
    await publishAll(events);
    expect(await waitForResults("results.accounts", 100, 90_000)).toBe(100);
    const rows = await results<{ key: string; n: number; seq: number; stream: string; subject: string; agent: string }>("results.accounts");
    assertOrderedPerKey(rows);
    for (const [k, account] of accounts.entries()) {
      const mine = rows.filter((r) => r.key === account);
      expect(mine.map((r) => r.n)).toEqual([0, 1, 2, 3, 4]);
      expect(new Set(mine.map((r) => r.agent))).toEqual(new Set([keyedAgentId("Account", account).uid]));
      // The context names the original event, not its copy.
      expect(mine[0]!.stream).toBe("PAYMENTS");
      expect(mine[0]!.subject).toBe(`payments.region${k % 3}`);
    }
    expect(new Set(rows.map((r) => r.seq)).size).toBe(100);
    await expect.poll(() => [a, b].flatMap(launchedBy).sort(), { timeout: 20_000 }).toEqual([...accounts].sort());
    // The routers share one consumer: the router that took the event without an account writes its
    // dead letter on its own time, possibly after the other router copied every other event.
    const letters = await (manager.exchangeFactory as NatsExchangeFactory).deadLetters();
    await expect.poll(async () => (await letters.list({ kind: "event" })).map((l) => l.reason), { timeout: 20_000 }).toEqual(["MALFORMED_MESSAGE"]);
  } finally {
    await manager.close().catch(() => undefined);
  }
}, 180_000);

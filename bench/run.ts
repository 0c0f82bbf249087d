/**
 * `npm run bench [-- --quick]`: measures the runtime against bare NATS on this machine, side by
 * side in one run (interleaved rounds, so a noisy neighbour hits both alike). Prints a table and
 * writes bench/results/latest.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem, type as osType, release } from "node:os";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { Agent, LocalExchangeFactory, Manager, NatsExchangeFactory, action } from "../src/index.ts";
import type { AgentClass, Handle, UserExchangeClient } from "../src/index.ts";
import { startNatsServer } from "../src/testing/index.ts";

const quick = process.argv.includes("--quick");

class Echo extends Agent {
  @action async echo(payload: Uint8Array): Promise<Uint8Array> {
    return payload;
  }
}

/** Percentile of sorted samples (nearest rank). */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface Summary {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
}

function summarize(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    samples: sorted.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
  };
}

async function time(samples: number[], op: () => Promise<unknown>): Promise<void> {
  const start = performance.now();
  await op();
  samples.push(performance.now() - start);
}

interface RoundTripRow {
  payloadBytes: number;
  natsExchange: Summary;
  bareNats: Summary;
  inProcess: Summary;
  /** Exchange p50 over bare NATS p50, same payload, same run. */
  p50Ratio: number;
}

/** Scenario 1: sequential action round trips, interleaved with bare request/reply and in-process. */
async function roundTrip(nc: NatsConnection, nats: Handle<Echo>, local: Handle<Echo>): Promise<RoundTripRow[]> {
  const sizes = [64, 1024, 100 * 1024, 1024 * 1024];
  const subject = "bench.echo";
  const sub = nc.subscribe(subject, { callback: (_error, msg) => {
      msg.respond(msg.data);
    },
  });
  const rows: RoundTripRow[] = [];
  for (const size of sizes) {
    const payload = new Uint8Array(size).fill(7);
    const big = size >= 100 * 1024;
    const rounds = quick ? 5 : 20;
    const perRound = quick ? (big ? 10 : 40) : big ? 25 : 200;
    const samples = { nats: [] as number[], bare: [] as number[], local: [] as number[] };
    // Warm up every path (connections, JIT, the registry view) before measuring.
    for (let i = 0; i < 20; i++) {
      await nats.echo(payload);
      await nc.request(subject, payload);
      await local.echo(payload);
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < perRound; i++) await time(samples.nats, () => nats.echo(payload));
      for (let i = 0; i < perRound; i++) await time(samples.bare, () => nc.request(subject, payload, { timeout: 10_000 }));
      for (let i = 0; i < perRound; i++) await time(samples.local, () => local.echo(payload));
    }
    const row: RoundTripRow = {
      payloadBytes: size,
      natsExchange: summarize(samples.nats),
      bareNats: summarize(samples.bare),
      inProcess: summarize(samples.local),
      p50Ratio: 0,
    };
    row.p50Ratio = row.natsExchange.p50Ms / row.bareNats.p50Ms;
    rows.push(row);
  }
  sub.unsubscribe();
  return rows;
}

/** A class tree of 20 agent types: Root, 4 families, 15 leaves spread under them. */
function classTree(): { root: AgentClass; family: AgentClass; leaf: AgentClass; concrete: AgentClass[] } {
  const make = (name: string, parent: AgentClass): AgentClass => {
    const cls = { [name]: class extends parent {} }[name]! as AgentClass;
    Object.defineProperty(cls, "agentType", { value: name });
    return cls;
  };
  const root = make("BenchRoot", Echo as unknown as AgentClass);
  const families = Array.from({ length: 4 }, (_, i) => make(`BenchFamily${i}`, root));
  const leaves = Array.from({ length: 15 }, (_, i) => make(`BenchLeaf${i}`, families[i % 4]!));
  return { root, family: families[0]!, leaf: leaves[0]!, concrete: [...families, ...leaves].slice(0, 19).concat(root) };
}

interface DiscoverRow {
  agents: number;
  query: string;
  found: number;
  coldMs: number;
  warm: Summary;
}

/** Scenario 4: discover latency over a registry of `count` agents, cold (fresh client) and warm. */
async function discover(url: string, count: number): Promise<DiscoverRow[]> {
  const prefix = `discover${count}`;
  const tree = classTree();
  const setup = new NatsExchangeFactory({ servers: url, prefix });
  const registrar = await setup.createUserClient();
  for (let next = 0; next < count; ) {
    const batch = Array.from({ length: Math.min(200, count - next) }, (_, i) =>
      registrar.registerAgent(tree.concrete[(next + i) % tree.concrete.length]!),
    );
    next += batch.length;
    await Promise.all(batch);
  }
  await registrar.close();
  await setup.close();

  const rows: DiscoverRow[] = [];
  for (const [query, type] of [
    ["root type (all agents)", tree.root],
    ["a family (subclasses)", tree.family],
    ["a leaf type", tree.leaf],
  ] as const) {
    // Cold: a new process would open a new connection; its first discover reads the KV index.
    const factory = new NatsExchangeFactory({ servers: url, prefix });
    const client: UserExchangeClient = await factory.createUserClient();
    const start = performance.now();
    const found = (await client.discover(type)).length;
    const coldMs = performance.now() - start;
    // Warm: once the registry view has caught up, answers come from memory after one freshness check.
    while (!(await client.discover(type)).length) {}
    const samples: number[] = [];
    for (let i = 0; i < (quick ? 50 : 200); i++) await time(samples, () => client.discover(type));
    rows.push({ agents: count, query, found, coldMs, warm: summarize(samples) });
    await client.close();
    await factory.close();
  }
  return rows;
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / 1024 / 1024} MiB` : bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

const f = (ms: number): string => ms.toFixed(3);

async function main(): Promise<void> {
  // 1 MiB payloads plus envelope and headers exceed NATS's default max_payload of 1 MiB.
  await using server = await startNatsServer({ maxPayload: 8 * 1024 * 1024 });
  const nc = await connect({ servers: server.url });
  const serverVersion = nc.info?.version ?? "unknown";
  await using natsManager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: "bench" }));
  await using localManager = await Manager.fromExchangeFactory(new LocalExchangeFactory({ maxPayload: 8 * 1024 * 1024 }));
  const natsEcho = await natsManager.launch(Echo);
  const localEcho = await localManager.launch(Echo);

  const started = Date.now();
  const rows = await roundTrip(nc, natsEcho, localEcho);
  await nc.close();
  const discoverRows = await discover(server.url, quick ? 1000 : 10_000);

  console.log(`\nAction round trip, sequential (${quick ? "quick" : "full"} run; ms; NATS exchange vs bare NATS request/reply vs in-process)`);
  console.log(
    ["payload", "exchange p50", "p99", "bare NATS p50", "p99", "in-process p50", "p99", "p50 ratio"].map((h) => h.padStart(14)).join(""),
  );
  for (const r of rows) {
    console.log(
      [
        formatBytes(r.payloadBytes),
        f(r.natsExchange.p50Ms),
        f(r.natsExchange.p99Ms),
        f(r.bareNats.p50Ms),
        f(r.bareNats.p99Ms),
        f(r.inProcess.p50Ms),
        f(r.inProcess.p99Ms),
        `${r.p50Ratio.toFixed(2)}x`,
      ]
        .map((c) => c.padStart(14))
        .join(""),
    );
  }

  console.log("\nDiscover (registry of agents across a 20-type class tree; ms)");
  console.log(["agents", "query", "found", "cold", "warm p50", "warm p99"].map((h) => h.padStart(14)).join(""));
  for (const r of discoverRows) {
    console.log(
      [String(r.agents), r.query.slice(0, 13), String(r.found), f(r.coldMs), f(r.warm.p50Ms), f(r.warm.p99Ms)]
        .map((c) => c.padStart(14))
        .join(""),
    );
  }

  const results = {
    date: new Date().toISOString(),
    quick,
    durationMs: Date.now() - started,
    machine: {
      os: `${osType()} ${release()}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      memoryBytes: totalmem(),
      node: process.version,
      natsServer: serverVersion,
    },
    scenarios: { actionRoundTrip: rows, discover: discoverRows },
  };
  const dir = fileURLToPath(new URL("./results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}latest.json`, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nWrote bench/results/latest.json (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

await main();

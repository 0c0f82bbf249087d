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
import type { Handle } from "../src/index.ts";
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
    scenarios: { actionRoundTrip: rows },
  };
  const dir = fileURLToPath(new URL("./results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}latest.json`, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nWrote bench/results/latest.json (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

await main();

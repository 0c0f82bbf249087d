/**
 * `npm run bench:cpu -- [--rounds 5] [--window-ms 2000] [--only exchange,norecords,core,f2r,f2,f1r,f1,f2s,f1s] [--mode pipelined,sequential] [--sizes 64,1024] [--in-flight 64]`:
 * this process's CPU per call and calls per second for the exchange (durable replies, and
 * `replies: "core"`, and durable replies without result records) and the JetStream floors F2, F1
 * and F2r, F1r (the same with result records; bench/lib/floors.ts), each with one
 * agent in this process, pipelined (64 calls in flight, or `--in-flight`) and sequential, at 64 B and 1 KiB.
 * Rounds are interleaved path by path, so a noisy neighbour slows every path alike; each cell is
 * the median over the rounds. Next to this process's CPU it reports nats-server's CPU and
 * messages in and out per call (its /varz counters, every client: the path's own traffic while it
 * runs alone) and both processes' utilisation (% of one core) over the window: a pipelined path whose
 * process is well under 100% is bounded by something other than its own CPU.
 *
 * Prints a table and writes bench/results/cpu-per-call.json. `--only` and `--mode` narrow the run,
 * e.g. to profile one path: `npm run bench:build && node --cpu-prof .bench-build/bench/cpu-per-call.js --only exchange --mode pipelined`.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { Manager, NatsExchangeFactory } from "../src/index.ts";
import { startNatsServer } from "../src/testing/index.ts";
import { repoPath } from "./lib/build.ts";
import { BenchEcho } from "./agents.ts";
import { FloorKind, openFloor } from "./lib/floors.ts";
import type { Floor, MessageSizes } from "./lib/floors.ts";
import { connect } from "@nats-io/transport-node";
import { cpuTimeMs } from "./lib/hosts.ts";
import { bytes, ratio } from "./lib/stats.ts";
import { formatTable } from "./lib/report.ts";

const PATHS = ["exchange", "norecords", "core", "f2r", "f2", "f1r", "f1", "f2s", "f1s"] as const;
type PathName = (typeof PATHS)[number];
const MODES = ["pipelined", "sequential"] as const;
type Mode = (typeof MODES)[number];

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    "window-ms": { type: "string", default: "2000" },
    only: { type: "string" },
    mode: { type: "string" },
    sizes: { type: "string", default: "64,1024" },
    out: { type: "string" },
    // Calls in flight to the one agent in the pipelined mode: 64, as scenario 2's first shape. Fewer
    // run a floor at a lower rate, to compare the server's CPU per call with the exchange's at the
    // same rate.
    "in-flight": { type: "string", default: "64" },
  },
});
const IN_FLIGHT = Number(values["in-flight"]);
if (!Number.isInteger(IN_FLIGHT) || IN_FLIGHT < 1) throw new Error(`--in-flight must be a positive integer, not ${values["in-flight"]}`);
const rounds = Number(values.rounds);
const windowMs = Number(values["window-ms"]);
const list = <T extends string>(value: string | undefined, all: readonly T[]): T[] => {
  const chosen = value === undefined ? [...all] : (value.split(",").map((s) => s.trim()) as T[]);
  for (const name of chosen) if (!all.includes(name)) throw new Error(`unknown ${JSON.stringify(name)}; known: ${all.join(", ")}`);
  return chosen;
};
const paths = list<PathName>(values.only, PATHS);
const modes = list<Mode>(values.mode, MODES);
const sizes = (values.sizes ?? "").split(",").map(Number);

interface Window {
  calls: number;
  wallMs: number;
  /** This process: user and system CPU in µs. */
  userUs: number;
  systemUs: number;
  /** nats-server's CPU in ms (/proc, 10 ms ticks). */
  serverMs: number;
  /** Messages into and out of nats-server over the window (its /varz counters, all clients). */
  serverMsgsIn: number;
  serverMsgsOut: number;
  /** Bytes (payloads and headers) into and out of nats-server over the window (/varz, all clients). */
  serverBytesIn: number;
  serverBytesOut: number;
  /** This process's read and write system calls over the window (socket reads and writes, mostly). */
  reads: number;
  writes: number;
}

/** nats-server's message and byte counters (monitoring endpoint). */
async function serverMessages(monitorPort: number): Promise<{ in: number; out: number; bytesIn: number; bytesOut: number }> {
  const varz = (await (await fetch(`http://127.0.0.1:${monitorPort}/varz`)).json()) as { in_msgs: number; out_msgs: number; in_bytes: number; out_bytes: number };
  return { in: varz.in_msgs, out: varz.out_msgs, bytesIn: varz.in_bytes, bytesOut: varz.out_bytes };
}

/** This process's read and write system calls so far (Linux's /proc/self/io; NaN elsewhere). */
function syscalls(): { reads: number; writes: number } {
  try {
    const io = readFileSync("/proc/self/io", "utf8");
    const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, "m").exec(io)?.[1] ?? Number.NaN);
    return { reads: field("syscr"), writes: field("syscw") };
  } catch {
    return { reads: Number.NaN, writes: Number.NaN };
  }
}

/** Run `callers` loops calling `call()` back to back for `ms`, measuring CPU around the window. */
async function window(callers: number, ms: number, serverPid: number, call: () => Promise<unknown>): Promise<Window> {
  let calls = 0;
  const msgsBefore = await serverMessages(monitorPort);
  const serverBefore = cpuTimeMs(serverPid);
  const cpuBefore = process.cpuUsage();
  const ioBefore = syscalls();
  const start = performance.now();
  const deadline = start + ms;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < deadline) {
        await call();
        calls++;
      }
    }),
  );
  const wallMs = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  const ioAfter = syscalls();
  const serverMs = cpuTimeMs(serverPid) - serverBefore;
  const msgsAfter = await serverMessages(monitorPort);
  return {
    calls,
    wallMs,
    userUs: cpu.user, systemUs: cpu.system, serverMs, serverMsgsIn: msgsAfter.in - msgsBefore.in, serverMsgsOut: msgsAfter.out - msgsBefore.out,
    serverBytesIn: msgsAfter.bytesIn - msgsBefore.bytesIn,
    serverBytesOut: msgsAfter.bytesOut - msgsBefore.bytesOut,
    reads: ioAfter.reads - ioBefore.reads,
    writes: ioAfter.writes - ioBefore.writes,
  };
}

/**
 * The body sizes of the exchange's messages for `payload`: its request (read off the agent's
 * mailbox subject) and its response (read off the result record, which is the response's bytes),
 * over one call watched by a second connection.
 */
async function exchangeSizes(url: string, prefix: string, agentUid: string, call: () => Promise<unknown>): Promise<MessageSizes> {
  const spy = await connect({ servers: url });
  try {
    let requestBytes = 0;
    let responseBytes = 0;
    spy.subscribe(`${prefix}.mbox.${agentUid}`, { max: 1, callback: (_error, m) => {
      requestBytes = m.data.byteLength;
    } });
    spy.subscribe(`$KV.${prefix}_results.${agentUid}.>`, { max: 1, callback: (_error, m) => {
      responseBytes = m.data.byteLength;
    } });
    await spy.flush();
    await call();
    // The record is stored before the request is acknowledged, not before the call returns.
    for (let i = 0; i < 100 && (requestBytes === 0 || responseBytes === 0); i++) await new Promise((r) => setTimeout(r, 10));
    if (requestBytes === 0 || responseBytes === 0) throw new Error(`could not read the sizes of the messages of ${prefix}`);
    return { requestBytes, responseBytes };
  } finally {
    await spy.close();
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Cell {
  mode: Mode;
  payloadBytes: number;
  path: PathName;
  callsPerS: number;
  /** This process's CPU per call, user + system. */
  cpuUsPerCall: number;
  systemUsPerCall: number;
  serverCpuUsPerCall: number;
  /** Messages nats-server received and sent per call (every client of the window, the path's). */
  serverMsgsInPerCall: number;
  serverMsgsOutPerCall: number;
  /** Bytes nats-server received and sent per call (payloads and headers, every client of the window). */
  serverBytesInPerCall: number;
  serverBytesOutPerCall: number;
  /** This process's read and write system calls per call. */
  readsPerCall: number;
  writesPerCall: number;
  /** % of one core over the window. */
  processUtilisation: number;
  serverUtilisation: number;
  windows: Window[];
}

await using server = await startNatsServer({ maxPayload: 8 * 1024 * 1024 });
const serverPid = server.pid!;
const monitorPort = server.monitorPort;
const prefix = `cpu${process.pid}`;
await using durable = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: `${prefix}d` }));
await using fast = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: `${prefix}c`, replies: "core" }));
// Durable replies without result records (`resultWindowMs: 0`): what the record costs.
await using noRecords = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: `${prefix}n`, resultWindowMs: 0 }));
const durableAgent = await durable.launch(BenchEcho);
const noRecordsAgent = await noRecords.launch(BenchEcho);
const fastAgent = await fast.launch(BenchEcho);
const f1 = await openFloor({ servers: server.url, prefix: `${prefix}f1`, kind: FloorKind.F1, agents: 1 });
const f2 = await openFloor({ servers: server.url, prefix: `${prefix}f2`, kind: FloorKind.F2, agents: 1 });
// The same with each reply also stored as a result record: the exchange's stored messages with records.
const f1r = await openFloor({ servers: server.url, prefix: `${prefix}f1r`, kind: FloorKind.F1, agents: 1, records: true });
const f2r = await openFloor({ servers: server.url, prefix: `${prefix}f2r`, kind: FloorKind.F2, agents: 1, records: true });

const loadStart = loadavg();
const cells: Cell[] = [];
try {
  for (const mode of modes) {
    for (const size of sizes) {
      const payload = new Uint8Array(size).fill(7);
      // The floors with the exchange's message sizes for this payload (durable / core replies).
      let f2s: Floor | undefined;
      let f1s: Floor | undefined;
      if (paths.includes("f2s")) {
        const sized = await exchangeSizes(server.url, `${prefix}d`, durableAgent.agentId.uid, () => durableAgent.echo(payload));
        f2s = await openFloor({ servers: server.url, prefix: `${prefix}f2s${size}`, kind: FloorKind.F2, agents: 1, records: true, sized });
      }
      if (paths.includes("f1s")) {
        const sized = await exchangeSizes(server.url, `${prefix}c`, fastAgent.agentId.uid, () => fastAgent.echo(payload));
        f1s = await openFloor({ servers: server.url, prefix: `${prefix}f1s${size}`, kind: FloorKind.F1, agents: 1, records: true, sized });
      }
      const calls: Record<PathName, () => Promise<unknown>> = {
        exchange: () => durableAgent.echo(payload),
        norecords: () => noRecordsAgent.echo(payload),
        core: () => fastAgent.echo(payload),
        f2: () => f2.call(0, payload),
        f1: () => f1.call(0, payload),
        f2r: () => f2r.call(0, payload),
        f1r: () => f1r.call(0, payload),
        f2s: () => f2s!.call(0, payload),
        f1s: () => f1s!.call(0, payload),
      };
      const callers = mode === "pipelined" ? IN_FLIGHT : 1;
      // Warm up every path (JIT, consumers, buffers).
      for (const path of paths) await window(callers, 500, serverPid, calls[path]);
      const windows = Object.fromEntries(paths.map((p) => [p, [] as Window[]])) as Record<PathName, Window[]>;
      for (let round = 0; round < rounds; round++) {
        for (const path of paths) windows[path].push(await window(callers, windowMs, serverPid, calls[path]));
      }
      for (const path of paths) {
        const ws = windows[path];
        cells.push({
          mode,
          payloadBytes: size,
          path,
          callsPerS: median(ws.map((w) => w.calls / (w.wallMs / 1000))),
          cpuUsPerCall: median(ws.map((w) => (w.userUs + w.systemUs) / w.calls)),
          systemUsPerCall: median(ws.map((w) => w.systemUs / w.calls)),
          serverCpuUsPerCall: median(ws.map((w) => (w.serverMs * 1000) / w.calls)),
          serverMsgsInPerCall: median(ws.map((w) => w.serverMsgsIn / w.calls)),
          serverMsgsOutPerCall: median(ws.map((w) => w.serverMsgsOut / w.calls)),
          serverBytesInPerCall: median(ws.map((w) => w.serverBytesIn / w.calls)),
          serverBytesOutPerCall: median(ws.map((w) => w.serverBytesOut / w.calls)),
          readsPerCall: median(ws.map((w) => w.reads / w.calls)),
          writesPerCall: median(ws.map((w) => w.writes / w.calls)),
          processUtilisation: median(ws.map((w) => (100 * (w.userUs + w.systemUs)) / 1000 / w.wallMs)),
          serverUtilisation: median(ws.map((w) => (100 * w.serverMs) / w.wallMs)),
          windows: ws,
        });
      }
      await f2s?.close();
      await f1s?.close();
      process.stderr.write(`[cpu] ${mode} ${bytes(size)} done\n`);
    }
  }
} finally {
  await f1.close();
  await f2.close();
  await f1r.close();
  await f2r.close();
}
const loadEnd = loadavg();

const headers = ["mode", "payload", "path", "calls/s", "CPU µs/call", "of it system", "vs floor", "vs sized floor", "server µs/call", "server msgs in/out per call", "server bytes in/out per call", "reads/writes per call", "process % core", "server % core"];
// Each path against the floor with the same stored messages (records or not).
const floorOf: Record<PathName, PathName> = { exchange: "f2r", norecords: "f2", core: "f1r", f2r: "f2r", f2: "f2", f1r: "f1r", f1: "f1", f2s: "f2r", f1s: "f1r" };
// The floors with the exchange's message sizes: what is left once the envelope's bytes are paid.
const sizedFloorOf: Partial<Record<PathName, PathName>> = { exchange: "f2s", core: "f1s" };
const rows = cells.map((c) => {
  const floor = cells.find((f) => f.mode === c.mode && f.payloadBytes === c.payloadBytes && f.path === floorOf[c.path]);
  const sizedFloor = cells.find((f) => f.mode === c.mode && f.payloadBytes === c.payloadBytes && f.path === sizedFloorOf[c.path]);
  return [
    c.mode,
    bytes(c.payloadBytes),
    c.path,
    Math.round(c.callsPerS).toLocaleString("en-US"),
    c.cpuUsPerCall.toFixed(1),
    c.systemUsPerCall.toFixed(1),
    floor === undefined || floor === c ? "-" : ratio(c.cpuUsPerCall / floor.cpuUsPerCall),
    sizedFloor === undefined ? "-" : ratio(c.cpuUsPerCall / sizedFloor.cpuUsPerCall),
    c.serverCpuUsPerCall.toFixed(1),
    `${c.serverMsgsInPerCall.toFixed(2)} / ${c.serverMsgsOutPerCall.toFixed(2)}`,
    `${Math.round(c.serverBytesInPerCall)} / ${Math.round(c.serverBytesOutPerCall)}`,
    `${c.readsPerCall.toFixed(2)} / ${c.writesPerCall.toFixed(2)}`,
    c.processUtilisation.toFixed(0),
    c.serverUtilisation.toFixed(0),
  ];
});
console.log(`\nCPU per call, this process (median of ${rounds} interleaved windows of ${windowMs} ms; ${IN_FLIGHT} in flight when pipelined; one agent)\n`);
console.log(formatTable(headers, rows));
const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(", ");
console.log(
  `  exchange = durable replies with result records (the default) vs F2r; norecords = the same with resultWindowMs: 0, vs F2; core = replies: "core" (records) vs F1r. ` +
    "F2r / F1r = F2 / F1 with each reply also stored as a result record (bench/lib/floors.ts); " +
    "F2s / F1s = F2r / F1r carrying the exchange's message sizes (its envelope's bytes, header fields, tag and uid lengths), judged against F2r / F1r. " +
    "vs floor = CPU per call over the floor's; vs sized floor = the exchange's over F2s's / F1s's.",
);
console.log(`  load average at start ${load(loadStart)}; at end ${load(loadEnd)} (${cpus().length} cores)`);

const out = values.out ?? repoPath("bench/results/cpu-per-call.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, rounds, windowMs, inFlight: IN_FLIGHT, loadAverage: { start: loadStart, end: loadEnd }, cells }, null, 2)}\n`,
);
console.log(`\nWrote ${out}`);

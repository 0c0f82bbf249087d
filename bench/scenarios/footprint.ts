/**
 * Footprint: N idle agents in one runtime host. For each N, a dedicated nats-server (so its memory
 * reflects only these agents) and one host; the host's and the server's resident memory before and
 * after launching N agents (each pinged once), the host's live heap after a full GC, and the CPU
 * both use while the agents sit idle. Alongside each N, the bare-NATS floor: one Node process, one
 * connection, N core subscriptions (footprint-bare.ts), on a dedicated server of its own.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { EXT, MODULE_NODE_ARGS } from "../lib/build.ts";
import { connect } from "@nats-io/transport-node";
import { HostPoolExecutor, Manager, NatsExchangeFactory } from "../../src/index.ts";
import { startNatsServer } from "../../src/testing/index.ts";
import { BenchEcho } from "../agents.ts";
import { cpuTimeMs, rssBytes, startHost } from "../lib/hosts.ts";
import type { BenchHost } from "../lib/hosts.ts";
import type { BenchContext, ScenarioResult, Target } from "../lib/report.ts";
import { bytes, sleep } from "../lib/stats.ts";

const BARE = fileURLToPath(new URL(`./footprint-bare.${EXT}`, import.meta.url));
const POOL = "footprint";
const IN_FLIGHT = 200;
const TARGET_N = 10_000;
const MEMORY_GOAL_BYTES = 50 * 1024;
const CPU_GOAL_PERCENT = 2;
const PROBE_MARK = "footprintProbe";
/**
 * Preloaded into the host (with --expose-gc): on SIGUSR2, a full GC, then one stdout line with
 * `process.memoryUsage()`. Nothing else changes in the host.
 */
const HOST_PROBE = `process.on("SIGUSR2", () => { globalThis.gc(); process.stdout.write(JSON.stringify({ ${PROBE_MARK}: process.memoryUsage() }) + "\\n"); });`;

/** `process.memoryUsage()` after a full GC. */
interface Heap {
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

interface Side {
  readonly rssBeforeBytes: number;
  readonly rssAfterBytes: number;
  /** RSS growth per agent (or subscription), bytes. */
  readonly bytesPerAgent: number;
  /** CPU over the idle window, as % of one core. */
  readonly idleCpuPercent: number;
  /** The busiest second of the window, as % of one core. */
  readonly peakCpuPercent: number;
  /** CPU ms used in each second of the window. */
  readonly cpuMsPerSecond: readonly number[];
}

interface NodeSide extends Side {
  readonly heapBefore: Heap;
  readonly heapAfter: Heap;
  /** Growth of V8 heap + external memory after a full GC, per agent, bytes. */
  readonly heapBytesPerAgent: number;
}

interface RuntimeFigures {
  readonly agents: number;
  readonly launchMs: number;
  readonly idleWindowMs: number;
  /** Host CPU in the window right after the launch (% of one core), before the idle window. */
  readonly afterLaunchCpuPercent: number | undefined;
  /** How long that window lasted (ms): at least `afterLaunchMs`, and until V8's memory reducer had run. */
  readonly afterLaunchWindowMs: number | undefined;
  /** When the host's memory reducer collected after the launch (ms after the launch ended; empty: not seen, or no window). */
  readonly memoryReducerAtMs: readonly number[];
  /**
   * The host's full collections during the idle window (`--trace-gc`: kind and pause in ms), so a
   * busy second in it can be told apart from the idle agents' own work.
   */
  readonly idleFullCollections: ReadonlyArray<{ readonly kind: string; readonly pauseMs: number }>;
  readonly host: NodeSide;
  readonly server: Side;
  /** Warnings and errors the host logged, by message. */
  readonly hostWarnings: readonly string[];
}

interface BareFigures {
  readonly subscriptions: number;
  readonly idleWindowMs: number;
  readonly client: NodeSide;
  readonly server: Side;
}

interface Cpu {
  readonly percent: number;
  readonly peakPercent: number;
  readonly msPerSecond: readonly number[];
}

/** CPU of several processes over one window, sampled each second: % of one core each. */
async function idleCpu(pids: readonly number[], windowMs: number): Promise<Cpu[]> {
  const first = pids.map(cpuTimeMs);
  const perSecond: number[][] = pids.map(() => []);
  const start = performance.now();
  let last = first;
  for (let second = 1; second * 1_000 <= windowMs; second++) {
    await sleep(start + second * 1_000 - performance.now());
    const now = pids.map(cpuTimeMs);
    now.forEach((ms, i) => perSecond[i]!.push(ms - last[i]!));
    last = now;
  }
  const wall = performance.now() - start;
  return pids.map((_, i) => ({
    percent: ((last[i]! - first[i]!) / wall) * 100,
    peakPercent: Math.max(0, ...perSecond[i]!) / 10,
    msPerSecond: perSecond[i]!,
  }));
}

function side(before: number, after: number, count: number, cpu: Cpu): Side {
  return {
    rssBeforeBytes: before,
    rssAfterBytes: after,
    bytesPerAgent: (after - before) / count,
    idleCpuPercent: cpu.percent,
    peakCpuPercent: cpu.peakPercent,
    cpuMsPerSecond: cpu.msPerSecond,
  };
}

function nodeSide(rss: [number, number], heap: [Heap, Heap], count: number, cpu: Cpu): NodeSide {
  const [before, after] = heap;
  return {
    ...side(rss[0], rss[1], count, cpu),
    heapBefore: before,
    heapAfter: after,
    heapBytesPerAgent: (after.heapUsed + after.external - before.heapUsed - before.external) / count,
  };
}

/** Full GC in the host, and its memory usage then. */
async function probeHost(host: BenchHost): Promise<Heap> {
  const from = host.lines.length;
  host.child.kill("SIGUSR2");
  const deadline = Date.now() + 30_000;
  for (;;) {
    const line = host.lines.slice(from).find((l) => l.includes(PROBE_MARK));
    if (line !== undefined) return (JSON.parse(line) as Record<string, Heap>)[PROBE_MARK]!;
    if (Date.now() > deadline) throw new Error("the host did not answer the memory probe");
    await sleep(50);
  }
}

/** Warnings and errors a host logged, counted by message (a fenced host invalidates the figures). */
/** The longest the window after a launch waits for the memory reducer. */
const MAX_AFTER_LAUNCH_MS = 180_000;
/** The reducer's collections come about 0.6 s apart: done when none came for this long. */
const REDUCER_QUIET_MS = 3_000;
const REDUCE_GC = /Mark-Compact \(reduce\)/;
/** A `--trace-gc` line of a full collection: its kind and its pause (the first of "pause / external" ms). */
const FULL_GC = /(Mark-Compact(?: \(reduce\))?) [^,]*, ([\d.]+) \/ [\d.]+ ms/;

/** The full collections among `lines` (`--trace-gc` output). */
function fullCollections(lines: readonly string[]): Array<{ kind: string; pauseMs: number }> {
  const found: Array<{ kind: string; pauseMs: number }> = [];
  for (const line of lines) {
    const match = FULL_GC.exec(line);
    if (match !== null) found.push({ kind: match[1]!, pauseMs: Number(match[2]) });
  }
  return found;
}

/**
 * Wait at least `minMs`, and until the host has logged a memory reducer collection (`--trace-gc`)
 * after line `from` and none for {@link REDUCER_QUIET_MS}; at most until `deadline`
 * (`performance.now()` time).
 * @returns when each collection was logged, ms after `launchEnded` (read every 250 ms).
 */
async function memoryReducerDone(host: BenchHost, from: number, launchEnded: number, minMs: number, deadline: number): Promise<number[]> {
  const start = performance.now();
  const seenAt: number[] = [];
  let read = from;
  for (;;) {
    const now = performance.now();
    for (; read < host.lines.length; read++) if (REDUCE_GC.test(host.lines[read]!)) seenAt.push(Math.round(now - launchEnded));
    const last = seenAt.at(-1);
    const quiet = last !== undefined && now - launchEnded - last >= REDUCER_QUIET_MS;
    if ((quiet && now - start >= minMs) || now >= deadline) return seenAt;
    await sleep(250);
  }
}

function hostWarnings(lines: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const line of lines) {
    const match = /"level":(\d+).*"msg":"([^"]*)"/.exec(line);
    if (match !== null && Number(match[1]) >= 40) counts.set(match[2]!, (counts.get(match[2]!) ?? 0) + 1);
  }
  return [...counts].map(([msg, n]) => `${n} x ${msg}`);
}

/** Wait for `promise`, at most `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Run `op` on every index with at most `limit` in flight. */
async function bounded(count: number, limit: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

/**
 * Launch `agents` agents and ping each once, `IN_FLIGHT` at a time. Fails, rather than hang the
 * whole run, when no ping has come back for `stallMs`.
 */
async function launchAll(manager: Manager, agents: number, stallMs: number): Promise<void> {
  let started = 0;
  let pinged = 0;
  let lastProgress = Date.now();
  const launching = bounded(agents, IN_FLIGHT, async () => {
    started++;
    const handle = await manager.launch(BenchEcho, { executor: POOL });
    await handle.ping({ timeoutMs: 120_000 });
    pinged++;
    lastProgress = Date.now();
  });
  launching.catch(() => undefined);
  let watchdog: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    watchdog = setInterval(() => {
      if (Date.now() - lastProgress < stallMs) return;
      reject(new Error(`launch stalled: ${pinged} of ${agents} agents answered a ping, ${started - pinged} launches or pings pending for ${stallMs / 1000} s`));
    }, 1_000);
  });
  try {
    await Promise.race([launching, stalled]);
  } finally {
    clearInterval(watchdog);
  }
}

async function measureRuntime(
  ctx: BenchContext,
  agents: number,
  settleMs: { before: number; after: number },
  windowMs: number,
  afterLaunchMs: number,
): Promise<RuntimeFigures> {
  await using server = await startNatsServer();
  const serverPid = server.pid!;
  const prefix = ctx.prefix(`footprint${agents}`);
  const host = await startHost({
    servers: server.url,
    prefix,
    pool: POOL,
    capacity: agents + 10,
    // --trace-gc: the idle window must start after V8's memory reducer has released the launch's garbage.
    nodeArgs: ["--expose-gc", "--trace-gc", `--import=data:text/javascript,${encodeURIComponent(HOST_PROBE)}`],
  });
  try {
    // Startup garbage is released some seconds after the host is ready (the full run waits it out).
    await sleep(settleMs.before);
    const hostBefore = rssBytes(host.pid);
    const serverBefore = rssBytes(serverPid);
    const heapBefore = await probeHost(host);

    const factory = new NatsExchangeFactory({ servers: server.url, prefix });
    const executor = new HostPoolExecutor({ pool: POOL });
    const manager = await Manager.fromExchangeFactory(factory, { executors: { [POOL]: executor } });
    try {
      const launchStart = performance.now();
      await launchAll(manager, agents, 60_000);
      const launchMs = performance.now() - launchStart;
      ctx.log(`footprint: ${agents} agents launched and pinged in ${(launchMs / 1000).toFixed(1)} s`);

      const launchEnded = performance.now();
      const linesAtLaunchEnd = host.lines.length;
      await sleep(settleMs.after);
      // The time after a launch includes V8 releasing the launch's garbage: once allocation stops,
      // its memory reducer runs a few full collections, some 60-75 s after the launch here, each a
      // few hundred ms of CPU at 10,000 agents. Measured apart, at least `afterLaunchMs` and until
      // the reducer has run (seen in the host's --trace-gc lines), so that the idle window after
      // it shows what idle agents cost.
      let afterLaunch: number | undefined;
      let afterLaunchWindowMs: number | undefined;
      let memoryReducerAtMs: number[] = [];
      if (afterLaunchMs > 0) {
        const started = performance.now();
        const cpuAtStart = cpuTimeMs(host.pid);
        memoryReducerAtMs = await memoryReducerDone(host, linesAtLaunchEnd, launchEnded, afterLaunchMs, started + MAX_AFTER_LAUNCH_MS);
        afterLaunchWindowMs = performance.now() - started;
        afterLaunch = ((cpuTimeMs(host.pid) - cpuAtStart) / afterLaunchWindowMs) * 100;
      }
      const linesAtIdleStart = host.lines.length;
      const [hostCpu, serverCpu] = (await idleCpu([host.pid, serverPid], windowMs)) as [Cpu, Cpu];
      const idleFullCollections = fullCollections(host.lines.slice(linesAtIdleStart));
      const hostAfter = rssBytes(host.pid);
      const serverAfter = rssBytes(serverPid);
      const heapAfter = await probeHost(host);
      const warnings = hostWarnings(host.lines);
      if (warnings.length > 0) ctx.log(`footprint: the host logged: ${warnings.join("; ")}`);
      return {
        agents,
        launchMs,
        idleWindowMs: windowMs,
        afterLaunchCpuPercent: afterLaunch,
        afterLaunchWindowMs,
        memoryReducerAtMs,
        idleFullCollections,
        host: nodeSide([hostBefore, hostAfter], [heapBefore, heapAfter], agents, hostCpu),
        server: side(serverBefore, serverAfter, agents, serverCpu),
        hostWarnings: warnings,
      };
    } finally {
      // Tear down without shutting N agents down one by one (that is the launch scenario's
      // business, and slow): stop following placements, so the manager has nothing to wait for,
      // then kill the host; the server and its store go with it. Bounded, so a stuck launch
      // cannot hang the run.
      await executor.close();
      await within(manager.close().catch(() => undefined), 15_000);
      await factory.close().catch(() => undefined);
    }
  } finally {
    await host.kill();
  }
}

async function measureBare(subscriptions: number, settleMs: number, windowMs: number): Promise<BareFigures> {
  await using server = await startNatsServer({ jetstream: false });
  const serverPid = server.pid!;
  const child = spawn(process.execPath, ["--expose-gc", ...MODULE_NODE_ARGS, BARE, server.url, String(subscriptions)], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const waiters: Array<{ prefix: string; resolve: (line: string) => void }> = [];
  let buffered = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    for (const line of parts) {
      const i = waiters.findIndex((w) => line.startsWith(w.prefix));
      if (i >= 0) waiters.splice(i, 1)[0]!.resolve(line);
    }
  });
  const next = (prefix: string): Promise<string> =>
    Promise.race([
      new Promise<string>((resolve) => waiters.push({ prefix, resolve })),
      exited.then(() => Promise.reject(new Error(`bare footprint child exited before printing '${prefix}'`))),
    ]);
  /** Send a command and wait for its answer. */
  const command = async (line: string, answer: string): Promise<string> => {
    const answered = next(answer);
    child.stdin!.write(`${line}\n`);
    return answered;
  };
  const gc = async (): Promise<Heap> => JSON.parse((await command("gc", "gc ")).slice(3)) as Heap;
  const nc = await connect({ servers: server.url });
  try {
    await next("connected");
    await sleep(settleMs);
    const clientBefore = rssBytes(child.pid!);
    const serverBefore = rssBytes(serverPid);
    const heapBefore = await gc();
    await command("sub", "subscribed");
    // One message to each listener, as each agent gets one ping.
    const payload = new Uint8Array(16);
    await bounded(subscriptions, IN_FLIGHT, async (i) => {
      await nc.request(`bare.${i}`, payload, { timeout: 30_000 });
    });
    await sleep(1_000);
    const [clientCpu, serverCpu] = (await idleCpu([child.pid!, serverPid], windowMs)) as [Cpu, Cpu];
    const clientAfter = rssBytes(child.pid!);
    const serverAfter = rssBytes(serverPid);
    const heapAfter = await gc();
    return {
      subscriptions,
      idleWindowMs: windowMs,
      client: nodeSide([clientBefore, clientAfter], [heapBefore, heapAfter], subscriptions, clientCpu),
      server: side(serverBefore, serverAfter, subscriptions, serverCpu),
    };
  } finally {
    await nc.close();
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

const pct = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}%` : "-");
const perItem = (value: number): string => (Number.isFinite(value) ? bytes(Math.round(value)) : "-");
const count = (n: number): string => n.toLocaleString("en-US");

export default async function footprint(ctx: BenchContext): Promise<ScenarioResult> {
  const sizes = ctx.quick ? [1_000, 2_000] : [1_000, TARGET_N];
  // The full run waits out the release of the host's startup garbage (some 8 s after it is ready).
  const settleMs = ctx.quick ? { before: 1_500, after: 1_500 } : { before: 12_000, after: 3_000 };
  // A host sweeps its pool's placements every 30 s (runtime/host.ts): the full run's window spans
  // two sweeps, so its mean is the true idle cost; the quick run's 5 s mostly misses them.
  const windowMs = ctx.quick ? 5_000 : 60_000;
  const afterLaunchMs = ctx.quick ? 0 : 60_000;
  const runs: Array<{ n: number; runtime: RuntimeFigures | { error: string }; bare: BareFigures }> = [];
  for (const n of sizes) {
    ctx.log(`footprint: ${n} agents in one host, and bare NATS with ${n} subscriptions alongside`);
    // Side by side: each figure is one process's own memory and CPU time, and both sides are
    // idle in their windows, so running them together costs the figures nothing and halves the time.
    const [runtime, bare] = await Promise.all([
      measureRuntime(ctx, n, settleMs, windowMs, afterLaunchMs).catch((error: unknown) => {
        ctx.log(`footprint: ${n} agents failed: ${(error as Error).message}`);
        return { error: (error as Error).message };
      }),
      measureBare(n, settleMs.before, windowMs),
    ]);
    runs.push({ n, runtime, bare });
  }

  const headers = ["N", "what", "RSS / item", "heap / item", "CPU, 1st min after launch", "idle CPU", "busiest 1 s", "nats-server RSS / item", "nats-server idle CPU"];
  const row = (n: number, what: string, proc: NodeSide, server: Side, afterLaunch?: number): string[] => [
    count(n),
    what,
    perItem(proc.bytesPerAgent),
    perItem(proc.heapBytesPerAgent),
    afterLaunch === undefined ? "-" : pct(afterLaunch),
    pct(proc.idleCpuPercent),
    pct(proc.peakCpuPercent),
    perItem(server.bytesPerAgent),
    pct(server.idleCpuPercent),
  ];
  const rows = runs.flatMap(({ n, runtime, bare }) => [
    "error" in runtime
      ? [count(n), "runtime: FAILED (see notes)", "-", "-", "-", "-", "-", "-", "-"]
      : row(n, "runtime: idle agents, one host", runtime.host, runtime.server, runtime.afterLaunchCpuPercent),
    row(bare.subscriptions, "bare NATS: core subscriptions", bare.client, bare.server),
  ]);

  const measured = runs.flatMap(({ runtime }) => ("error" in runtime ? [] : [runtime]));
  const largest = measured[measured.length - 1];
  const atTarget = measured.find((r) => r.agents === TARGET_N);
  const targets: Target[] = [
    largest === undefined
      ? { name: "idle agent memory", goal: "< 50 KiB", measured: "not measured (launch failed)", met: false }
      : {
          name: "idle agent memory",
          goal: "< 50 KiB",
          measured: `${perItem(largest.host.bytesPerAgent)} host RSS per agent at ${count(largest.agents)} agents (heap ${perItem(largest.host.heapBytesPerAgent)})`,
          met: largest.host.bytesPerAgent < MEMORY_GOAL_BYTES,
        },
    atTarget !== undefined
      ? {
          name: "idle host CPU, 10,000 agents",
          goal: "< 2% of a core",
          measured: `${pct(atTarget.host.idleCpuPercent)} over ${windowMs / 1000} s`,
          met: atTarget.host.idleCpuPercent < CPU_GOAL_PERCENT,
        }
      : largest !== undefined
        ? {
            name: "idle host CPU, 10,000 agents",
            goal: "< 2% of a core",
            measured: `${pct(largest.host.idleCpuPercent)} at ${count(largest.agents)} agents over ${windowMs / 1000} s (${ctx.quick ? "quick run" : "launch failed"}: 10,000 not measured)`,
            met: largest.host.idleCpuPercent < CPU_GOAL_PERCENT,
          }
        : { name: "idle host CPU, 10,000 agents", goal: "< 2% of a core", measured: "not measured (launch failed)", met: false },
    // Reported, not judged: what each idle agent (its mailbox consumer) costs nats-server.
    largest === undefined
      ? { name: "nats-server memory per idle agent", goal: "reported", measured: "not measured (launch failed)", met: false }
      : {
          name: "nats-server memory per idle agent",
          goal: "reported",
          measured: `${perItem(largest.server.bytesPerAgent)} server RSS per agent at ${count(largest.agents)} agents (a core subscription: ${perItem(runs[runs.length - 1]!.bare.server.bytesPerAgent)})`,
          met: true,
        },
  ];

  const failures = runs.flatMap(({ n, runtime }) => ("error" in runtime ? [`${count(n)} agents: ${runtime.error}`] : []));
  return {
    id: "footprint",
    title: `5. Footprint: N idle agents in one host (growth per agent after launch + one ping; heap after a full GC; CPU as % of one core${afterLaunchMs > 0 ? `, in the ${afterLaunchMs / 1000} s or more after the launch until V8's memory reducer has run, then` : ""} idle over ${windowMs / 1000} s)`,
    headers,
    rows,
    figures: { settleMs, afterLaunchMs, idleWindowMs: windowMs, inFlight: IN_FLIGHT, runs },
    targets,
    notes: [
      "An agent is a durable JetStream push consumer (its subscription costs nothing while idle) plus its runtime objects; the bare floor is one core subscription. nats-server keeps each consumer's state.",
      "Idle host CPU is the heartbeat (1 s, written by the heartbeat thread; the event loop passes it the record 4 times a second), the check of peers' heartbeats, and the 30 s sweep over the placements the host keeps by a watch. The time after a launch also holds V8 releasing the launch's garbage (its memory reducer's few full collections, once), so the idle window starts after them.",
      ...runs.flatMap(({ n, runtime }) =>
        "error" in runtime || runtime.afterLaunchWindowMs === undefined
          ? []
          : [
              `${count(n)} agents: window after the launch ${(runtime.afterLaunchWindowMs / 1000).toFixed(0)} s; memory reducer collections at ${
                runtime.memoryReducerAtMs.length === 0 ? "none seen" : runtime.memoryReducerAtMs.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(", ")
              } after the launch ended; full collections in the idle window: ${
                runtime.idleFullCollections.length === 0 ? "none" : runtime.idleFullCollections.map((gc) => `${gc.kind} ${gc.pauseMs.toFixed(0)} ms`).join(", ")
              }`,
            ],
      ),
      "RSS includes heap not yet released (noisy at small N and in the quick run); heap is measured after a full collection.",
      ...failures.map((f) => `FAILED ${f}`),
    ],
  };
}

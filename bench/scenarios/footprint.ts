/**
 * Footprint: N idle agents in one runtime host. For each N, a dedicated nats-server (so its memory
 * reflects only these agents) and one host; the host's and the server's resident memory before and
 * after launching N agents (each pinged once), and their CPU while the agents sit idle. Interleaved
 * with each N, the bare-NATS floor: one Node process, one connection, N core subscriptions
 * (footprint-bare.ts), on a dedicated server of its own.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import { HostPoolExecutor, Manager, NatsExchangeFactory } from "../../src/index.ts";
import { startNatsServer } from "../../src/testing/index.ts";
import { BenchEcho } from "../agents.ts";
import { cpuTimeMs, rssBytes, startHost } from "../lib/hosts.ts";
import type { BenchContext, ScenarioResult, Target } from "../lib/report.ts";
import { bytes, sleep } from "../lib/stats.ts";

const BARE = fileURLToPath(new URL("./footprint-bare.ts", import.meta.url));
const POOL = "footprint";
const IN_FLIGHT = 200;
const TARGET_N = 10_000;
const MEMORY_GOAL_BYTES = 50 * 1024;
const CPU_GOAL_PERCENT = 2;

interface Side {
  readonly rssBeforeBytes: number;
  readonly rssAfterBytes: number;
  readonly bytesPerAgent: number;
  /** CPU over the idle window, as % of one core. */
  readonly idleCpuPercent: number;
  /** The busiest second of the window, as % of one core. */
  readonly peakCpuPercent: number;
  /** CPU ms used in each second of the window. */
  readonly cpuMsPerSecond: readonly number[];
}

interface RuntimeFigures {
  readonly agents: number;
  readonly launchMs: number;
  readonly idleWindowMs: number;
  readonly host: Side;
  readonly server: Side;
}

interface BareFigures {
  readonly subscriptions: number;
  readonly idleWindowMs: number;
  readonly client: Side;
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

/** Warnings and errors a host logged, counted by message (a fenced host invalidates the figures). */
function hostTrouble(lines: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const line of lines) {
    const match = /"level":(\d+).*"msg":"([^"]*)"/.exec(line);
    if (match !== null && Number(match[1]) >= 40) counts.set(match[2]!, (counts.get(match[2]!) ?? 0) + 1);
  }
  return [...counts].map(([msg, n]) => `${n} x ${msg}`);
}

/** Run `op` on every index with at most `limit` in flight. */
async function bounded(count: number, limit: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
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

async function measureRuntime(ctx: BenchContext, agents: number, settleMs: number, windowMs: number): Promise<RuntimeFigures> {
  await using server = await startNatsServer();
  const serverPid = server.pid!;
  const prefix = ctx.prefix(`footprint${agents}`);
  const host = await startHost({ servers: server.url, prefix, pool: POOL, capacity: agents + 10 });
  try {
    await sleep(settleMs);
    const hostBefore = rssBytes(host.pid);
    const serverBefore = rssBytes(serverPid);

    const factory = new NatsExchangeFactory({ servers: server.url, prefix });
    const executor = new HostPoolExecutor({ pool: POOL });
    const manager = await Manager.fromExchangeFactory(factory, { executors: { [POOL]: executor } });
    try {
      const launchStart = performance.now();
      await bounded(agents, IN_FLIGHT, async () => {
        const handle = await manager.launch(BenchEcho, { executor: POOL });
        await handle.ping({ timeoutMs: 120_000 });
      });
      const launchMs = performance.now() - launchStart;
      ctx.log(`footprint: ${agents} agents launched and pinged in ${(launchMs / 1000).toFixed(1)} s`);

      await sleep(settleMs);
      const [hostCpu, serverCpu] = (await idleCpu([host.pid, serverPid], windowMs)) as [Cpu, Cpu];
      const hostAfter = rssBytes(host.pid);
      const serverAfter = rssBytes(serverPid);
      const trouble = hostTrouble(host.lines);
      if (trouble.length > 0) ctx.log(`footprint: host log during the run: ${trouble.join("; ")}`);
      return {
        agents,
        launchMs,
        idleWindowMs: windowMs,
        host: side(hostBefore, hostAfter, agents, hostCpu),
        server: side(serverBefore, serverAfter, agents, serverCpu),
      };
    } finally {
      // Tear down without shutting N agents down one by one (that is the launch scenario's
      // business, and slow): stop following placements, so the manager has nothing to wait for,
      // then kill the host; the server and its store go with it.
      await executor.close();
      await manager.close().catch(() => undefined);
    }
  } finally {
    await host.kill();
  }
}

async function measureBare(subscriptions: number, windowMs: number): Promise<BareFigures> {
  await using server = await startNatsServer({ jetstream: false });
  const serverPid = server.pid!;
  const child = spawn(process.execPath, ["--expose-gc", "--import", "tsx", BARE, server.url, String(subscriptions)], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const waiters: Array<{ line: string; resolve: () => void }> = [];
  let buffered = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    for (const line of parts) {
      const i = waiters.findIndex((w) => w.line === line);
      if (i >= 0) waiters.splice(i, 1)[0]!.resolve();
    }
  });
  const next = (line: string): Promise<void> =>
    Promise.race([
      new Promise<void>((resolve) => waiters.push({ line, resolve })),
      exited.then(() => Promise.reject(new Error(`bare footprint child exited before printing '${line}'`))),
    ]);
  /** Send a command and wait for its answer. */
  const command = async (line: string, answer: string): Promise<void> => {
    const answered = next(answer);
    child.stdin!.write(`${line}\n`);
    await answered;
  };
  const nc = await connect({ servers: server.url });
  try {
    await next("connected");
    await command("gc", "gc");
    const clientBefore = rssBytes(child.pid!);
    const serverBefore = rssBytes(serverPid);
    await command("sub", "subscribed");
    // One message to each listener, as each agent gets one ping.
    const payload = new Uint8Array(16);
    await bounded(subscriptions, IN_FLIGHT, async (i) => {
      await nc.request(`bare.${i}`, payload, { timeout: 30_000 });
    });
    await command("gc", "gc");
    await sleep(500);
    const clientAfter = rssBytes(child.pid!);
    const serverAfter = rssBytes(serverPid);
    const [clientCpu, serverCpu] = (await idleCpu([child.pid!, serverPid], windowMs)) as [Cpu, Cpu];
    return {
      subscriptions,
      idleWindowMs: windowMs,
      client: side(clientBefore, clientAfter, subscriptions, clientCpu),
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

export default async function footprint(ctx: BenchContext): Promise<ScenarioResult> {
  const sizes = ctx.quick ? [1_000, 2_000] : [1_000, TARGET_N];
  const settleMs = ctx.quick ? 1_500 : 3_000;
  // A host sweeps its pool's placements every 30 s (runtime/host.ts): the full run's window spans
  // two sweeps, so its mean is the true idle cost; the quick run's 5 s mostly misses them.
  const windowMs = ctx.quick ? 5_000 : 60_000;
  const runs: Array<{ runtime: RuntimeFigures; bare: BareFigures }> = [];
  for (const n of sizes) {
    ctx.log(`footprint: ${n} agents in one host, and bare NATS with ${n} subscriptions alongside`);
    // Side by side: each figure is one process's own memory and CPU time, and both sides are
    // idle in their windows, so running them together costs the figures nothing and halves the time.
    const [runtime, bare] = await Promise.all([measureRuntime(ctx, n, settleMs, windowMs), measureBare(n, windowMs)]);
    runs.push({ runtime, bare });
  }

  const headers = ["N", "what", "process RSS / item", "process idle CPU", "busiest 1 s", "nats-server RSS / item", "nats-server idle CPU"];
  const row = (n: number, what: string, proc: Side, server: Side): string[] => [
    n.toLocaleString("en-US"),
    what,
    perItem(proc.bytesPerAgent),
    pct(proc.idleCpuPercent),
    pct(proc.peakCpuPercent),
    perItem(server.bytesPerAgent),
    pct(server.idleCpuPercent),
  ];
  const rows = runs.flatMap(({ runtime, bare }) => [
    row(runtime.agents, "runtime: idle agents, one host", runtime.host, runtime.server),
    row(bare.subscriptions, "bare NATS: core subscriptions", bare.client, bare.server),
  ]);

  const largest = runs[runs.length - 1]!.runtime;
  const atTarget = runs.find((r) => r.runtime.agents === TARGET_N)?.runtime;
  const cpuFigure = atTarget ?? largest;
  const targets: Target[] = [
    {
      name: "idle agent memory",
      goal: "< 50 KiB",
      measured: `${perItem(largest.host.bytesPerAgent)} host RSS per agent at ${largest.agents.toLocaleString("en-US")} agents`,
      met: largest.host.bytesPerAgent < MEMORY_GOAL_BYTES,
    },
    {
      name: "idle host CPU, 10,000 agents",
      goal: "< 2% of a core",
      measured:
        atTarget !== undefined
          ? `${pct(atTarget.host.idleCpuPercent)} over ${windowMs / 1000} s`
          : `${pct(largest.host.idleCpuPercent)} at ${largest.agents.toLocaleString("en-US")} agents over ${windowMs / 1000} s (quick run: 10,000 not measured)`,
      met: cpuFigure.host.idleCpuPercent < CPU_GOAL_PERCENT,
    },
  ];

  return {
    id: "footprint",
    title: `Footprint: N idle agents in one host (RSS growth per agent after launch + one ping; idle CPU over ${windowMs / 1000} s, % of one core)`,
    headers,
    rows,
    figures: { settleMs, idleWindowMs: windowMs, inFlight: IN_FLIGHT, runs },
    targets,
    notes: [
      "An agent is a durable JetStream push consumer (its subscription costs nothing while idle) plus its runtime objects; the bare floor is one core subscription. nats-server keeps each consumer's state.",
      "Idle host CPU is the heartbeat (2 s) and, every 30 s, the sweep that reads and decodes every placement of the pool, plus the GC it causes: it grows with N. RSS growth includes uncollected heap; the bare floor is measured after a full GC.",
    ],
  };
}

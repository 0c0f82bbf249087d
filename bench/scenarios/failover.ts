/**
 * Failover: 100 agents launched through a pool of 2 runtime hosts and each pinged once; then
 * `kill -9` of the host running the most of them (t0). Every agent is pinged concurrently and
 * repeatedly (each ping waits at most PING_WAIT_MS, then another is sent) until it answers.
 * Reported from t0: when the surviving host reaped the dead one (its log), when the first agent
 * of the dead host answered again, and when every agent had answered. With the host defaults
 * (heartbeat 1 s, ttl 3 s), with the defaults before issue 17 (heartbeat 2 s, ttl 6 s) and with a
 * short ttl, to show what governs the figure; the full run repeats each 3 times (the kill falls at
 * a random point of the heartbeat cycle).
 */
import { HostPoolExecutor, Manager, NatsExchangeFactory, RequestTimeoutError } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { BenchEcho } from "../agents.ts";
import { startHost } from "../lib/hosts.ts";
import type { BenchHost } from "../lib/hosts.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { ms, sleep } from "../lib/stats.ts";

const POOL = "default";
const AGENTS = 100;
/** Each host can run every agent, so the survivor takes all of the dead host's. */
const CAPACITY = 200;
/** How long one ping waits before the next one is sent. */
const PING_WAIT_MS = 1_000;
/** Give up on an agent this long after the kill. */
const GIVE_UP_MS = 60_000;
const CLOSE_TIMEOUT_MS = 30_000;

interface Settings {
  readonly label: string;
  /** undefined: the host default. */
  readonly heartbeatMs?: number;
  readonly hostTtlMs?: number;
}

/** The host defaults (runtime/host-options.ts). */
const DEFAULT_HEARTBEAT_MS = 1_000;
const DEFAULT_TTL_MS = 3_000;
const DEFAULTS: Settings = { label: `defaults (heartbeat ${DEFAULT_HEARTBEAT_MS} ms, ttl ${DEFAULT_TTL_MS} ms)` };
const FORMER: Settings = { label: "former defaults (heartbeat 2000 ms, ttl 6000 ms)", heartbeatMs: 2_000, hostTtlMs: 6_000 };
const TUNED: Settings = { label: "tuned (heartbeat 500 ms, ttl 1500 ms)", heartbeatMs: 500, hostTtlMs: 1_500 };

/** Milliseconds from the kill. */
interface FailoverResult {
  readonly settings: Settings;
  readonly agentsOnDeadHost: number;
  /** The survivor's log line "reaped a silent host", or NaN if it did not log one. */
  readonly reapedMs: number;
  /** The survivor's log line "agents of the reaped host queued again". */
  readonly requeuedMs: number;
  readonly firstDeadHostAgentMs: number;
  readonly allAnsweredMs: number;
  /** Slowest first answer of an agent that was on the surviving host. */
  readonly survivorAgentsMs: number;
  /** Pings sent after the kill (timed out ones included). */
  readonly pingsSent: number;
}

/** Ping until the agent answers; ms from `t0` to the answer. */
async function answeredAfter(handle: Handle<BenchEcho>, t0: number, count: () => void): Promise<number> {
  for (;;) {
    if (performance.now() - t0 > GIVE_UP_MS) throw new Error(`${handle.agentId} did not answer within ${GIVE_UP_MS / 1000} s of the kill`);
    count();
    try {
      await handle.ping({ timeoutMs: PING_WAIT_MS });
      return performance.now() - t0;
    } catch (error) {
      if (!(error instanceof RequestTimeoutError)) await sleep(100); // not expected; try again
    }
  }
}

/** Epoch ms of the first log line of `host` with message `msg`, or undefined. */
function logTime(host: BenchHost, msg: string): number | undefined {
  for (const line of host.lines) {
    if (!line.includes(`"msg":"${msg}"`)) continue;
    const time = (JSON.parse(line) as { time?: unknown }).time;
    if (typeof time === "number") return time;
  }
  return undefined;
}

async function measure(ctx: BenchContext, settings: Settings): Promise<FailoverResult> {
  const prefix = ctx.prefix("failover");
  const servers = ctx.server.url;
  ctx.log(`failover: ${settings.label}: starting 2 hosts`);
  const hostOptions = { servers, prefix, pool: POOL, capacity: CAPACITY, heartbeatMs: settings.heartbeatMs, hostTtlMs: settings.hostTtlMs };
  const started = await Promise.allSettled([startHost(hostOptions), startHost(hostOptions)]);
  const hosts: BenchHost[] = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  let manager: Manager | undefined;
  try {
    for (const s of started) if (s.status === "rejected") throw s.reason;
    const pool = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers, prefix }), {
      executors: { pool: new HostPoolExecutor({ pool: POOL }) },
    });
    manager = pool;
    const handles = await Promise.all(Array.from({ length: AGENTS }, () => pool.launch(BenchEcho, { executor: "pool" })));
    await Promise.all(handles.map((h) => h.ping({ timeoutMs: 30_000 })));
    const pids = await Promise.all(handles.map((h) => h.where()));

    // The victim: the host running the most agents (with 2 hosts, one that has some).
    const agentsOn = (host: BenchHost): number => pids.filter((pid) => pid === host.pid).length;
    const [victim, survivor] = [...hosts].sort((a, b) => agentsOn(b) - agentsOn(a)) as [BenchHost, BenchHost];
    const onDeadHost = new Set(handles.filter((_, i) => pids[i] === victim.pid));
    ctx.log(`failover: ${settings.label}: ${onDeadHost.size} of ${AGENTS} agents on ${victim.hostId}; kill -9`);

    // In the hosts' steady state (heartbeating for a ttl), at a random point of the heartbeat cycle.
    const heartbeatMs = settings.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    await sleep((settings.hostTtlMs ?? DEFAULT_TTL_MS) + Math.random() * heartbeatMs);
    const t0 = performance.now();
    const killedAt = Date.now();
    await victim.kill();
    let pingsSent = 0;
    const answered = await Promise.all(handles.map((h) => answeredAfter(h, t0, () => pingsSent++)));
    const dead = answered.filter((_, i) => onDeadHost.has(handles[i]!));
    const alive = answered.filter((_, i) => !onDeadHost.has(handles[i]!));
    const since = (epoch: number | undefined): number => (epoch === undefined ? Number.NaN : epoch - killedAt);
    const result: FailoverResult = {
      settings,
      agentsOnDeadHost: onDeadHost.size,
      reapedMs: since(logTime(survivor, "reaped a silent host; restarting its agents")),
      requeuedMs: since(logTime(survivor, "agents of the reaped host queued again")),
      firstDeadHostAgentMs: Math.min(...dead),
      allAnsweredMs: Math.max(...answered),
      survivorAgentsMs: alive.length > 0 ? Math.max(...alive) : Number.NaN,
      pingsSent,
    };
    ctx.log(`failover: ${settings.label}: every agent answered ${ms(result.allAnsweredMs)} ms after the kill`);
    return result;
  } finally {
    // The survivor runs every agent now: close shuts them down through it, then stop it.
    if (manager !== undefined) {
      const closed = manager.close().then(
        () => true,
        (error: unknown) => {
          ctx.log(`failover: manager close failed: ${String(error)}`);
          return true;
        },
      );
      const timedOut = new Promise<false>((resolve) => setTimeout(() => resolve(false), CLOSE_TIMEOUT_MS).unref());
      if (!(await Promise.race([closed, timedOut]))) ctx.log(`failover: manager still closing after ${CLOSE_TIMEOUT_MS / 1000} s; stopping the hosts`);
    }
    await Promise.all(hosts.map((host) => host.stop(10_000)));
  }
}

/** The run with the median time until every agent answers, and the spread of that figure. */
interface SettingResult {
  readonly settings: Settings;
  readonly runs: readonly FailoverResult[];
  readonly median: FailoverResult;
  readonly minAllMs: number;
  readonly maxAllMs: number;
}

export default async function failover(ctx: BenchContext): Promise<ScenarioResult> {
  const settingsList = ctx.quick ? [DEFAULTS] : [DEFAULTS, FORMER, TUNED];
  const runsPerSetting = ctx.quick ? 1 : 3;
  const results: SettingResult[] = [];
  for (const settings of settingsList) {
    const runs: FailoverResult[] = [];
    for (let i = 0; i < runsPerSetting; i++) runs.push(await measure(ctx, settings));
    const byAll = [...runs].sort((a, b) => a.allAnsweredMs - b.allAnsweredMs);
    results.push({
      settings,
      runs,
      median: byAll[Math.floor((byAll.length - 1) / 2)]!,
      minAllMs: byAll[0]!.allAnsweredMs,
      maxAllMs: byAll[byAll.length - 1]!.allAnsweredMs,
    });
  }

  const headers = ["settings", "on dead host", "host reaped", "first of them answers", "all answer"];
  if (runsPerSetting > 1) headers.push("all answer, range");
  return {
    id: "failover",
    title: `6. Failover: kill -9 of one of 2 hosts running ${AGENTS} agents (ms after the kill${runsPerSetting > 1 ? `; median of ${runsPerSetting} runs` : ""})`,
    headers,
    rows: results.map((r) => {
      const m = r.median;
      const row = [r.settings.label, String(m.agentsOnDeadHost), ms(m.reapedMs), ms(m.firstDeadHostAgentMs), ms(m.allAnsweredMs)];
      if (runsPerSetting > 1) row.push(`${ms(r.minAllMs)}-${ms(r.maxAllMs)}`);
      return row;
    }),
    figures: {
      agents: AGENTS,
      pingWaitMs: PING_WAIT_MS,
      runsPerSetting,
      settings: results.map((r) => ({
        heartbeatMs: r.settings.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
        hostTtlMs: r.settings.hostTtlMs ?? DEFAULT_TTL_MS,
        median: figures(r.median),
        runs: r.runs.map(figures),
      })),
    },
    targets: results
      .filter((r) => r.settings === DEFAULTS)
      .map((r) => ({
        name: `failover of ${AGENTS} agents with the host defaults (all answer after kill -9)`,
        goal: "< 5 s",
        measured: `${(r.median.allAnsweredMs / 1000).toFixed(2)} s${runsPerSetting > 1 ? ` (median of ${runsPerSetting}; ${(r.minAllMs / 1000).toFixed(2)}-${(r.maxAllMs / 1000).toFixed(2)} s)` : ""}`,
        met: r.median.allAnsweredMs < 5_000,
      })),
    notes: [
      "Governed by the host ttl: a silent host is reaped once its record is ttl old (checked every heartbeat/2, so ttl - heartbeat to ttl + heartbeat/2 after the kill), then the survivor restarts its agents.",
      `Pings sent meanwhile wait in the mailboxes and are answered by the new run (each waits ${PING_WAIT_MS} ms, then another is sent).`,
      "Bare NATS has no figure: a core responder that dies is not replaced; its requests time out until something restarts it.",
    ],
  };
}

function figures(r: FailoverResult): Record<string, number> {
  return {
    agentsOnDeadHost: r.agentsOnDeadHost,
    reapedMs: r.reapedMs,
    requeuedMs: r.requeuedMs,
    firstDeadHostAgentMs: r.firstDeadHostAgentMs,
    allAnsweredMs: r.allAnsweredMs,
    survivorAgentsMs: r.survivorAgentsMs,
    pingsSent: r.pingsSent,
  };
}

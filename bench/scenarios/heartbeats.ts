/**
 * Heartbeats under load: how late a runtime host's heartbeats come when its event loop is busy,
 * which bounds how short a host ttl can be without reaping live hosts (docs/HOSTS.md 5.2). One
 * `academy host` child process heartbeats every HEARTBEAT_MS (ttl long enough never to reap it);
 * this process follows its record in the hosts bucket and takes `heartbeatAt` (written by the host,
 * same machine clock) of each. Phases, one after the other: idle; request load (pipelined echo
 * calls to agents of the host); GC pressure (an action that allocates and retains garbage while
 * yielding to the event loop); a CPU-bound action that holds the event loop for SPIN_MS. Reported
 * per phase: the largest gap between two heartbeats, and that gap less the interval (the delay).
 * Twice, side by side: heartbeats from the host's heartbeat thread (the default), and from its
 * event loop (`--no-heartbeat-thread`).
 */
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { HostPoolExecutor, Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { decodeValue } from "../../src/protocol/codec.ts";
import type { HostRecord } from "../../src/pool/records.ts";
import { BenchEcho, BenchLoad } from "../agents.ts";
import { startHost } from "../lib/hosts.ts";
import type { BenchHost } from "../lib/hosts.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { ms, sleep } from "../lib/stats.ts";

const POOL = "default";
const HEARTBEAT_MS = 250;
/** Long enough that the host is never reaped (the scenario measures, nothing fails over). */
const TTL_MS = 120_000;
const ECHO_AGENTS = 20;
const IN_FLIGHT = 64;
const PAYLOAD = new Uint8Array(1_024);
/** The CPU-bound action: the gap it makes is this plus up to one interval, by construction. */
const SPIN_MS = 1_500;
/** Old-generation garbage the GC phase keeps replacing. */
const RETAIN_MIB = 256;
/** Pause between phases, so that one phase's late heartbeat is not counted in the next. */
const SETTLE_MS = 1_000;

interface Phase {
  readonly name: string;
  readonly startedAt: number;
  readonly endedAt: number;
}

interface PhaseResult {
  readonly mode: string;
  readonly phase: string;
  readonly heartbeats: number;
  readonly maxGapMs: number;
  readonly maxDelayMs: number;
}

/** Gaps between consecutive heartbeats whose later one falls in the phase (or its settling time). */
function analyse(mode: string, phase: Phase, beats: readonly number[]): PhaseResult {
  let heartbeats = 0;
  let maxGapMs = 0;
  for (let i = 1; i < beats.length; i++) {
    const at = beats[i]!;
    if (at < phase.startedAt || at >= phase.endedAt + SETTLE_MS) continue;
    heartbeats++;
    maxGapMs = Math.max(maxGapMs, at - beats[i - 1]!);
  }
  return { mode, phase: phase.name, heartbeats, maxGapMs, maxDelayMs: Math.max(0, maxGapMs - HEARTBEAT_MS) };
}

async function echoLoad(handles: readonly Handle<BenchEcho>[], untilMs: number): Promise<number> {
  let calls = 0;
  const worker = async (w: number): Promise<void> => {
    for (let i = w; Date.now() < untilMs; i += IN_FLIGHT) {
      await handles[i % handles.length]!.with({ timeoutMs: 30_000 }).echo(PAYLOAD);
      calls++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, (_, w) => worker(w)));
  return calls;
}

const MODES = [
  { mode: "thread", extra: [] },
  { mode: "event loop", extra: ["--no-heartbeat-thread"] },
] as const;

async function measure(ctx: BenchContext, mode: (typeof MODES)[number], phaseMs: number): Promise<{ results: PhaseResult[]; calls: number }> {
  const prefix = ctx.prefix(`heartbeats-${mode.mode.replace(" ", "-")}`);
  const servers = ctx.server.url;
  ctx.log(`heartbeats: starting a host (heartbeat ${HEARTBEAT_MS} ms, from its ${mode.mode})`);
  let host: BenchHost | undefined;
  let manager: Manager | undefined;
  const nc = await connect({ servers });
  try {
    host = await startHost({ servers, prefix, pool: POOL, capacity: 100, heartbeatMs: HEARTBEAT_MS, hostTtlMs: TTL_MS, extra: mode.extra });
    const beats: number[] = [];
    const kv = await new Kvm(nc).open(`${prefix}_hosts`);
    const watch = await kv.watch({ key: host.hostId });
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation !== "PUT") continue;
        beats.push((decodeValue(entry.value) as HostRecord).heartbeatAt);
      }
    })();

    const pool = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers, prefix }), {
      executors: { pool: new HostPoolExecutor({ pool: POOL }) },
    });
    manager = pool;
    const echoes = await Promise.all(Array.from({ length: ECHO_AGENTS }, () => pool.launch(BenchEcho, { executor: "pool" })));
    const load = await pool.launch(BenchLoad, { executor: "pool" });
    await Promise.all([...echoes, load].map((h) => h.ping({ timeoutMs: 30_000 })));

    const phases: Phase[] = [];
    const run = async (name: string, work: () => Promise<unknown>): Promise<void> => {
      ctx.log(`heartbeats: ${name}`);
      const startedAt = Date.now();
      await work();
      phases.push({ name, startedAt, endedAt: Date.now() });
      await sleep(SETTLE_MS);
    };
    await run("idle", () => sleep(phaseMs));
    let calls = 0;
    await run(`request load (${IN_FLIGHT} echo calls in flight, 1 KiB)`, async () => {
      calls = await echoLoad(echoes, Date.now() + phaseMs);
    });
    await run(`GC pressure (${RETAIN_MIB} MiB retained, replaced piecemeal)`, () => load.with({ timeoutMs: phaseMs + 30_000 }).churn(phaseMs, RETAIN_MIB));
    await run(`CPU-bound action (${SPIN_MS} ms without yielding)`, () => load.with({ timeoutMs: SPIN_MS + 30_000 }).spin(SPIN_MS));
    watch.stop();

    return { results: phases.map((phase) => analyse(mode.mode, phase, beats)), calls };
  } finally {
    if (manager !== undefined) await manager.close().catch((error: unknown) => ctx.log(`heartbeats: manager close failed: ${String(error)}`));
    await host?.stop(10_000);
    await nc.close();
  }
}

export default async function heartbeats(ctx: BenchContext): Promise<ScenarioResult> {
  const phaseMs = ctx.quick ? 4_000 : 10_000;
  const runs = [];
  for (const mode of MODES) runs.push(await measure(ctx, mode, phaseMs));
  const results = runs.flatMap((r) => r.results);
    return {
      id: "heartbeats",
      title: `6a. Heartbeats of a host under load (interval ${HEARTBEAT_MS} ms; largest gap between two heartbeats, ms)`,
      headers: ["heartbeats from", "phase", "heartbeats", "largest gap", "delay beyond the interval"],
      rows: results.map((r) => [r.mode, r.phase, String(r.heartbeats), ms(r.maxGapMs), ms(r.maxDelayMs)]),
      figures: { heartbeatMs: HEARTBEAT_MS, phaseMs, echoCalls: runs.map((r) => r.calls), phases: results },
      targets: [],
      notes: [
        "The delay is how long the host's event loop kept its heartbeat from being written: a host is reaped when its silence (interval + delay) reaches its ttl.",
        "From the event loop, a CPU-bound action delays heartbeats by its own length. From the heartbeat thread, it does not, up to the host ttl (then the thread stops vouching for the stuck event loop, and the host is reaped).",
      ],
    };
}

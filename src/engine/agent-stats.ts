/**
 * Statistics of a running agent (Academy's `agent_stats`, and more): per action, calls handled,
 * failed and in flight, and the mean and 99th percentile of their run time; the state of each
 * loop; uptime. Collected by the engine with counters and a fixed histogram per action (no
 * allocation per call), read through the built-in action `agentStats` or `AgentEngine.stats()`,
 * as plain data a metrics exporter can turn into gauges and counters.
 */
import type { SubscriptionStats } from "./subscriptions.ts";
import type { LoopSpec } from "../agent/decorators.ts";
import type { LoopState } from "./loops.ts";

/** One action's figures since the agent's run started. */
export interface ActionStats {
  /** Calls that finished: returned or threw. */
  readonly handled: number;
  /** Of those, calls that threw (a failure, a cancellation, a deadline). */
  readonly failed: number;
  /** Calls running now (waiting for a concurrency slot does not count). */
  readonly inFlight: number;
  /** Mean run time of the finished calls, in ms; undefined before the first. */
  readonly meanMs: number | undefined;
  /**
   * 99th percentile of the run times, in ms: an estimate from a histogram of buckets about 9%
   * wide, never above the longest run. Undefined before the first call finishes.
   */
  readonly p99Ms: number | undefined;
  /** Longest run time, in ms; undefined before the first call finishes. */
  readonly maxMs: number | undefined;
}

/** A loop, timer or event handler. */
export interface LoopStats {
  readonly name: string;
  readonly kind: LoopSpec["kind"];
  readonly state: LoopState;
}

/** What the built-in action `agentStats` returns. */
export interface AgentStats {
  readonly agentId: string;
  readonly agentType: string;
  /** The engine's state (`starting`, `running`, `stopping`, ...). */
  readonly state: string;
  /** When startup completed (ms since the epoch); undefined before. */
  readonly startedAt: number | undefined;
  /** Time since startup completed, in ms (0 before). */
  readonly uptimeMs: number;
  /** Totals over all actions. */
  readonly handled: number;
  readonly failed: number;
  readonly inFlight: number;
  /** Per action, every action the agent declares (built-in ones included). */
  readonly actions: Readonly<Record<string, ActionStats>>;
  readonly loops: readonly LoopStats[];
  /** Agents launched alongside this one that are still running. */
  readonly children: number;
  /** Event subscriptions (`@subscribe`): events handled, handler runs that failed, events dead-lettered; absent without any. */
  readonly subscriptions?: ReadonlyArray<SubscriptionStats>;
}

/** Buckets per doubling of the run time: each about 9% wide. */
const PER_DOUBLING = 8;
/** 2^32 µs (about 71 minutes) and above share the last bucket. */
const BUCKETS = 32 * PER_DOUBLING + 1;

/** The bucket of a run time in µs: 0 for at most 1 µs, then `ceil(log2(µs) · 8)`. */
function bucketOf(micros: number): number {
  return micros <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log2(micros) * PER_DOUBLING));
}

/** One action's counters. */
class ActionRecord {
  handled = 0;
  failed = 0;
  inFlight = 0;
  totalMs = 0;
  maxMs = 0;
  /**
   * Made on the first finished call: an idle agent's actions hold none (about 1.1 KiB each, four
   * or more actions per agent; docs/BENCHMARKS.md section 5).
   */
  #histogram: Uint32Array | undefined;

  record(ms: number, ok: boolean): void {
    this.inFlight--;
    this.handled++;
    if (!ok) this.failed++;
    this.totalMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
    (this.#histogram ??= new Uint32Array(BUCKETS))[bucketOf(ms * 1000)]!++;
  }

  /** The run time below which `q` of the calls finished: the upper edge of its bucket, capped by the longest. */
  quantile(q: number): number {
    const rank = Math.ceil(q * this.handled);
    const histogram = this.#histogram;
    if (histogram === undefined) return this.maxMs;
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += histogram[bucket]!;
      if (seen >= rank) return Math.min(2 ** (bucket / PER_DOUBLING) / 1000, this.maxMs);
    }
    return this.maxMs;
  }

  snapshot(): ActionStats {
    const some = this.handled > 0;
    return {
      handled: this.handled,
      failed: this.failed,
      inFlight: this.inFlight,
      meanMs: some ? this.totalMs / this.handled : undefined,
      p99Ms: some ? this.quantile(0.99) : undefined,
      maxMs: some ? this.maxMs : undefined,
    };
  }
}

/** The action counters of one run of an agent. Unknown action names are not counted. */
export class ActionStatsRecorder {
  readonly #actions = new Map<string, ActionRecord>();

  constructor(actions: Iterable<string>) {
    for (const name of actions) this.#actions.set(name, new ActionRecord());
  }

  /** An action starts running. @returns its start time, to give back to {@link end}. */
  begin(action: string): number {
    const record = this.#actions.get(action);
    if (record !== undefined) record.inFlight++;
    return performance.now();
  }

  /** An action that began at `start` returned (`ok`) or threw. */
  end(action: string, start: number, ok: boolean): void {
    this.#actions.get(action)?.record(performance.now() - start, ok);
  }

  /** Every action's figures. */
  snapshot(): Record<string, ActionStats> {
    const snapshot: Record<string, ActionStats> = {};
    for (const [name, record] of this.#actions) snapshot[name] = record.snapshot();
    return snapshot;
  }
}

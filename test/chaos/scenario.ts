/**
 * The contract of a fault scenario (`npm run chaos`). A scenario starts its own servers on random
 * ports, puts the runtime under load, injects its fault, and reports what happened to every call:
 * answered, failed (a typed error reached the caller), executed twice, never executed, and the
 * longest stall. The runner fails (exit 1) on any loss or double execution, or on a stall over the
 * scenario's bound.
 */

/** Stall bounds of `--short` runs are this many times the scenario's own. */
export const SHORT_STALL_FACTOR = 3;

/** What a scenario measured. */
export interface ChaosResult {
  /** Calls made. */
  readonly calls: number;
  /** Calls answered with their result. */
  readonly answered: number;
  /** Calls that ended with a typed error the scenario expects (a timeout it caused, say). */
  readonly failed: number;
  /** Requests whose action ran more than once. Must be 0. */
  readonly executedTwice: number;
  /** Requests answered or accepted whose action never ran. Must be 0. */
  readonly neverExecuted: number;
  /** The longest time with no call completing while calls were outstanding, in ms. */
  readonly maxStallMs: number;
  /** Scenario-specific figures (fault timings, memory, counts), printed and written as they are. */
  readonly details?: Readonly<Record<string, number | string | boolean>>;
}

/** Options every scenario receives from the runner. */
export interface ChaosContext {
  /** `--short`: the form CI runs after the tests (fewer calls, one repetition). */
  readonly short: boolean;
  /**
   * What stall bounds are multiplied by: 1 for full runs, {@link SHORT_STALL_FACTOR} for `--short`
   * (CI shares two cores with whatever else runs; losses and double executions fail either way).
   */
  readonly stallFactor: number;
  /** Progress line on stderr. */
  log(message: string): void;
}

/** A fault scenario. */
export interface ChaosScenario {
  /** Key on the command line (`--only`) and in the JSON, e.g. "server-kill". */
  readonly id: string;
  /** One line: the fault and the load. */
  readonly title: string;
  /** A stall longer than this fails the scenario, in ms. */
  readonly maxStallMs: number;
  run(ctx: ChaosContext): Promise<ChaosResult>;
}

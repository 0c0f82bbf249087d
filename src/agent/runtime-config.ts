import { InvalidConfigError } from "../errors.ts";

/**
 * How an agent's runtime behaves. Names and defaults follow Academy's `RuntimeConfig`.
 */
export interface RuntimeConfig {
  /**
   * At shutdown, cancel in-flight actions (callers get `ActionCancelledError`) instead of waiting
   * for them to finish.
   * @defaultValue true
   */
  cancelActionsOnShutdown?: boolean;
  /**
   * Shut the agent down when a loop (or timer, or event handler) throws.
   * @defaultValue true
   */
  shutdownOnLoopError?: boolean;
  /**
   * Make the run fail with the loop errors at shutdown (one error as-is, several as an
   * `ErrorGroup`).
   * @defaultValue true
   */
  raiseLoopErrorsOnShutdown?: boolean;
  /**
   * Terminate the agent's mailbox after an expected shutdown (a shutdown request or
   * `agentShutdown()`).
   * @defaultValue true
   */
  terminateOnSuccess?: boolean;
  /**
   * Terminate the agent's mailbox after a failure (startup error, loop error).
   * @defaultValue true
   */
  terminateOnError?: boolean;
  /**
   * Most actions running at once; further requests wait in the mailbox, unacknowledged, until a
   * slot frees up. Pings, cancels and shutdowns are never held back.
   * @defaultValue Infinity (unbounded)
   */
  maxConcurrentActions?: number;
  /**
   * At shutdown, how long loops (after their signal aborts) and cancelled actions get to stop, in
   * ms. JavaScript cannot stop an async function that ignores its signal: after this grace the
   * engine abandons such work (logging a warning naming it) and finishes shutting down; the
   * abandoned work may still run to its end in the process, but nothing waits for it any more.
   * Actions left running (`cancelActionsOnShutdown: false`) are waited for without a bound.
   * `Infinity` waits for everything.
   * @defaultValue 3000
   */
  shutdownGraceMs?: number;
}

/** {@link RuntimeConfig} with every field resolved. */
export type ResolvedRuntimeConfig = Required<RuntimeConfig>;

export const defaultRuntimeConfig: ResolvedRuntimeConfig = Object.freeze({
  cancelActionsOnShutdown: true,
  shutdownOnLoopError: true,
  raiseLoopErrorsOnShutdown: true,
  terminateOnSuccess: true,
  terminateOnError: true,
  maxConcurrentActions: Number.POSITIVE_INFINITY,
  shutdownGraceMs: 3000,
});

/**
 * Fill in defaults and validate.
 * @throws {InvalidConfigError} for a field of the wrong type or range.
 */
export function resolveRuntimeConfig(config: RuntimeConfig = {}): ResolvedRuntimeConfig {
  const resolved = { ...defaultRuntimeConfig };
  for (const [key, value] of Object.entries(config) as [keyof RuntimeConfig, unknown][]) {
    if (value === undefined) continue;
    if (!(key in defaultRuntimeConfig)) {
      throw new InvalidConfigError(`Unknown runtime config option '${key}'`, { option: key });
    }
    if (key === "maxConcurrentActions") {
      if (typeof value !== "number" || !(value >= 1) || (Number.isFinite(value) && !Number.isInteger(value))) {
        throw new InvalidConfigError("maxConcurrentActions must be a positive integer or Infinity", { option: key });
      }
      resolved.maxConcurrentActions = value;
    } else if (key === "shutdownGraceMs") {
      if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
        throw new InvalidConfigError("shutdownGraceMs must be a non-negative number of ms (or Infinity)", { option: key });
      }
      resolved.shutdownGraceMs = value;
    } else {
      if (typeof value !== "boolean") {
        throw new InvalidConfigError(`${key} must be a boolean`, { option: key });
      }
      resolved[key] = value;
    }
  }
  return Object.freeze(resolved);
}

/**
 * Retries with exponential backoff, for the whole project: the delay before each further attempt,
 * and whether one more attempt is allowed (by a count of retries, or by a time window). Agent
 * retries (in an executor, or across a host pool) and NATS operation retries both use it.
 */

/** How an operation is retried. */
export interface RetryPolicy {
  /** Delay before the first retry, in ms; doubled for each further retry. */
  readonly initialMs: number;
  /** Longest delay between two attempts, in ms. */
  readonly maxMs: number;
  /** Most retries after the first attempt (none: no limit by count). */
  readonly maxRetries?: number | undefined;
  /** Give up when the next attempt would start later than this after the first one, in ms (none: no limit by time). */
  readonly windowMs?: number | undefined;
}

/** Longest wait between two runs of a failed agent, in ms. */
export const AGENT_RETRY_MAX_MS = 30_000;

/** NATS operations: 25 ms, doubling, at most 1 s between attempts (the window is the caller's). */
export const NATS_RETRY: RetryPolicy = Object.freeze({ initialMs: 25, maxMs: 1_000 });

/** The retry policy of an agent: `retryBackoffMs` doubling up to 30 s, at most `maxRetries` retries. */
export function agentRetryPolicy(spec: { readonly retryBackoffMs: number; readonly maxRetries: number }): RetryPolicy {
  return { initialMs: spec.retryBackoffMs, maxMs: AGENT_RETRY_MAX_MS, maxRetries: spec.maxRetries };
}

/**
 * Delay before retry number `attempt + 1` (`attempt`: failed attempts before this one, from 0):
 * `initialMs × 2^attempt`, at most `maxMs`.
 */
export function backoffDelayMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.initialMs * 2 ** attempt, policy.maxMs);
}

/**
 * Whether the policy allows another attempt after `attempt + 1` failed ones by count alone (so
 * whether the run about to start at `attempt` is not the last one).
 */
export function retriesLeft(policy: RetryPolicy, attempt: number): boolean {
  return policy.maxRetries === undefined || attempt < policy.maxRetries;
}

/**
 * The delay before the next attempt, or undefined when the policy allows none: the retries are
 * used up (`maxRetries`), or the next attempt would start after `windowMs`.
 * @param attempt - failed attempts so far, minus one (0 after the first failure).
 * @param elapsedMs - time since the first attempt started, in ms (for `windowMs`).
 */
export function nextRetryDelayMs(policy: RetryPolicy, attempt: number, elapsedMs = 0): number | undefined {
  if (!retriesLeft(policy, attempt)) return undefined;
  const delayMs = backoffDelayMs(policy, attempt);
  if (policy.windowMs !== undefined && elapsedMs + delayMs > policy.windowMs) return undefined;
  return delayMs;
}

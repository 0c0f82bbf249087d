/**
 * The one retry rule of the project: delays double from the initial one up to a cap, and a policy
 * allows further attempts by count (agent retries) or by time window (NATS operations).
 */
import { describe, expect, test } from "vitest";
import { NATS_RETRY, agentRetryPolicy, backoffDelayMs, nextRetryDelayMs, retriesLeft } from "../../src/util/backoff.ts";

describe("backoff", () => {
  test("delays double from the initial one and stop at the cap", () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((attempt) => backoffDelayMs(NATS_RETRY, attempt))).toEqual([25, 50, 100, 200, 400, 800, 1_000]);
    const agent = agentRetryPolicy({ retryBackoffMs: 100, maxRetries: 20 });
    expect([0, 1, 2, 8, 9].map((attempt) => backoffDelayMs(agent, attempt))).toEqual([100, 200, 400, 25_600, 30_000]);
  });

  test("an agent runs at most maxRetries + 1 times", () => {
    const policy = agentRetryPolicy({ retryBackoffMs: 50, maxRetries: 2 });
    expect([0, 1, 2, 3].map((attempt) => retriesLeft(policy, attempt))).toEqual([true, true, false, false]);
    expect([0, 1, 2].map((attempt) => nextRetryDelayMs(policy, attempt))).toEqual([50, 100, undefined]);
    expect(nextRetryDelayMs(agentRetryPolicy({ retryBackoffMs: 50, maxRetries: 0 }), 0)).toBeUndefined();
  });

  test("a window stops the retries whose next attempt would start after it", () => {
    const policy = { ...NATS_RETRY, windowMs: 1_000 };
    expect(nextRetryDelayMs(policy, 0, 0)).toBe(25);
    expect(nextRetryDelayMs(policy, 0, 975)).toBe(25);
    expect(nextRetryDelayMs(policy, 0, 976)).toBeUndefined();
    expect(nextRetryDelayMs(policy, 10, 0)).toBe(1_000);
    expect(nextRetryDelayMs(policy, 10, 1)).toBeUndefined();
  });
});

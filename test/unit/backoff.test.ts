/**
 * The one retry rule of the project: delays double from the initial one up to a cap, and a policy
 * allows further attempts by count (agent retries) or by time window (NATS operations).
 */
import { describe, expect, test } from "vitest";
import { NATS_RETRY, agentRetryPolicy, backoffDelayMs, nextRetryDelayMs, retriesLeft } from "../../src/util/backoff.ts";
import { ClientClosedError } from "../../src/errors.ts";
import { withNatsRetry } from "../../src/exchange/nats/nats-errors.ts";

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

describe("NATS retries with an abort signal", () => {
  const timeout = (): Error => Object.assign(new Error("timeout"), { name: "TimeoutError" });

  test("an abort during the wait for the next attempt ends it at once with ClientClosedError, and no attempt follows", async () => {
    const closing = new AbortController();
    let attempts = 0;
    const started = Date.now();
    const retried = withNatsRetry(
      () => {
        attempts++;
        return Promise.reject(timeout());
      },
      { windowMs: 60_000, what: "read inbox", signal: closing.signal },
    );
    // Past the first few waits (25 ms doubling), then aborted in the middle of one.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = attempts;
    closing.abort();
    await expect(retried).rejects.toBeInstanceOf(ClientClosedError);
    expect(Date.now() - started).toBeLessThan(1_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(attempts).toBe(before);
    expect(before).toBeGreaterThan(1);
  });

  test("already aborted: the failed first attempt is the last", async () => {
    const closing = new AbortController();
    closing.abort();
    let attempts = 0;
    await expect(
      withNatsRetry(
        () => {
          attempts++;
          return Promise.reject(timeout());
        },
        { windowMs: 60_000, what: "read inbox", signal: closing.signal },
      ),
    ).rejects.toBeInstanceOf(ClientClosedError);
    expect(attempts).toBe(1);
  });

  test("without a signal, retries go on through the window as before", async () => {
    let attempts = 0;
    const value = await withNatsRetry(
      () => (++attempts < 3 ? Promise.reject(timeout()) : Promise.resolve("ok")),
      { windowMs: 60_000, what: "read inbox" },
    );
    expect(value).toBe("ok");
    expect(attempts).toBe(3);
  });
});

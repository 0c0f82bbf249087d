/**
 * A runtime host's liveness settings: the defaults (heartbeat 1 s, ttl 3 s, heartbeats from a
 * thread; docs/HOSTS.md 5.2), their checks, and the fetch expiry derived from them (HOSTS.md 5.3).
 */
import { describe, expect, test } from "vitest";
import { InvalidConfigError } from "../../src/errors.ts";
import { fetchExpiresMs } from "../../runtime/host-intake.ts";
import { resolveSettings } from "../../runtime/host-options.ts";

const NO_CLASSES = new Map();

describe("host settings", () => {
  test("defaults: heartbeat 1 s, ttl 3 s, heartbeats from a thread of their own", () => {
    const settings = resolveSettings({ pool: "p" }, NO_CLASSES);
    expect({ heartbeatMs: settings.heartbeatMs, hostTtlMs: settings.hostTtlMs, heartbeatThread: settings.heartbeatThread }).toEqual({
      heartbeatMs: 1_000,
      hostTtlMs: 3_000,
      heartbeatThread: true,
    });
    expect(resolveSettings({ pool: "p", heartbeatThread: false }, NO_CLASSES).heartbeatThread).toBe(false);
  });

  test("bad liveness options are InvalidConfigError naming the option", () => {
    const option = (fn: () => unknown): unknown => {
      try {
        fn();
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidConfigError);
        return (error as InvalidConfigError).option;
      }
      throw new Error("no error");
    };
    expect(option(() => resolveSettings({ pool: "p", heartbeatThread: "yes" as unknown as boolean }, NO_CLASSES))).toBe("heartbeatThread");
    expect(option(() => resolveSettings({ pool: "p", heartbeatMs: 2_000 }, NO_CLASSES))).toBe("hostTtlMs");
    expect(option(() => resolveSettings({ pool: "p", hostTtlMs: 0 }, NO_CLASSES))).toBe("hostTtlMs");
  });

  test("a fetch expires before its host can be reaped (ttl - heartbeat after it froze), within nats.js' 1 s floor and 2 s", () => {
    expect(fetchExpiresMs(1_000, 3_000)).toBe(1_000); // the defaults
    expect(fetchExpiresMs(2_000, 6_000)).toBe(2_000); // the former defaults
    expect(fetchExpiresMs(300, 1_500)).toBe(1_000); // the tests' settings: floor
    for (const [heartbeatMs, hostTtlMs] of [[1_000, 3_000], [500, 1_500], [300, 1_500], [2_000, 6_000], [5_000, 30_000], [1_000, 2_000]] as const) {
      const expires = fetchExpiresMs(heartbeatMs, hostTtlMs);
      expect(expires).toBeGreaterThanOrEqual(1_000);
      expect(expires).toBeLessThanOrEqual(2_000);
      if (hostTtlMs - heartbeatMs > 1_000) expect(expires).toBeLessThan(hostTtlMs - heartbeatMs);
    }
  });
});

import { afterEach, describe, expect, test, vi } from "vitest";
import { ActionStatsRecorder } from "../../src/engine/agent-stats.ts";

/** Record one call of `action` that runs `ms` (the clock is stubbed). */
function run(recorder: ActionStatsRecorder, action: string, ms: number, ok = true): void {
  const now = vi.spyOn(performance, "now");
  now.mockReturnValueOnce(1_000).mockReturnValueOnce(1_000 + ms);
  const start = recorder.begin(action);
  recorder.end(action, start, ok);
  now.mockRestore();
}

describe("action statistics", () => {
  afterEach(() => vi.restoreAllMocks());

  test("counts, mean, max and a p99 within a bucket's width", () => {
    const recorder = new ActionStatsRecorder(["a", "b"]);
    for (let i = 1; i <= 1000; i++) run(recorder, "a", i, i % 10 !== 0);
    const a = recorder.snapshot().a!;
    expect([a.handled, a.failed, a.inFlight]).toEqual([1000, 100, 0]);
    expect(a.meanMs).toBeCloseTo(500.5, 6);
    expect(a.maxMs).toBe(1000);
    expect(a.p99Ms).toBeGreaterThanOrEqual(990);
    expect(a.p99Ms!).toBeLessThanOrEqual(990 * 1.1);
    expect(recorder.snapshot().b).toEqual({ handled: 0, failed: 0, inFlight: 0, meanMs: undefined, p99Ms: undefined, maxMs: undefined });
  });

  test("one slow call in a hundred does not move the p99; the max shows it; unknown actions are not counted", () => {
    const recorder = new ActionStatsRecorder(["a"]);
    for (let i = 0; i < 99; i++) run(recorder, "a", 1);
    run(recorder, "a", 5_000);
    run(recorder, "nope", 1);
    const a = recorder.snapshot().a!;
    expect(a.p99Ms!).toBeLessThanOrEqual(1.1);
    expect(a.maxMs).toBe(5_000);
    expect(Object.keys(recorder.snapshot())).toEqual(["a"]);
    recorder.begin("a");
    expect(recorder.snapshot().a!.inFlight).toBe(1);
  });
});

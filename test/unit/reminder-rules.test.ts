/** The reminder rules, pure: which due times fire under each misfire policy, and record checks. */
import { describe, expect, test } from "vitest";
import { InvalidConfigError, MalformedMessageError, MisfirePolicy, decodeReminder, planFires, reminderTag } from "../../src/index.ts";
import { encodeReminder, newReminder } from "../../src/state/reminder-record.ts";

const every = (dueAt: number, misfire: MisfirePolicy) => ({ dueAt, everyMs: 100, misfire });

describe("planFires", () => {
  test("not yet due: nothing fires, the due time stays", () => {
    expect(planFires(every(1_000, MisfirePolicy.FireOnce), 999, 50)).toEqual({ fire: [], next: 1_000 });
  });

  test("on time (within lateMs): the due time fires under every policy", () => {
    for (const policy of Object.values(MisfirePolicy)) {
      expect(planFires(every(1_000, policy), 1_030, 50)).toEqual({ fire: [1_000], next: 1_100 });
    }
  });

  test("missed due times follow the policy; the next due time is the first after now", () => {
    // Due at 1000, 1100, ..., 1500 by now = 1520; lateMs 50: 1500 is on time, the rest were missed.
    expect(planFires(every(1_000, MisfirePolicy.CatchUp), 1_520, 50)).toEqual({ fire: [1_000, 1_100, 1_200, 1_300, 1_400, 1_500], next: 1_600 });
    expect(planFires(every(1_000, MisfirePolicy.Skip), 1_520, 50)).toEqual({ fire: [1_500], next: 1_600 });
    expect(planFires(every(1_000, MisfirePolicy.FireOnce), 1_520, 50)).toEqual({ fire: [1_500], next: 1_600 });
    // All missed: skip fires nothing, fire-once the latest.
    expect(planFires(every(1_000, MisfirePolicy.Skip), 1_580, 50)).toEqual({ fire: [], next: 1_600 });
    expect(planFires(every(1_000, MisfirePolicy.FireOnce), 1_580, 50)).toEqual({ fire: [1_500], next: 1_600 });
  });

  test("catch-up fires at most the latest 1000 due times", () => {
    const plan = planFires(every(0, MisfirePolicy.CatchUp), 100 * 5_000, 50);
    expect(plan.fire).toHaveLength(1_000);
    expect(plan.fire[0]).toBe(100 * 4_001);
    expect(plan.next).toBe(100 * 5_001);
  });

  test("a one-shot reminder fires once, then goes; skip drops it when missed", () => {
    const at = { dueAt: 1_000, everyMs: undefined };
    expect(planFires({ ...at, misfire: MisfirePolicy.FireOnce }, 1_010, 50)).toEqual({ fire: [1_000], next: undefined });
    expect(planFires({ ...at, misfire: MisfirePolicy.FireOnce }, 9_000, 50)).toEqual({ fire: [1_000], next: undefined });
    expect(planFires({ ...at, misfire: MisfirePolicy.Skip }, 9_000, 50)).toEqual({ fire: [], next: undefined });
  });
});

describe("reminder records", () => {
  test("a record round-trips; the tag names the agent, the reminder and the due time", () => {
    const record = newReminder("u1", "tick", { action: "onTick", everyMs: 500, payload: { n: 1 } }, 10_000);
    expect(record.dueAt).toBe(10_500);
    expect(decodeReminder(encodeReminder(record))).toEqual(record);
    expect(reminderTag(record, 10_500)).toBe("reminder:u1:tick:10500");
  });

  test("bad options are InvalidConfigError", () => {
    const bad: Array<[string, Record<string, unknown>]> = [
      ["bad name!", { action: "a", everyMs: 500 }],
      ["t", { everyMs: 500 }],
      ["t", { action: "a" }],
      ["t", { action: "a", at: 1, everyMs: 500 }],
      ["t", { action: "a", everyMs: 10 }],
      ["t", { action: "a", everyMs: 1.5e3 + 0.5 }],
      ["t", { action: "a", at: Number.NaN }],
      ["t", { action: "a", at: 1, firstAt: 2 }],
      ["t", { action: "a", at: 1, misfire: "sometimes" }],
      ["t", { action: "a", at: 1, payload: "x".repeat(20_000) }],
    ];
    for (const [name, options] of bad) {
      expect(() => newReminder("u1", name, options as never, 0), JSON.stringify(options).slice(0, 80)).toThrow(InvalidConfigError);
    }
  });

  test("bytes that are not a reminder record are MalformedMessageError", () => {
    const record = newReminder("u1", "tick", { action: "a", at: 5 }, 0);
    for (const broken of [{ ...record, v: 2 }, { ...record, misfire: "x" }, { ...record, dueAt: "soon" }, "text"]) {
      expect(() => decodeReminder(encodeReminder(broken as never))).toThrow(MalformedMessageError);
    }
  });
});

import { expect, test } from "vitest";
import { interceptorsExample } from "../../examples/interceptors.ts";

test("the README's interceptors example runs as written: request ids follow requests, a user's timeout stops the callee's callee", async () => {
  const lines = await interceptorsExample();
  const id = (line: string | undefined) => /request ([0-9a-f-]{36})/.exec(line ?? "")?.[1];
  expect(lines).toHaveLength(8);
  expect(id(lines[0])).toBeDefined();
  expect(id(lines[1])).toBe(id(lines[0]));
  expect(lines.slice(0, 3).join("\n")).not.toContain("deadline");
  expect(lines[2]).toBe("result: done");
  expect(id(lines[3])).not.toBe(id(lines[0]));
  expect(id(lines[4])).toBe(id(lines[3]));
  expect(lines[3]).toContain("with a deadline");
  expect(lines[4]).toContain("with a deadline");
  expect(lines.slice(5)).toEqual([
    "the user's call: RequestTimeoutError",
    "the boss's call gave up: RequestTimeoutError",
    expect.stringMatching(/^the worker stopped: (ActionCancelledError|RequestTimeoutError); its deadline was set$/),
  ]);
});

/**
 * The README's quick start, as written. In a file of its own: it is a program of its own, whose
 * `Counter` is not the `Counter` of examples/agents.ts (which the examples test runs on a host), and
 * one process holds one class per type name.
 */
import { describe, expect, test } from "vitest";
import { quickstart } from "../../../examples/quickstart.ts";
import { startTestNats } from "../../support/nats.ts";

describe("quick start", () => {
  test("the quick start runs as written and prints each step", async () => {
    await using nats = await startTestNats();
    const lines: string[] = [];
    await quickstart(nats.url, { connectionOptions: nats.connectionOptions }, (...values) => lines.push(values.join(" ")));
    expect(lines.slice(0, 4)).toEqual(["increment(2) -> 2", "increment(3) -> 5", "Counter agents: 2", "exactly Counter: 1"]);
    expect(lines[4]).toMatch(/^ping: \d+\.\d ms$/);
    expect(lines[5]).toBe("counter shut down");
  });
});

/**
 * Agents without decorators (defineAgent, for plain JavaScript), and the error that code compiled
 * with `experimentalDecorators` gets instead of a broken agent.
 */
import { describe, expect, test } from "vitest";
import { Agent, AgentDefinitionError, Manager, action, defineAgent, loop, timer } from "../../src/index.ts";
// @ts-expect-error: a plain JavaScript module, without types
import { Greeter } from "../fixtures/plain-agent.mjs";

describe("defineAgent", () => {
  test("a plain JavaScript agent's actions, timer, event handler and loop run as decorated ones do", async () => {
    await using manager = await Manager.fromExchangeFactory();
    const greeter = await manager.launch(Greeter as typeof Agent & (new () => Agent));
    expect(await greeter.action("greet", "ada")).toBe("hello ada");
    const description = await greeter.action("agentDescribe");
    expect(description.description ?? "").toMatch(/^Greets/);
    expect(description.actions).toContainEqual({ name: "greet", description: "Say hello", parameters: "name" });
    await greeter.action("poke");
    await expect.poll(async () => ((await greeter.action("stats")) as { ticks: number; woken: number }).woken, { timeout: 10_000 }).toBe(1);
    await expect.poll(async () => ((await greeter.action("stats")) as { ticks: number }).ticks, { timeout: 10_000 }).toBeGreaterThan(1);
    await manager.shutdown(greeter);
  });

  test("refuses what decorators refuse", () => {
    class Bad extends Agent {
      sync(): number {
        return 1;
      }
      async shutdown(): Promise<void> {}
    }
    expect(() => defineAgent(Bad, { actions: ["missing"] })).toThrow(/'missing' is not a method of Bad/);
    expect(() => defineAgent(Bad, { actions: ["sync"] })).toThrow(/must be an async function/);
    expect(() => defineAgent(Bad, { actions: ["shutdown"] })).toThrow(/clashes with a handle method/);
    expect(() => defineAgent(Bad, { timers: { shutdown: 0 } })).toThrow(AgentDefinitionError);
  });
});

describe("experimentalDecorators", () => {
  test("decorators called the legacy way throw an AgentDefinitionError naming the setting", () => {
    const prototype = {};
    const descriptor = { value: async () => 1, writable: true, enumerable: false, configurable: true };
    const legacy: Array<() => unknown> = [
      () => (action as unknown as (...a: unknown[]) => unknown)(prototype, "increment", descriptor),
      () => (action({ description: "x" }) as unknown as (...a: unknown[]) => unknown)(prototype, "increment", descriptor),
      () => (loop as unknown as (...a: unknown[]) => unknown)(prototype, "run", descriptor),
      () => (timer(5) as unknown as (...a: unknown[]) => unknown)(prototype, "tick", descriptor),
    ];
    for (const call of legacy) {
      expect(call).toThrow(AgentDefinitionError);
      expect(call).toThrow(/experimentalDecorators/);
    }
  });
});

/**
 * Two copies of the library in one process (an application importing the package while one of
 * its agent modules imports the sources): `instanceof Agent` sees two classes, so agents are
 * recognised by a brand instead. A second copy of src/ is made in a git-ignored folder of the
 * repository (so that it resolves the same node_modules) and imported as a separate module graph.
 */
import { cpSync, rmSync } from "node:fs";
import { afterAll, describe, expect, test } from "vitest";
import { AgentDefinitionError, Manager } from "../../src/index.ts";

const copy = new URL("../.copies/agent-copies/", import.meta.url);
rmSync(copy, { recursive: true, force: true });
cpSync(new URL("../../src/", import.meta.url), copy, { recursive: true });
afterAll(() => rmSync(copy, { recursive: true, force: true }));

describe("agents from another copy of the library", () => {
  test("launch, call and describe an agent whose class extends the other copy's Agent", async () => {
    const other = (await import(new URL("index.ts", copy).href)) as typeof import("../../src/index.ts");
    expect(other.Agent).not.toBe((await import("../../src/index.ts")).Agent);
    class Greeter extends other.Agent {
      @other.action
      async greet(name: string): Promise<string> {
        return `hello ${name} from ${this.agentId.uid.length > 0 ? "a running agent" : "?"}`;
      }
    }
    await using manager = await Manager.fromExchangeFactory();
    const handle = await manager.launch(Greeter);
    expect(await handle.action("greet", "ada")).toBe("hello ada from a running agent");
    expect(await handle.action("agentDescribe")).toMatchObject({ type: "Greeter", chain: ["Greeter", "Agent"] });
    expect(await manager.exchangeClient.discover("Greeter")).toHaveLength(1);
  });

  test("the error says what was passed instead of an agent", async () => {
    await using manager = await Manager.fromExchangeFactory();
    class NotAnAgent {}
    const cases: Array<[unknown, RegExp]> = [
      [NotAnAgent, /got the class 'NotAnAgent', which does not extend Agent/],
      [new NotAnAgent(), /got an instance of NotAnAgent, which is not an agent/],
      [undefined, /got undefined/],
      [{ greet: 1 }, /got a plain object/],
    ];
    for (const [value, message] of cases) {
      const error = await manager.launch(value as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AgentDefinitionError);
      expect((error as Error).message).toMatch(message);
    }
  });
});

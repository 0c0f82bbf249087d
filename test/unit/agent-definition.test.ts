import { describe, expect, test } from "vitest";
import { Agent, AgentDefinitionError, InvalidConfigError, Manager, action, agentTypeInfo, agentTypeName, resolveRuntimeConfig, timer } from "../../src/index.ts";
import { tokenToTypeName, typeNameToken } from "../../src/agent/agent-type.ts";
import { agentSpec } from "../../src/agent/decorators.ts";
import { splitParameters } from "../../src/agent/parameters.ts";
import type { ActionContext } from "../../src/index.ts";

class Base extends Agent {
  @action async a(): Promise<number> {
    return 1;
  }
}
class Derived extends Base {
  static override agentType = "pkg.Derived";
  @action({ description: "b" }) async b(): Promise<number> {
    return 2;
  }
}
class Leaf extends Derived {}

describe("agent types", () => {
  test("names come from static agentType (own only) or the class name; chains end at Agent", () => {
    expect(agentTypeName(Base)).toBe("Base");
    expect(agentTypeName(Derived)).toBe("pkg.Derived");
    expect(agentTypeName(Leaf)).toBe("Leaf");
    expect(agentTypeInfo(Leaf).chain).toEqual(["Leaf", "pkg.Derived", "Base", "Agent"]);
    expect(() => agentTypeInfo(class NotAnAgent {} as never)).toThrow(AgentDefinitionError);
  });

  test("type names map to reversible, distinct subject tokens", () => {
    const names = ["Counter", "pkg.Counter", "pkg_Counter", "a=b", "Zähler", "x/y z"];
    const tokens = names.map(typeNameToken);
    expect(new Set(tokens).size).toBe(names.length);
    for (const token of tokens) expect(token).toMatch(/^[A-Za-z0-9_=-]+$/);
    expect(tokens.map(tokenToTypeName)).toEqual(names);
  });

  test("actions are inherited; subclasses add their own", () => {
    expect([...agentSpec(Leaf).actions.keys()].sort()).toEqual(["a", "agentDescribe", "agentStats", "b"]);
    expect(agentSpec(Leaf).actions.get("b")?.description).toBe("b");
  });

  test("bad decorator use fails when the class is defined", () => {
    expect(() => timer(0)).toThrow(AgentDefinitionError);
    expect(() => {
      class Bad extends Agent {
        // @ts-expect-error: a timer must be async
        @timer(10) tick(): void {}
      }
      return Bad;
    }).toThrow(AgentDefinitionError);
  });

  test("@action({ context: true }) puts the context at the last declared parameter, and needs one", () => {
    class WithContext extends Agent {
      @action({ context: true }) async inc(by = 1, _ctx?: ActionContext): Promise<number> {
        return by;
      }
      @action({ context: true }) async pick({ a, b }: { a: number; b: number } = { a: 1, b: 2 }, list = [a, b], _ctx?: ActionContext): Promise<number> {
        return list.length;
      }
    }
    expect(agentSpec(WithContext).actions.get("inc")?.contextIndex).toBe(1);
    expect(agentSpec(WithContext).actions.get("pick")?.contextIndex).toBe(2);
    expect(() => {
      class NoParameter extends Agent {
        @action({ context: true }) async inc(): Promise<void> {}
      }
      return NoParameter;
    }).toThrow(/declares no parameter/);
    expect(() => {
      class Rest extends Agent {
        @action({ context: true }) async inc(...args: unknown[]): Promise<number> {
          return args.length;
        }
      }
      return Rest;
    }).toThrow(/rest parameter/);
  });

  test("parameter lists split at top-level commas only", () => {
    expect(splitParameters("")).toEqual([]);
    expect(splitParameters("a, b = [1, 2], { c, d } = {}, e = ')', f = `,`,")).toEqual(["a", "b = [1, 2]", "{ c, d } = {}", "e = ')'", "f = `,`"]);
  });
});

describe("runtime config", () => {
  test("defaults follow Academy; invalid values are rejected", () => {
    expect(resolveRuntimeConfig()).toEqual({
      cancelActionsOnShutdown: true,
      shutdownOnLoopError: true,
      raiseLoopErrorsOnShutdown: true,
      terminateOnSuccess: true,
      terminateOnError: true,
      maxConcurrentActions: Number.POSITIVE_INFINITY,
      shutdownGraceMs: 3000,
    });
    expect(resolveRuntimeConfig({ maxConcurrentActions: 4 }).maxConcurrentActions).toBe(4);
    expect(() => resolveRuntimeConfig({ maxConcurrentActions: 1.5 })).toThrow(InvalidConfigError);
    expect(() => resolveRuntimeConfig({ terminateOnError: "yes" as never })).toThrow(InvalidConfigError);
    expect(resolveRuntimeConfig({ shutdownGraceMs: 0 }).shutdownGraceMs).toBe(0);
    expect(resolveRuntimeConfig({ shutdownGraceMs: Number.POSITIVE_INFINITY }).shutdownGraceMs).toBe(Number.POSITIVE_INFINITY);
    expect(() => resolveRuntimeConfig({ shutdownGraceMs: -1 })).toThrow(InvalidConfigError);
    expect(() => resolveRuntimeConfig({ shutdownGraceMs: Number.NaN })).toThrow(InvalidConfigError);
  });
});

describe("type names in one process", () => {
  /** A fresh class named Twin each call (as two copies of a module, or a bundler's renaming, would make). */
  function twin(): typeof Agent & (new () => Agent) {
    class Twin extends Agent {
      @action async a(): Promise<number> {
        return 1;
      }
    }
    return Twin;
  }

  test("a second, different class under a type name is an error naming both; agentType tells them apart", async () => {
    const first = twin();
    const second = twin();
    await using manager = await Manager.fromExchangeFactory();
    await manager.registerAgent(first);
    const error = (await manager.registerAgent(second).catch((e: unknown) => e)) as AgentDefinitionError;
    expect(error).toBeInstanceOf(AgentDefinitionError);
    expect(error.agentType).toBe("Twin");
    expect(error.message).toMatch(/'Twin': class Twin \(defined at .*agent-definition\.test\.ts:\d+\) and class Twin \(defined at .*agent-definition\.test\.ts:\d+\)/);
    await expect(manager.launch(second)).rejects.toThrow(AgentDefinitionError);
    await expect(manager.exchangeClient.discover(second)).rejects.toThrow(AgentDefinitionError);
    // The first keeps its name; by name, discover finds its agents only.
    expect(await manager.exchangeClient.discover("Twin")).toHaveLength(1);
    // Renamed, the second is a type of its own.
    const renamed = twin();
    Object.defineProperty(renamed, "agentType", { value: "acme/Twin.v2" });
    expect(agentTypeInfo(renamed).chain).toEqual(["acme/Twin.v2", "Agent"]);
    await manager.launch(renamed);
  });

  test("two classes declaring one agentType clash too; the same class registers any number of times", async () => {
    class Left extends Agent {
      static override agentType = "shared.Name";
    }
    class Right extends Agent {
      static override agentType = "shared.Name";
    }
    expect(agentTypeInfo(Left).name).toBe("shared.Name");
    expect(agentTypeInfo(Left).name).toBe("shared.Name");
    expect(() => agentTypeInfo(Right)).toThrow(/'shared\.Name': class Left and class Right/);
  });
});

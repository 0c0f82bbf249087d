/**
 * Admission (`AgentEngineOptions.admission`): a runtime host holds its agents' actions while its
 * lease is in doubt and refuses them once another host owns the agent. A refused request is left in
 * the mailbox, unanswered and unacknowledged, for the agent's next run, which answers it: the action
 * runs once, on the run that owns the agent.
 */
import { afterEach, describe, expect, test } from "vitest";
import { Agent, AgentEngine, LocalExchangeFactory, action } from "../../src/index.ts";
import type { AgentRegistration, UserExchangeClient } from "../../src/index.ts";

class Worker extends Agent {
  readonly ran: string[] = [];

  @action
  async work(key: string): Promise<string> {
    this.ran.push(key);
    return `${key} by ${this.name}`;
  }

  name = "";
}

function deferred(): { promise: Promise<boolean>; resolve: (admitted: boolean) => void } {
  let resolve!: (admitted: boolean) => void;
  const promise = new Promise<boolean>((r) => (resolve = r));
  return { promise, resolve };
}

describe("admission of actions", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setUp(): Promise<{ factory: LocalExchangeFactory; user: UserExchangeClient; registration: AgentRegistration<Worker> }> {
    const factory = new LocalExchangeFactory();
    const user = await factory.createUserClient();
    const registration = await user.registerAgent(Worker);
    cleanups.push(async () => {
      await user.close();
      await factory.close();
    });
    return { factory, user, registration };
  }

  function start(factory: LocalExchangeFactory, registration: AgentRegistration<Worker>, name: string, admission?: () => true | Promise<boolean>) {
    const agent = new Worker();
    agent.name = name;
    const engine = new AgentEngine(agent, { exchangeFactory: factory, registration, ...(admission !== undefined && { admission }) });
    const running = engine.run();
    const stop = async (): Promise<void> => {
      engine.requestShutdown({ expected: true, terminate: false, cancelActions: false });
      await running;
    };
    cleanups.push(stop);
    return { agent, stop };
  }

  test("an action held by its admission runs once admitted", async () => {
    const { factory, user, registration } = await setUp();
    const gate = deferred();
    let asked = 0;
    const run = start(factory, registration, "first", () => {
      asked += 1;
      return asked === 1 ? gate.promise : true;
    });
    const answer = user.getHandle(registration.agentId).work("a");
    // The request reached the admission, which holds it: the action has not run.
    await expect.poll(() => asked, { timeout: 5_000 }).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(run.agent.ran).toEqual([]);
    gate.resolve(true);
    expect(await answer).toBe("a by first");
    expect(await user.getHandle(registration.agentId).work("b")).toBe("b by first");
    expect(run.agent.ran).toEqual(["a", "b"]);
  });

  test("an action refused by its admission never runs there: the agent's next run answers it", async () => {
    const { factory, user, registration } = await setUp();
    const gate = deferred();
    let asked = 0;
    const zombie = start(factory, registration, "old run", () => {
      asked += 1;
      return gate.promise;
    });
    const answer = user.getHandle(registration.agentId).work("a");
    // The old run got the request and asks its admission, which then refuses it.
    await expect.poll(() => asked, { timeout: 5_000 }).toBe(1);
    gate.resolve(false);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await zombie.stop();
    expect(zombie.agent.ran).toEqual([]);
    const next = start(factory, registration, "new run");
    expect(await answer).toBe("a by new run");
    expect(next.agent.ran).toEqual(["a"]);
    expect(zombie.agent.ran).toEqual([]);
  });
});

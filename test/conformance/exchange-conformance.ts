/**
 * One conformance suite, run against every exchange (tests/conformance/*.test.ts): Academy's
 * behaviours of agents, handles, exchange clients and the manager.
 */
import { describe, expect, test } from "vitest";
import {
  ActionCancelledError,
  Agent,
  DEADLINE_HEADER,
  DEFAULT_CANCEL_WINDOW_MS,
  AgentAlreadyLaunchedError,
  AgentDefinitionError,
  AgentId,
  AgentTerminatedError,
  BadEntityIdError,
  ClientClosedError,
  ErrorCode,
  InvalidClientError,
  InvalidConfigError,
  MailboxStatus,
  Manager,
  PayloadTooLargeError,
  RemoteError,
  RequestTimeoutError,
  ReturnWhen,
  SerializationError,
  UnknownActionError,
  UnknownExecutorError,
  WaitTimeoutError,
  action,
  agentTypeInfo,
  currentAction,
} from "../../src/index.ts";
import { setTimeout as sleep } from "node:timers/promises";
import type {
  ActionScope,
  AgentInterceptor,
  CallerInterceptor,
  ExchangeFactory,
  InterceptorOptions,
  ManagerOptions,
  MessageHeaders,
} from "../../src/index.ts";
import {
  Coordinator,
  Counter,
  DeadlineProbe,
  DeadlineRelay,
  FastCounter,
  FlakyStarter,
  Gatekeeper,
  LoopAgent,
  NamedCounter,
  Recorder,
  ScopeProbe,
  SelfStopper,
  Sleeper,
  SlowStarter,
  Ticker,
  Troublemaker,
} from "../fixtures/agents.ts";

/** Options the suite passes to a new factory (every exchange's factory takes these). */
export interface ConformanceFactoryOptions {
  interceptors?: InterceptorOptions;
  deadlines?: boolean;
}

/** How the suite gets an isolated exchange for each test. */
export interface ConformanceTarget {
  newFactory(options?: ConformanceFactoryOptions): ExchangeFactory;
}

export function describeConformance(name: string, target: () => ConformanceTarget): void {
  async function open(options: ManagerOptions = {}): Promise<Manager> {
    return Manager.fromExchangeFactory(target().newFactory(), options);
  }

  /** A manager whose factory has these interceptors (both its user client and its agents run them). */
  async function openWith(interceptors: InterceptorOptions): Promise<Manager> {
    return Manager.fromExchangeFactory(target().newFactory({ interceptors }));
  }

  /** Run `fn` with a manager, closing it afterwards whatever agents failed with. */
  async function withManager(options: ManagerOptions, fn: (manager: Manager) => Promise<void>): Promise<void> {
    const manager = await open(options);
    try {
      await fn(manager);
    } finally {
      await manager.close().catch(() => undefined);
    }
  }

  describe(`${name}: exchange conformance`, () => {
    describe("status and registration", () => {
      test("a mailbox goes missing -> active -> terminated; terminate is idempotent", async () => {
        await using manager = await open();
        const client = manager.exchangeClient;
        const unknown = AgentId.create();
        expect(await client.status(unknown)).toBe(MailboxStatus.Missing);
        const registration = await client.registerAgent(Counter, { name: "c1" });
        expect(registration.agentId.name).toBe("c1");
        expect(registration.agentType.chain).toEqual(["Counter", "Agent"]);
        expect(await client.status(registration.agentId)).toBe(MailboxStatus.Active);
        await client.terminate(registration.agentId);
        expect(await client.status(registration.agentId)).toBe(MailboxStatus.Terminated);
        await client.terminate(registration.agentId);
        await client.terminate(unknown);
        expect(await client.status(unknown)).toBe(MailboxStatus.Missing);
      });

      test("Agent itself cannot be registered or launched", async () => {
        await using manager = await open();
        await expect(manager.exchangeClient.registerAgent(Agent as never)).rejects.toThrow(AgentDefinitionError);
        await expect(manager.launch(Agent as never)).rejects.toThrow(AgentDefinitionError);
        expect(() => new (Agent as unknown as new () => Agent)()).toThrow(AgentDefinitionError);
      });

      test("an agent client needs an active registration", async () => {
        await using manager = await open();
        const factory = manager.exchangeFactory;
        const registration = await manager.registerAgent(Counter);
        const ghost = { agentId: AgentId.create(), agentType: registration.agentType };
        await expect(factory.createAgentClient(ghost, () => {})).rejects.toThrow(BadEntityIdError);
        await manager.exchangeClient.terminate(registration.agentId);
        await expect(factory.createAgentClient(registration, () => {})).rejects.toThrow(AgentTerminatedError);
      });
    });

    describe("sending", () => {
      test("to a missing mailbox: BadEntityIdError; to a terminated one: AgentTerminatedError", async () => {
        await using manager = await open();
        const missing = manager.getHandle(AgentId.create<Counter>());
        await expect(missing.increment()).rejects.toThrow(BadEntityIdError);
        const counter = await manager.launch(Counter);
        expect(await counter.increment()).toBe(1);
        await manager.shutdown(counter);
        const error = await counter.increment().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(AgentTerminatedError);
        expect((error as AgentTerminatedError).code).toBe(ErrorCode.MailboxTerminated);
        await expect(counter.ping()).rejects.toThrow(AgentTerminatedError);
      });

      test("a request to a user's mailbox is answered with InvalidClientError", async () => {
        await using manager = await open();
        const other = await manager.exchangeFactory.createUserClient({ name: "other" });
        try {
          const asAgent = manager.getHandle(new AgentId(other.clientId.uid));
          await expect(asAgent.action("anything")).rejects.toThrow(InvalidClientError);
        } finally {
          await other.close();
        }
      });

      test("requests from one client are handled in the order sent (FIFO per mailbox)", async () => {
        await using manager = await open();
        const recorder = new Recorder();
        const handle = await manager.launch(recorder);
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => handle.record(i)));
        expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        expect(recorder.entries).toEqual(Array.from({ length: 50 }, (_, i) => i));
      });

      test("payloads over the exchange's limit fail with PayloadTooLargeError, both ways", async () => {
        await using manager = await open();
        const handle = await manager.launch(Troublemaker);
        const limit = manager.exchangeClient.maxPayload;
        const tooBig = await handle.echo(new Uint8Array(limit + 1)).catch((e: unknown) => e);
        expect(tooBig).toBeInstanceOf(PayloadTooLargeError);
        expect((tooBig as PayloadTooLargeError).limit).toBe(limit);
        expect((tooBig as PayloadTooLargeError).size).toBeGreaterThan(limit);
        const bigResult = await handle.big(limit + 1).catch((e: unknown) => e);
        expect(bigResult).toBeInstanceOf(PayloadTooLargeError);
        expect(await handle.echo("still serving")).toBe("still serving");
      });

      test("values that cannot be encoded fail with SerializationError, both ways", async () => {
        await using manager = await open();
        const handle = await manager.launch(Troublemaker);
        await expect(handle.echo(() => 1)).rejects.toThrow(SerializationError);
        await expect(handle.unencodable()).rejects.toThrow(SerializationError);
        const echoed = (await handle.echo({ nested: [1, "two", new Uint8Array([3])], when: new Date(0) })) as {
          nested: [number, string, Uint8Array];
          when: Date;
        };
        expect(echoed.nested.slice(0, 2)).toEqual([1, "two"]);
        // Byte strings arrive as Uint8Array (a Buffer, on Node).
        expect(echoed.nested[2]).toBeInstanceOf(Uint8Array);
        expect([...echoed.nested[2]]).toEqual([3]);
        expect(echoed.when).toEqual(new Date(0));
      });
    });

    describe("discover", () => {
      test("by type with and without subclasses, by name, and Agent for all; terminated excluded", async () => {
        await using manager = await open();
        const client = manager.exchangeClient;
        const counter = await manager.launch(Counter);
        const fast = await manager.launch(FastCounter);
        const named = await manager.launch(NamedCounter);
        const other = await manager.launch(Recorder);
        const uids = (ids: AgentId[]) => ids.map((id) => id.uid).sort();
        const sorted = (...ids: AgentId[]) => ids.map((id) => id.uid).sort();
        expect(uids(await client.discover(Counter))).toEqual(sorted(counter.agentId, fast.agentId, named.agentId));
        expect(uids(await client.discover(Counter, { allowSubclasses: false }))).toEqual(sorted(counter.agentId));
        expect(uids(await client.discover("FastCounter"))).toEqual(sorted(fast.agentId));
        expect(uids(await client.discover("acme.counters/Named"))).toEqual(sorted(named.agentId));
        expect(uids(await client.discover(Agent))).toEqual(
          sorted(counter.agentId, fast.agentId, named.agentId, other.agentId),
        );
        await manager.shutdown(fast);
        expect(uids(await client.discover(Counter))).toEqual(sorted(counter.agentId, named.agentId));
        expect(await client.discover("NoSuchType")).toEqual([]);
      });

      test("another client sees registrations and terminations at once", async () => {
        await using manager = await open();
        const observer = await manager.exchangeFactory.createUserClient();
        try {
          expect(await observer.discover(Counter)).toEqual([]);
          const a = await manager.registerAgent(Counter, { name: "a" });
          const found = await observer.discover(Counter);
          expect(found.map((id) => id.uid)).toEqual([a.agentId.uid]);
          expect(found[0]?.name).toBe("a");
          await manager.exchangeClient.terminate(a.agentId);
          expect(await observer.discover(Counter)).toEqual([]);
        } finally {
          await observer.close();
        }
      });
    });

    describe("termination", () => {
      test("requests pending in a mailbox are answered with AgentTerminatedError on terminate", async () => {
        await using manager = await open();
        const registration = await manager.registerAgent(Counter);
        const handle = manager.getHandle(registration);
        const pending = Promise.allSettled([handle.increment(1), handle.increment(2), handle.ping()]);
        // Nobody runs this agent: the requests wait in its mailbox until it is terminated.
        await manager.exchangeClient.terminate(registration.agentId);
        for (const result of await pending) {
          expect(result.status).toBe("rejected");
          expect((result as PromiseRejectedResult).reason).toBeInstanceOf(AgentTerminatedError);
        }
      });

      test("closing a user client terminates its mailbox and fails its pending requests", async () => {
        await using manager = await open();
        const registration = await manager.registerAgent(Counter);
        const user = await manager.exchangeFactory.createUserClient();
        const pending = expect(user.getHandle(registration.agentId).increment()).rejects.toThrow(ClientClosedError);
        await user.close();
        await pending;
        expect(await manager.exchangeClient.status(user.clientId)).toBe(MailboxStatus.Terminated);
        await expect(user.getHandle(registration.agentId).increment()).rejects.toThrow(ClientClosedError);
        await user.close();
      });

      test("closing an agent client keeps the mailbox; the agent can run again", async () => {
        await using manager = await open();
        const registration = await manager.registerAgent(Counter);
        const client = await manager.exchangeFactory.createAgentClient(registration, () => {});
        await client.close();
        expect(await manager.exchangeClient.status(registration.agentId)).toBe(MailboxStatus.Active);
        const handle = await manager.launch(Counter, { registration });
        expect(await handle.increment(5)).toBe(5);
      });
    });

    describe("agents", () => {
      test("the quick start: actions by name and through the typed proxy, ping, describe", async () => {
        await using manager = await open();
        const counter = await manager.launch(Counter);
        expect(await counter.action("increment", 2)).toBe(2);
        expect(await counter.increment(3)).toBe(5);
        expect(await counter.invoke("get", [], { timeoutMs: 5000 })).toBe(5);
        expect(await counter.with({ timeoutMs: 5000 }).get()).toBe(5);
        expect(await counter.ping()).toBeGreaterThan(0);
        const description = await counter.agentDescribe();
        expect(description.type).toBe("Counter");
        expect(description.chain).toEqual(["Counter", "Agent"]);
        const increment = description.actions.find((a) => a.name === "increment");
        expect(increment?.description).toBe("Add to the count and return it");
        expect(increment?.parameters.replace(/\s/g, "")).toBe("by=1");
        expect(description.actions.map((a) => a.name).sort()).toEqual(["agentDescribe", "agentStats", "get", "increment"]);
      });

      test("requests that arrive during startup wait until it completes", async () => {
        await using manager = await open();
        const agent = new SlowStarter();
        const handle = await manager.launch(agent);
        const hello = handle.hello();
        const ping = handle.ping();
        // A round trip to another agent through the same client: our requests are in the mailbox by now.
        const other = await manager.launch(Counter);
        await other.increment();
        expect(agent.events).toEqual([]);
        agent.gate.resolve();
        expect(await hello).toBe("hello");
        expect(await ping).toBeGreaterThan(0);
        expect(agent.events).toEqual(["started", "hello"]);
      });

      test("an unknown action is an UnknownActionError naming it", async () => {
        await using manager = await open();
        const handle = await manager.launch(Counter);
        const error = await handle.action("nope", 1).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(UnknownActionError);
        expect((error as UnknownActionError).action).toBe("nope");
        expect((error as Error).message).toContain("nope");
        expect(await handle.increment()).toBe(1);
      });

      test("remote exceptions keep name, message, code, cause and the agent-side stack", async () => {
        await using manager = await open();
        const handle = await manager.launch(Troublemaker);
        const error = (await handle.fail("invalid input").catch((e: unknown) => e)) as RemoteError & {
          remoteStack?: string;
        };
        expect(error).toBeInstanceOf(RemoteError);
        expect(error.name).toBe("ValidationError");
        expect(error.message).toBe("invalid input");
        expect(error.code).toBe("E_VALIDATION");
        expect(error.remoteStack).toContain("agents.ts");
        expect(error.stack).toContain("ValidationError: invalid input");
        expect((error.cause as Error).name).toBe("RangeError");
        expect((error.cause as Error).message).toBe("deeper");
        const typeError = await handle.failTyped().catch((e: unknown) => e);
        expect(typeError).toBeInstanceOf(TypeError);
        expect((typeError as Error).message).toBe("bad type");
        const stringError = await handle.throwString().catch((e: unknown) => e);
        expect((stringError as Error).message).toBe("just a string");
      });

      test("sync actions are rejected when the class is defined", () => {
        expect(() => {
          class Bad extends Agent {
            // @ts-expect-error: actions must be async
            @action sync(): number {
              return 1;
            }
          }
          return Bad;
        }).toThrow(AgentDefinitionError);
        expect(() => {
          class Clash extends Agent {
            @action async ping(): Promise<void> {}
          }
          return Clash;
        }).toThrow(AgentDefinitionError);
      });

      test("timers and event handlers run until shutdown", async () => {
        await using manager = await open();
        const agent = new Ticker();
        const handle = await manager.launch(agent);
        await agent.ticked.promise;
        await handle.poke();
        await agent.handledOnce.promise;
        expect(agent.handled).toBe(1);
        await manager.shutdown(handle);
        const ticks = agent.ticks;
        await new Promise((resolve) => setTimeout(resolve, 60));
        expect(agent.ticks).toBe(ticks);
      });

      test("an agent can stop itself and keep its mailbox", async () => {
        await using manager = await open();
        const handle = await manager.launch(SelfStopper);
        await handle.stop(false);
        await manager.wait([handle]);
        expect(await manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Active);
        const again = await manager.launch(SelfStopper);
        await again.stop();
        await manager.wait([again]);
        expect(await manager.exchangeClient.status(again.agentId)).toBe(MailboxStatus.Terminated);
      });

      test("self-stop with terminateOnSuccess off keeps the mailbox; a new run serves it", async () => {
        await using manager = await open();
        const handle = await manager.launch(SelfStopper, { config: { terminateOnSuccess: false } });
        await handle.stop();
        await manager.wait([handle]);
        expect(await manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Active);
        const pending = handle.ok();
        await using second = await Manager.fromExchangeFactory(manager.exchangeFactory);
        await second.launch(SelfStopper, { registration: { agentId: handle.agentId, agentType: agentTypeInfo(SelfStopper) } });
        expect(await pending).toBe("ok");
      });
    });

    describe("shutdown", () => {
      test("the terminate override wins over the config", async () => {
        await using manager = await open();
        const kept = await manager.launch(Counter);
        await manager.shutdown(kept, { terminate: false });
        expect(await manager.exchangeClient.status(kept.agentId)).toBe(MailboxStatus.Active);
        const keptByConfig = await manager.launch(Counter, { config: { terminateOnSuccess: false } });
        await manager.shutdown(keptByConfig);
        expect(await manager.exchangeClient.status(keptByConfig.agentId)).toBe(MailboxStatus.Active);
        const forced = await manager.launch(Counter, { config: { terminateOnSuccess: false } });
        await manager.shutdown(forced, { terminate: true });
        expect(await manager.exchangeClient.status(forced.agentId)).toBe(MailboxStatus.Terminated);
      });

      test("in-flight actions are cancelled at shutdown (cancelActionsOnShutdown)", async () => {
        await using manager = await open();
        const agent = new Sleeper();
        const handle = await manager.launch(agent);
        const sleeping = expect(handle.sleep(60_000)).rejects.toThrow(ActionCancelledError);
        await agent.started.promise;
        await manager.shutdown(handle);
        await sleeping;
        expect(await agent.aborted.promise).toBeInstanceOf(Error);
        expect(agent.completed).toBe(0);
      });

      test("in-flight actions complete at shutdown when cancelActionsOnShutdown is off", async () => {
        await using manager = await open();
        const agent = new Sleeper();
        const handle = await manager.launch(agent, { config: { cancelActionsOnShutdown: false } });
        const sleeping = handle.sleep(200);
        await agent.started.promise;
        await manager.shutdown(handle);
        expect(await sleeping).toBe("done");
        expect(agent.completed).toBe(1);
      });

      test("the shutdown hook runs, and loops stop", async () => {
        await using manager = await open();
        const agent = new LoopAgent();
        const handle = await manager.launch(agent);
        await handle.ping();
        await manager.shutdown(handle);
        await agent.shutdownHookRan.promise;
      });
    });

    describe("loop errors", () => {
      test("shutdownOnLoopError + raiseLoopErrorsOnShutdown: the agent stops and fails with the loop error", async () => {
        await withManager({}, async (manager) => {
          const agent = new LoopAgent();
          const handle = await manager.launch(agent);
          await handle.breakLoop();
          await expect(manager.wait([handle], { raiseError: true })).rejects.toThrow("loop boom");
          expect(await manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Terminated);
          await expect(manager.close()).rejects.toThrow("loop boom");
        });
      });

      test("raiseLoopErrorsOnShutdown off: the agent stops on the loop error but does not fail", async () => {
        await withManager({}, async (manager) => {
          const handle = await manager.launch(new LoopAgent(), { config: { raiseLoopErrorsOnShutdown: false } });
          await handle.breakLoop();
          await manager.wait([handle], { raiseError: true });
          // An unexpected stop: terminateOnError decides.
          expect(await manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Terminated);
        });
      });

      test("shutdownOnLoopError off: the agent keeps serving; the error is raised at shutdown", async () => {
        await withManager({}, async (manager) => {
          const agent = new LoopAgent();
          const handle = await manager.launch(agent, { config: { shutdownOnLoopError: false } });
          await handle.breakLoop();
          await agent.loopFailed.promise;
          expect(await handle.ping()).toBeGreaterThan(0);
          expect(manager.running().map((id) => id.uid)).toEqual([handle.agentId.uid]);
          await expect(manager.shutdown(handle)).rejects.toThrow("loop boom");
        });
      });
    });

    describe("cancellation", () => {
      test("a timeout cancels the action in the agent and raises RequestTimeoutError", async () => {
        await using manager = await open();
        const agent = new Sleeper();
        const handle = await manager.launch(agent);
        let started = false;
        void agent.started.promise.then(() => (started = true));
        const error = await handle.with({ timeoutMs: 100 }).sleep(60_000).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RequestTimeoutError);
        expect((error as RequestTimeoutError).timeoutMs).toBe(100);
        expect(await handle.quick()).toBe("quick");
        // On a loaded machine the cancel can reach the agent before the request has started (its
        // result record still being looked up): then the action never runs at all.
        if (started) expect(await agent.aborted.promise).toBeInstanceOf(ActionCancelledError);
        expect(agent.completed).toBe(0);
      });

      test("timeoutMs: Infinity waits for the answer (no timer that Node would fire at once); a negative or NaN timeoutMs is InvalidConfigError", async () => {
        await using manager = await open();
        const handle = await manager.launch(new Sleeper());
        // A timer given more than 2^31 - 1 ms fires after 1 ms with a warning: none may be made,
        // neither by the caller nor by the agent's deadline (a deadline's timer re-armed every ms).
        const overflows: string[] = [];
        const onWarning = (warning: Error): void => {
          if (warning.name === "TimeoutOverflowWarning") overflows.push(warning.message);
        };
        process.on("warning", onWarning);
        try {
          expect(await handle.with({ timeoutMs: Infinity }).sleep(50)).toBe("done");
          expect(await handle.invoke("sleep", [20], { timeoutMs: 2 ** 40 })).toBe("done");
          expect(await handle.invoke("sleep", [20], { timeoutMs: 2 ** 31 - 1 })).toBe("done");
          await expect(handle.with({ timeoutMs: -1 }).quick()).rejects.toThrow(InvalidConfigError);
          await expect(handle.invoke("quick", [], { timeoutMs: Number.NaN })).rejects.toThrow(InvalidConfigError);
          await expect(manager.wait([handle], { timeoutMs: -5 })).rejects.toThrow(InvalidConfigError);
          // Manager.wait: Infinity waits until the agent stops (it used to time out at once).
          const waiting = manager.wait([handle], { timeoutMs: Infinity });
          await new Promise((resolve) => setTimeout(resolve, 50));
          await manager.shutdown(handle);
          expect((await waiting).done).toHaveLength(1);
          await new Promise((resolve) => setTimeout(resolve, 20)); // warnings are emitted on a later tick
        } finally {
          process.off("warning", onWarning);
        }
        expect(overflows).toEqual([]);
      });

      test("an abort signal cancels the action in the agent and raises ActionCancelledError", async () => {
        await using manager = await open();
        const agent = new Sleeper();
        const handle = await manager.launch(agent);
        const controller = new AbortController();
        const sleeping = handle.invoke("sleep", [60_000], { signal: controller.signal });
        await agent.started.promise;
        controller.abort(new Error("user gave up"));
        const error = await sleeping.catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ActionCancelledError);
        expect(((error as Error).cause as Error).message).toBe("user gave up");
        expect(await agent.aborted.promise).toBeInstanceOf(ActionCancelledError);
        await expect(handle.invoke("quick", [], { signal: controller.signal })).rejects.toThrow(ActionCancelledError);
      });

      test("a ping times out with RequestTimeoutError while the agent is not running", async () => {
        await using manager = await open();
        const registration = await manager.registerAgent(Counter);
        await expect(manager.getHandle(registration).ping({ timeoutMs: 100 })).rejects.toThrow(RequestTimeoutError);
      });
    });

    describe("handles between agents", () => {
      test("a coordinator calls two agents through handles given as launch arguments", async () => {
        await using manager = await open();
        const left = await manager.launch(Counter);
        const right = await manager.launch(Counter);
        const coordinator = await manager.launch(Coordinator, { args: [left, right] });
        expect(await coordinator.incrementBoth(1)).toEqual([1, 10]);
        expect(await coordinator.incrementBoth(2)).toEqual([3, 30]);
        expect(await left.get()).toBe(3);
        expect(await coordinator.callThrough(right, 5)).toBe(35);
        const peers = await coordinator.peers();
        expect(peers.map((p) => p.agentId.uid)).toEqual([left.agentId.uid, right.agentId.uid]);
        expect(await peers[0]!.increment(1)).toBe(4);
      });
    });

    describe("backpressure", () => {
      test("maxConcurrentActions bounds running actions; pings still get through", async () => {
        await using manager = await open();
        const agent = new Gatekeeper();
        const handle = await manager.launch(agent, { config: { maxConcurrentActions: 1 } });
        const first = handle.hold(0);
        const second = handle.hold(1);
        await agent.arrivals[0]!.promise;
        expect(await handle.ping()).toBeGreaterThan(0);
        expect(agent.running).toBe(1);
        agent.gates[0]!.resolve();
        expect(await first).toBe(0);
        await agent.arrivals[1]!.promise;
        agent.gates[1]!.resolve();
        expect(await second).toBe(1);
        expect(agent.maxRunning).toBe(1);
      });

      test("invalid runtime config is rejected at launch", async () => {
        await using manager = await open();
        await expect(manager.launch(Counter, { config: { maxConcurrentActions: 0 } })).rejects.toThrow(InvalidConfigError);
        await expect(manager.launch(Counter, { config: { bogus: true } as never })).rejects.toThrow(InvalidConfigError);
      });
    });

    describe("interceptors", () => {
      test("a caller-side header reaches agent-side hooks and the action; an agent-side one reaches the caller", async () => {
        const seen: Record<string, MessageHeaders | undefined> = {};
        const caller: CallerInterceptor = {
          outboundRequest(input, next) {
            if (input.body.type === "action-request") input.headers["x-from-caller"] = input.body.action;
            return next(input);
          },
          inboundResponse(input, next) {
            seen.response = input.response.headers;
            next(input);
          },
        };
        const agent: AgentInterceptor = {
          inboundRequest(input, next) {
            seen.inbound = input.request.headers;
            return next(input);
          },
          async action(input, next) {
            seen.action = input.request.headers;
            return next(input);
          },
          outboundResponse(input, next) {
            input.headers["x-from-agent"] = `answer to ${input.request.tag}`;
            return next(input);
          },
        };
        await using manager = await openWith({ caller: [caller], agent: [agent] });
        const probe = await manager.launch(ScopeProbe);
        const scope = await probe.scope();
        expect(seen.inbound).toEqual({ "x-from-caller": "scope" });
        expect(seen.action).toEqual({ "x-from-caller": "scope" });
        expect(scope.headers).toEqual({ "x-from-caller": "scope" });
        // The response carries the agent's header only: request headers are never copied.
        expect(seen.response).toEqual({ "x-from-agent": `answer to ${scope.tag}` });
        expect(scope.action).toBe("scope");
        expect(scope.source).toBe(manager.exchangeClient.clientId.uid);
      });

      test("interceptors run in list order, the first outermost, on both sides", async () => {
        const order: string[] = [];
        const callerHook = (name: string): CallerInterceptor => ({
          async outboundRequest(input, next) {
            order.push(`${name}: send`);
            const response = await next(input);
            order.push(`${name}: sent`);
            return response;
          },
          inboundResponse(input, next) {
            order.push(`${name}: response`);
            next(input);
          },
        });
        const agentHook = (name: string): AgentInterceptor => ({
          inboundRequest(input, next) {
            order.push(`${name}: request`);
            return next(input);
          },
          async action(input, next) {
            order.push(`${name}: action`);
            const result = await next(input);
            order.push(`${name}: action done`);
            return result;
          },
          outboundResponse(input, next) {
            order.push(`${name}: respond`);
            return next(input);
          },
        });
        await using manager = await openWith({ caller: [callerHook("c1"), callerHook("c2")], agent: [agentHook("a1"), agentHook("a2")] });
        const probe = await manager.launch(ScopeProbe);
        await probe.args();
        expect(order).toEqual([
          "c1: send",
          "c2: send",
          "a1: request",
          "a2: request",
          "a1: action",
          "a2: action",
          "a2: action done",
          "a1: action done",
          "a1: respond",
          "a2: respond",
          "c1: response",
          "c2: response",
          "c2: sent",
          "c1: sent",
        ]);
      });

      test("hooks can change arguments, results and timeouts, and fail a call", async () => {
        const agent: AgentInterceptor = {
          async action(input, next) {
            if (input.request.action !== "args") return next(input);
            const result = (await next({ ...input, args: [...input.args, "added"] })) as unknown[];
            return [...result, "wrapped"];
          },
        };
        const caller: CallerInterceptor = {
          outboundRequest(input, next) {
            if (input.body.type === "action-request" && input.body.action === "sleep") input.timeoutMs = 50;
            return next(input);
          },
          inboundResponse(input, next) {
            if (input.response.type === "action-response" && input.response.result === "refuse me") throw new RangeError("refused");
            next(input);
          },
        };
        await using manager = await openWith({ caller: [caller], agent: [agent] });
        const probe = await manager.launch(ScopeProbe);
        expect(await probe.args("given")).toEqual(["given", "added", "wrapped"]);
        const sleeper = await manager.launch(Sleeper);
        const error = await sleeper.sleep(60_000).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RequestTimeoutError);
        expect((error as RequestTimeoutError).timeoutMs).toBe(50);
        const echo = await manager.launch(Troublemaker);
        await expect(echo.echo("refuse me")).rejects.toThrow(RangeError);
        expect(await echo.echo("fine")).toBe("fine");
      });

      test("an inboundRequest hook that throws rejects the request: the caller gets the error, nothing runs", async () => {
        const agent: AgentInterceptor = {
          inboundRequest(input, next) {
            if (input.request.headers?.["x-token"] !== "secret") throw new TypeError(`no token for ${input.request.type}`);
            return next(input);
          },
        };
        let token: string | undefined;
        const caller: CallerInterceptor = {
          outboundRequest(input, next) {
            if (token !== undefined) input.headers["x-token"] = token;
            return next(input);
          },
        };
        await using manager = await openWith({ caller: [caller], agent: [agent] });
        const recorder = new Recorder();
        const handle = await manager.launch(recorder);
        const error = await handle.record("refused").catch((e: unknown) => e);
        expect(error).toBeInstanceOf(TypeError);
        expect((error as Error).message).toBe("no token for action-request");
        await expect(handle.ping()).rejects.toThrow("no token for ping-request");
        // A shutdown request is only sent (nobody waits for its answer): refused, it stops nothing.
        await handle.shutdown();
        token = "secret";
        expect(await handle.record("allowed")).toBe(1);
        expect(recorder.entries).toEqual(["allowed"]);
        expect(manager.running().map((id) => id.uid)).toEqual([handle.agentId.uid]);
      });

      test("a request rejected as soon as the agent starts reading its mailbox is answered", async () => {
        const agent: AgentInterceptor = {
          inboundRequest(input, next) {
            if (input.request.type === "action-request" && input.request.action === "record") throw new RangeError("not taking records");
            return next(input);
          },
        };
        await using manager = await openWith({ agent: [agent] });
        const registration = await manager.registerAgent(Recorder);
        const handle = manager.getHandle(registration);
        // Sent while nobody runs the agent: it is the first thing its new engine receives.
        const refused = handle.record("early");
        const recorder = new Recorder();
        await manager.launch(recorder, { registration });
        await expect(refused).rejects.toThrow("not taking records");
        expect(await handle.log()).toEqual([]);
      });

      test("an action runs in its own scope, which caller-side hooks of the calls it makes can read", async () => {
        const scopesSeen: Array<ActionScope | undefined> = [];
        const propagate: CallerInterceptor = {
          outboundRequest(input, next) {
            const scope = currentAction();
            scopesSeen.push(scope);
            input.headers["x-request-id"] = scope?.headers?.["x-request-id"] ?? `root-${input.tag}`;
            return next(input);
          },
        };
        const inboundScopes: Array<ActionScope | undefined> = [];
        const observe: AgentInterceptor = {
          inboundRequest(input, next) {
            inboundScopes.push(currentAction());
            return next(input);
          },
        };
        await using manager = await openWith({ caller: [propagate], agent: [observe] });
        const probe = new ScopeProbe();
        const outer = await manager.launch(probe);
        const inner = await manager.launch(ScopeProbe);
        const relayed = await outer.relay(inner);
        const rootId = relayed.headers!["x-request-id"];
        expect(rootId).toMatch(/^root-/);
        const innerScope = relayed.inner as { tag: string; headers: Record<string, string> };
        expect(innerScope.headers).toEqual({ "x-request-id": rootId });
        expect(innerScope.tag).not.toBe(relayed.tag);
        // The user's call was made outside any action; the relayed one inside `relay`.
        expect(scopesSeen.map((scope) => scope?.action)).toEqual([undefined, "relay"]);
        expect(scopesSeen[1]?.tag).toBe(relayed.tag);
        // Agents receive requests outside the sender's scope; loops run outside any.
        expect(inboundScopes).toEqual([undefined, undefined]);
        expect(await probe.outside.promise).toBeUndefined();
        expect(currentAction()).toBeUndefined();
      });
    });

    describe("deadlines", () => {
      /** A caller-side interceptor that sets a deadline header on calls of `action`, as a foreign caller would: no timeout, so no cancel. */
      function foreignDeadline(action: string, deadline: () => number): CallerInterceptor {
        return {
          outboundRequest(input, next) {
            if (input.body.type === "action-request" && input.body.action === action) input.headers[DEADLINE_HEADER] = String(deadline());
            return next(input);
          },
        };
      }

      /** Wait for the clock to pass `deadline` (the event under test is time itself). */
      async function pastDeadline(deadline: number): Promise<void> {
        while (Date.now() <= deadline) await sleep(deadline - Date.now() + 1);
      }

      test("a caller's timeout travels as a deadline, passed on by an action to the agents it calls, which stop by it", async () => {
        await using manager = await open();
        const probe = new DeadlineProbe();
        const callee = await manager.launch(probe);
        const relay = new DeadlineRelay();
        const handle = await manager.launch(relay);
        const before = Date.now();
        const error = await handle.with({ timeoutMs: 300 }).relay(callee).catch((e: unknown) => e);
        // The user's own timeout, or the relay's call giving up at the same moment and failing the relay first.
        expect(error).toBeInstanceOf(RequestTimeoutError);
        expect((error as RequestTimeoutError).timeoutMs).toBeLessThanOrEqual(300);
        const deadline = (await relay.seen.promise)!;
        expect(deadline).toBeGreaterThanOrEqual(before + 300 + DEFAULT_CANCEL_WINDOW_MS);
        // (Timers may fire a few ms before the wall clock says: Node reads its clock once per loop turn.)
        expect(deadline).toBeLessThanOrEqual(Date.now() + DEFAULT_CANCEL_WINDOW_MS + 50);
        // The relay called with no timeout: its call carried its own deadline unchanged...
        expect(await probe.seen.promise).toBe(deadline);
        // ...and, its timeout shrunk to match, gave up when the user did (one cancel window before it).
        const relayed = await relay.outcome.promise;
        expect(relayed).toBeInstanceOf(RequestTimeoutError);
        expect((relayed as RequestTimeoutError).timeoutMs).toBeLessThanOrEqual(300);
        const { at, reason } = await probe.aborted.promise;
        expect(at).toBeLessThanOrEqual(deadline);
        expect([ActionCancelledError, RequestTimeoutError].some((type) => reason instanceof type)).toBe(true);
      });

      test("an action's signal aborts when its deadline passes, with RequestTimeoutError, with no cancel from its caller", async () => {
        let deadline = 0;
        await using manager = await openWith({ caller: [foreignDeadline("wait", () => (deadline = Date.now() + 200))] });
        const probe = new DeadlineProbe();
        const handle = await manager.launch(probe);
        const error = await handle.wait().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RequestTimeoutError);
        expect(await probe.seen.promise).toBe(deadline);
        const { at, reason } = await probe.aborted.promise;
        expect(reason).toBeInstanceOf(RequestTimeoutError);
        expect(at).toBeGreaterThanOrEqual(deadline);
        expect(at).toBeLessThan(deadline + 1000);
      });

      test("a request queued behind a long action is not run if its deadline passed meanwhile", async () => {
        let deadline = 0;
        await using manager = await openWith({ caller: [foreignDeadline("hold", () => (deadline = Date.now() + 200))] });
        const agent = new Gatekeeper();
        const handle = await manager.launch(agent, { config: { maxConcurrentActions: 1 } });
        const running = handle.hold(0);
        await agent.arrivals[0]!.promise;
        const queued = handle.hold(1);
        // Pings skip the queue; answered, the queued request has reached the agent and waits for the slot.
        expect(await handle.ping()).toBeGreaterThan(0);
        await pastDeadline(deadline);
        agent.gates[0]!.resolve();
        expect(await running).toBe(0);
        const error = await queued.catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RequestTimeoutError);
        expect((error as Error).message).toContain("before it could run");
        expect(agent.maxRunning).toBe(1);
        expect(agent.gates[1]).toBeUndefined();
      });

      test("deadlines are on by default and can be turned off", async () => {
        await using withDeadlines = await open();
        const probe = await withDeadlines.launch(ScopeProbe);
        const scope = await probe.with({ timeoutMs: 5000 }).scope();
        expect(Number(scope.headers?.[DEADLINE_HEADER])).toBeGreaterThan(Date.now());
        expect((await probe.scope()).headers).toBeUndefined();
        await using without = await Manager.fromExchangeFactory(target().newFactory({ deadlines: false }));
        const bare = await without.launch(ScopeProbe);
        expect((await bare.with({ timeoutMs: 5000 }).scope()).headers).toBeUndefined();
      });
    });

    describe("manager", () => {
      test("without a factory, a manager runs agents on an in-process exchange", async () => {
        await using manager = await Manager.fromExchangeFactory();
        const counter = await manager.launch(Counter);
        expect(await counter.increment(4)).toBe(4);
      });

      test("launch, running, wait with timeout and returnWhen, shutdown", async () => {
        await using manager = await open();
        const a = await manager.launch(Counter);
        const b = await manager.launch(Counter);
        expect(manager.running().map((id) => id.uid).sort()).toEqual([a.agentId.uid, b.agentId.uid].sort());
        await expect(manager.wait([a, b], { timeoutMs: 50 })).rejects.toThrow(WaitTimeoutError);
        await manager.shutdown(a, { blocking: false });
        await manager.wait([a, b], { returnWhen: ReturnWhen.FirstCompleted });
        expect(manager.running().map((id) => id.uid)).toEqual([b.agentId.uid]);
        await manager.shutdown(a);
        await manager.shutdown(b);
        expect(manager.running()).toEqual([]);
      });

      test("unknown agents and executors, double launch", async () => {
        await using manager = await open();
        await expect(manager.shutdown(AgentId.create())).rejects.toThrow(BadEntityIdError);
        await expect(manager.wait([AgentId.create()])).rejects.toThrow(BadEntityIdError);
        await expect(manager.launch(Counter, { executor: "nowhere" })).rejects.toThrow(UnknownExecutorError);
        const registration = await manager.registerAgent(Counter);
        await manager.launch(Counter, { registration });
        await expect(manager.launch(Counter, { registration })).rejects.toThrow(AgentAlreadyLaunchedError);
      });

      test("a failed agent is restarted under the same id up to maxRetries", async () => {
        await using manager = await open({ maxRetries: 2, retryBackoffMs: 1 });
        const agent = new FlakyStarter(2);
        const handle = await manager.launch(agent);
        expect(await handle.runCount()).toBe(3);
        expect(await manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Active);
      });

      test("after the last retry the mailbox is terminated and waiters get the error", async () => {
        await withManager({ maxRetries: 1, retryBackoffMs: 1 }, async (manager) => {
          const agent = new FlakyStarter(5);
          const handle = await manager.launch(agent);
          const pending = expect(handle.runCount()).rejects.toThrow(AgentTerminatedError);
          await expect(manager.wait([handle], { raiseError: true })).rejects.toThrow("startup failure 2");
          expect(agent.runs).toBe(2);
          expect(await manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Terminated);
          await pending;
        });
      });

      test("close shuts every agent down, closes the client, and raises agent errors", async () => {
        const manager = await open();
        const healthy = await manager.launch(Counter);
        const failing = await manager.launch(new FlakyStarter(1));
        await manager.wait([failing]);
        await expect(manager.close()).rejects.toThrow("startup failure 1");
        expect(manager.running()).toEqual([]);
        await expect(healthy.increment()).rejects.toThrow(ClientClosedError);
        await expect(manager.launch(Counter)).rejects.toThrow(ClientClosedError);
        await expect(manager.close()).rejects.toThrow("startup failure 1");
      });
    });
  });
}

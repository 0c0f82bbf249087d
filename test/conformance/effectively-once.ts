/**
 * Effectively-once execution (docs/PROTOCOL.md section 10.10), run against every exchange: a
 * request whose action completed is not run again when it is delivered again; the duplicate gets
 * the recorded response. Each case also runs with the feature off (`resultWindowMs: 0`) or the
 * action opted out (`once: false`), where the duplicate runs the action again: the same test
 * tells the two apart, so it fails if records stop working.
 */
import { afterEach, describe, expect, test } from "vitest";
import { Agent, AgentEngine, ExchangeUnavailableError, MessageType, action } from "../../src/index.ts";
import type { AgentInterceptor, AgentRegistration, ExchangeFactory, ResultStore, RuntimeConfig, UserExchangeClient } from "../../src/index.ts";
import type { ActionRequest, RequestMessage } from "../../src/protocol/messages.ts";

/** Executions by `<agent uid>:<key>`, counted outside the agents. */
const executions = new Map<string, number>();

function countRun(agentId: string, key: string): void {
  const at = `${agentId}:${key}`;
  executions.set(at, (executions.get(at) ?? 0) + 1);
}

function runs(agentId: string, key: string): number {
  return executions.get(`${agentId}:${key}`) ?? 0;
}

export class OnceProbe extends Agent {
  /** Effectively once (the default). */
  @action
  async work(key: string): Promise<string> {
    countRun(this.agentId.uid, key);
    return `done:${key}:${runs(this.agentId.uid, key)}`;
  }

  /** Opted out: at-least-once. */
  @action({ once: false })
  async workAgain(key: string): Promise<string> {
    countRun(this.agentId.uid, key);
    return `again:${key}:${runs(this.agentId.uid, key)}`;
  }

  /** Throws: a failure is a completed action too, recorded like a result. */
  @action
  async fail(key: string): Promise<never> {
    countRun(this.agentId.uid, key);
    throw new RangeError(`failed ${key}`);
  }
}

/** Options the suite passes to a new factory (every exchange's factory takes these). */
export interface OnceFactoryOptions {
  resultWindowMs?: number;
  interceptors?: { agent?: readonly AgentInterceptor[] };
}

/** How the suite gets an isolated exchange and puts a copy of a request back into a mailbox. */
export interface OnceTarget {
  newFactory(options?: OnceFactoryOptions): ExchangeFactory;
  /**
   * Store `request` in its destination mailbox again as a new message marked as a re-publication
   * (on NATS the `Academy-Resent` header), as a sender's retry or a relay stores it after the
   * duplicate window: a duplicate no memory of the agent's process can recognise. (What a server
   * that lost its acknowledgements gives back, an old sequence, is tested per exchange: on NATS in
   * test/integration/nats/duplicate-rule.test.ts.)
   */
  redeliver(factory: ExchangeFactory, request: RequestMessage): Promise<void>;
}

/** One agent on its own engine: stop it and start a fresh one (empty memory of answered tags). */
class EngineRun {
  #engine: AgentEngine<OnceProbe> | undefined;
  #running: Promise<void> | undefined;

  constructor(
    readonly factory: ExchangeFactory,
    readonly registration: AgentRegistration<OnceProbe>,
  ) {}

  start(factory: ExchangeFactory = this.factory, config?: RuntimeConfig): void {
    this.#engine = new AgentEngine(new OnceProbe(), { exchangeFactory: factory, registration: this.registration, ...(config !== undefined && { config }) });
    this.#running = this.#engine.run();
  }

  async stop(): Promise<void> {
    this.#engine?.requestShutdown({ expected: true, terminate: false });
    await this.#running;
    this.#engine = undefined;
  }
}

/** Records what an agent's responses carried, by tag, and captures its requests. */
function observer(): { interceptor: AgentInterceptor; requests: Map<string, ActionRequest>; responses: Map<string, unknown[]>; failNext: Set<string> } {
  const requests = new Map<string, ActionRequest>();
  const responses = new Map<string, unknown[]>();
  const failNext = new Set<string>();
  const interceptor: AgentInterceptor = {
    inboundRequest(input, next) {
      const request = next(input);
      if (request.type === MessageType.ActionRequest) requests.set(String(request.args[0]), request);
      return request;
    },
    async outboundResponse(input, next) {
      const key = input.request.type === MessageType.ActionRequest ? String(input.request.args[0]) : undefined;
      if (key !== undefined && failNext.delete(key)) {
        throw new ExchangeUnavailableError("response publish failed (injected by the test)");
      }
      if (key !== undefined) {
        const body = input.response;
        const seen = responses.get(key) ?? [];
        seen.push(body.type === MessageType.ActionResponse ? body.result : body.type === MessageType.ErrorResponse ? body.error.message : body.type);
        responses.set(key, seen);
      }
      await next(input);
    },
  };
  return { interceptor, requests, responses, failNext };
}

/** Wait until `check` holds (polling a counter the test cannot await otherwise), or fail after `ms`. */
async function until(check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function describeEffectivelyOnce(name: string, target: () => OnceTarget): void {
  describe(`${name}: effectively-once execution`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    async function setUp(options: OnceFactoryOptions = {}) {
      const seen = observer();
      const factory = target().newFactory({ ...options, interceptors: { agent: [seen.interceptor] } });
      const user: UserExchangeClient = await factory.createUserClient();
      const registration = await user.registerAgent(OnceProbe);
      const run = new EngineRun(factory, registration);
      run.start();
      cleanups.push(async () => {
        await run.stop().catch(() => undefined);
        await user.close();
        await factory.close();
      });
      return { factory, user, registration, run, handle: user.getHandle(registration.agentId), uid: registration.agentId.uid, ...seen };
    }

    test("a response that could not be published: the request comes back and is answered from its record, not run again", async () => {
      const { handle, uid, failNext, responses } = await setUp();
      failNext.add("k1");
      expect(await handle.work("k1")).toBe("done:k1:1");
      expect(runs(uid, "k1")).toBe(1);
      expect(responses.get("k1")).toEqual(["done:k1:1"]);
    });

    test("with results off, the same failed response makes the action run twice (what the record prevents)", async () => {
      const { handle, uid, failNext } = await setUp({ resultWindowMs: 0 });
      failNext.add("k1");
      expect(await handle.work("k1")).toBe("done:k1:2");
      expect(runs(uid, "k1")).toBe(2);
    });

    test("an action opted out (once: false) runs again after a failed response", async () => {
      const { handle, uid, failNext } = await setUp();
      failNext.add("k1");
      expect(await handle.workAgain("k1")).toBe("again:k1:2");
      expect(runs(uid, "k1")).toBe(2);
    });

    test("a request given back after it was acknowledged reaches a restarted agent: answered from its record, not run", async () => {
      const { factory, handle, uid, run, requests, responses } = await setUp();
      expect(await handle.work("k2")).toBe("done:k2:1");
      expect(await handle.fail("k3").catch((error: Error) => error.message)).toBe("failed k3");
      // A fresh engine: nothing in memory says these requests were answered.
      await run.stop();
      run.start();
      await target().redeliver(factory, requests.get("k2")!);
      await target().redeliver(factory, requests.get("k3")!);
      await until(() => (responses.get("k2")?.length ?? 0) === 2 && (responses.get("k3")?.length ?? 0) === 2);
      expect(responses.get("k2")).toEqual(["done:k2:1", "done:k2:1"]);
      expect(responses.get("k3")).toEqual(["failed k3", "failed k3"]);
      expect(runs(uid, "k2")).toBe(1);
      expect(runs(uid, "k3")).toBe(1);
      // The agent still runs new requests.
      expect(await handle.work("k4")).toBe("done:k4:1");
    });

    test("with results off, the request given back runs again on the restarted agent", async () => {
      const { factory, handle, uid, run, requests, responses } = await setUp({ resultWindowMs: 0 });
      expect(await handle.work("k2")).toBe("done:k2:1");
      await run.stop();
      run.start();
      await target().redeliver(factory, requests.get("k2")!);
      await until(() => (responses.get("k2")?.length ?? 0) === 2);
      expect(runs(uid, "k2")).toBe(2);
      expect(responses.get("k2")).toEqual(["done:k2:1", "done:k2:2"]);
    });

    test("an agent stopping while a finished action's record is being written waits for it: the next run answers from the record", async () => {
      const { factory, handle, uid, run, responses } = await setUp();
      // The first run's records take 600 ms to store (a server slow to acknowledge); its grace
      // for actions at shutdown is 20 ms.
      const store = (await factory.resultStore!())!;
      let slow = true;
      const slowStore: ResultStore = {
        windowMs: store.windowMs,
        lookup: (agentUid, request, binder) => store.lookup(agentUid, request, binder),
        record: async (agentUid, request, body) => {
          if (slow) await new Promise((resolve) => setTimeout(resolve, 600));
          await store.record(agentUid, request, body);
        },
      };
      const slowFactory: ExchangeFactory = {
        interceptors: factory.interceptors,
        createUserClient: (options) => factory.createUserClient(options),
        createAgentClient: (registration, handler, options) => factory.createAgentClient(registration, handler, options),
        resultStore: async () => slowStore,
        forWorker: () => factory.forWorker(),
        close: () => factory.close(),
      };
      await run.stop();
      run.start(slowFactory, { shutdownGraceMs: 20 });
      const call = handle.work("k6");
      await until(() => runs(uid, "k6") === 1);
      // Stop while the record is being written, and start the next run at once.
      await run.stop();
      slow = false;
      run.start();
      expect(await call).toBe("done:k6:1");
      await handle.work("k7");
      expect(runs(uid, "k6")).toBe(1);
      expect(responses.get("k6")).toHaveLength(1);
    });

    test("the same tag from another sender is another request: it runs", async () => {
      const { factory, handle, uid, run, requests, responses, user } = await setUp();
      expect(await handle.work("k5")).toBe("done:k5:1");
      await run.stop();
      run.start();
      const other = await factory.createUserClient();
      cleanups.push(() => other.close());
      const original = requests.get("k5")!;
      // Answered in the other user's mailbox (whatever the reply mode of the first).
      await target().redeliver(factory, { ...original, src: other.clientId.uid, replyTo: undefined });
      await until(() => (responses.get("k5")?.length ?? 0) === 2);
      expect(runs(uid, "k5")).toBe(2);
      expect(user.clientId.uid).not.toBe(other.clientId.uid);
    });
  });
}

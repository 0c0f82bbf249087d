/**
 * `npm start`: a tour of the agent model. It starts its own nats-server when the binary is on
 * PATH and runs on NATS JetStream; otherwise it runs on the in-process exchange. It says which.
 */
import {
  Agent,
  AgentTerminatedError,
  LocalExchangeFactory,
  Manager,
  NatsExchangeFactory,
  UnknownActionError,
  action,
  timer,
} from "../src/index.ts";
import type { ActionContext, ExchangeFactory, Handle } from "../src/index.ts";
import { findNatsServerBinary, startNatsServer } from "../src/testing/index.ts";
import type { NatsServer } from "../src/testing/index.ts";

class Counter extends Agent {
  #count = 0;
  ticks = 0;
  @action({ description: "Add `by` to the count; returns the new count" })
  async increment(by = 1): Promise<number> {
    this.#count += by;
    return this.#count;
  }
  @action async get(): Promise<number> {
    return this.#count;
  }
  @timer(100) async tick(): Promise<void> {
    this.ticks++;
  }
}
class FastCounter extends Counter {}

/** Holds handles to other agents and calls them: agents reference agents. */
class Coordinator extends Agent {
  constructor(private readonly counters: Handle<Counter>[]) {
    super();
  }
  @action async fanOut(by: number): Promise<number[]> {
    return Promise.all(this.counters.map((c) => c.increment(by)));
  }
}

class Slow extends Agent {
  @action({ context: true }) async work(ms: number, ctx: ActionContext): Promise<string> {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(ctx.signal.reason);
      });
    });
    return "finished";
  }
}

function show(label: string, value: unknown): void {
  console.log(`  ${label.padEnd(46)} ${typeof value === "string" ? value : JSON.stringify(value)}`);
}

// ACADEMY_DEMO_EXCHANGE=local forces the in-process exchange; otherwise NATS when the binary exists.
const forceLocal = process.env["ACADEMY_DEMO_EXCHANGE"] === "local";
let server: NatsServer | undefined;
let factory: ExchangeFactory;
if (!forceLocal && findNatsServerBinary() !== undefined) {
  server = await startNatsServer();
  factory = new NatsExchangeFactory({ servers: server.url });
  console.log(`Exchange: NATS JetStream (started nats-server at ${server.url}, store ${server.storeDir})`);
} else {
  factory = new LocalExchangeFactory();
  console.log(
    forceLocal
      ? "Exchange: in-process (ACADEMY_DEMO_EXCHANGE=local)"
      : "Exchange: in-process (no nats-server on PATH; `apt-get install -y nats-server` to run on NATS)",
  );
}

try {
  await using manager = await Manager.fromExchangeFactory(factory);
  const counter = await manager.launch(Counter, { name: "counter" });
  const fast = await manager.launch(FastCounter, { name: "fast" });
  console.log("\nActions");
  show("counter.action('increment', 2)", await counter.action("increment", 2));
  show("counter.increment(3)  (typed proxy)", await counter.increment(3));
  show("counter.ping()  (ms)", (await counter.ping()).toFixed(2));

  console.log("\nDiscovery (by type, subclasses included unless told otherwise)");
  const names = async (ids: Promise<{ name?: string | undefined }[]>) => (await ids).map((id) => id.name).sort();
  show("discover(Counter)", await names(manager.exchangeClient.discover(Counter)));
  show("discover(Counter, { allowSubclasses: false })", await names(manager.exchangeClient.discover(Counter, { allowSubclasses: false })));
  show("discover(Agent)", await names(manager.exchangeClient.discover(Agent)));

  console.log("\nHandles passed between agents");
  const coordinator = await manager.launch(Coordinator, { args: [[counter, fast]] });
  show("coordinator.fanOut(10)", await coordinator.fanOut(10));

  console.log("\nErrors and cancellation");
  const slow = await manager.launch(Slow);
  try {
    await slow.with({ timeoutMs: 200 }).work(10_000);
  } catch (error) {
    show("slow.with({ timeoutMs: 200 }).work(10000)", `${(error as Error).name} (the agent's action was cancelled)`);
  }
  try {
    await counter.action("decrement");
  } catch (error) {
    show("counter.action('decrement')", (error as UnknownActionError).name);
  }
  show("counter.agentDescribe() actions", (await counter.agentDescribe()).actions.map((a) => a.name));

  console.log("\nShutdown");
  await manager.shutdown(counter, { blocking: true });
  show("status after shutdown", await manager.exchangeClient.status(counter.agentId));
  try {
    await counter.get();
  } catch (error) {
    show("counter.get() after shutdown", (error as AgentTerminatedError).name);
  }
  show("manager.running()", manager.running().length + " agents still running (closed by `await using`)");
} finally {
  await server?.[Symbol.asyncDispose]();
}
console.log("\nDone.");

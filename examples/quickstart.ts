/**
 * The README's quick start, runnable: `npx tsx examples/quickstart.ts nats://127.0.0.1:4222`.
 */
import { Agent, Manager, NatsExchangeFactory, action, loop, timer } from "../src/index.ts";
import type { NatsExchangeOptions } from "../src/index.ts";

export class Counter extends Agent {
  #count = 0;
  @action async increment(by = 1): Promise<number> {
    this.#count += by;
    return this.#count;
  }
  @action async get(): Promise<number> {
    return this.#count;
  }
  @loop async report(signal: AbortSignal): Promise<void> {
    /* runs until shutdown; signal aborts */
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  }
  @timer(1000) async tick(): Promise<void> {
    /* every second until shutdown */
  }
  override async agentOnStartup(): Promise<void> {}
  override async agentOnShutdown(): Promise<void> {}
}
export class FastCounter extends Counter {}

/** `options`: anything else the connection needs (credentials); the README shows just `servers`. */
export async function quickstart(servers: string, options: NatsExchangeOptions = {}): Promise<void> {
  await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ ...options, servers }));
  const counter = await manager.launch(Counter); // Handle<Counter>
  await counter.action("increment", 2); // 2
  await counter.increment(3); // 5: typed proxy over the agent's actions
  await manager.exchangeClient.discover(Counter); // ids of Counter and FastCounter agents
  await manager.exchangeClient.discover(Counter, { allowSubclasses: false });
  await counter.ping(); // round-trip time in ms
  await manager.shutdown(counter, { blocking: true });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await quickstart(process.argv[2] ?? "nats://127.0.0.1:4222");
}

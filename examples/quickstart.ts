/**
 * The README's quick start, runnable: `npx tsx examples/quickstart.ts [nats://127.0.0.1:4222]`
 * (NATS_URL works too). It prints what each step returns.
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

/**
 * Run the quick start on the NATS server at `servers`, printing each result with `print`.
 * @param options - anything else the connection needs (credentials); the README shows just `servers`.
 */
export async function quickstart(
  servers: string,
  options: NatsExchangeOptions = {},
  print: (...values: unknown[]) => void = console.log,
): Promise<void> {
  await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ ...options, servers }));
  const counter = await manager.launch(Counter); // Handle<Counter>
  print("increment(2) ->", await counter.action("increment", 2)); // 2
  print("increment(3) ->", await counter.increment(3)); // 5: typed proxy over the agent's actions
  await manager.launch(FastCounter);
  print("Counter agents:", (await manager.exchangeClient.discover(Counter)).length); // 2: Counter and FastCounter
  print("exactly Counter:", (await manager.exchangeClient.discover(Counter, { allowSubclasses: false })).length); // 1
  print(`ping: ${(await counter.ping()).toFixed(1)} ms`); // round-trip time
  await manager.shutdown(counter, { blocking: true });
  print("counter shut down");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await quickstart(process.argv[2] ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222");
}

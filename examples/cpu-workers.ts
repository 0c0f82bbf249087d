/**
 * CPU work on worker threads: each agent runs in a worker thread of its own, so several crunch in
 * parallel and the manager's event loop stays responsive meanwhile.
 *
 *   npx tsx examples/cpu-workers.ts [nats://127.0.0.1:4222]     (no argument and no NATS_URL: in process)
 */
import { availableParallelism } from "node:os";
import { LocalExchangeFactory, Manager, NatsExchangeFactory, WorkerThreadExecutor } from "../src/index.ts";
import type { ExchangeFactory } from "../src/index.ts";
import { PrimeCounter } from "./cpu-agents.ts";

/** The workers import the agents' module; from the TypeScript sources they need tsx's loader. */
const FROM_SOURCE = import.meta.url.endsWith(".ts");

/** Run the example on `factory`, printing what happens; the prime counts. */
export async function main(factory: ExchangeFactory, print: (...values: unknown[]) => void = console.log, bound = 2_000_000): Promise<number[]> {
  const workers = Math.max(2, Math.min(4, availableParallelism()));
  await using manager = await Manager.fromExchangeFactory(factory, {
    executors: {
      workers: new WorkerThreadExecutor({
        modules: [new URL(`./cpu-agents.${FROM_SOURCE ? "ts" : "js"}`, import.meta.url)],
        maxWorkers: workers,
        ...(FROM_SOURCE && { execArgv: ["--import", new URL("./tsx-workers.mjs", import.meta.url).href] }),
      }),
    },
  });
  const counters = await Promise.all(Array.from({ length: workers }, () => manager.launch(PrimeCounter, { executor: "workers" })));
  // While the workers crunch, this event loop keeps ticking.
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  const started = performance.now();
  const counts = await Promise.all(counters.map((c, i) => c.countBelow(bound + i)));
  const elapsedMs = performance.now() - started;
  clearInterval(ticker);
  print(`${workers} agents counted primes below ~${bound} in parallel: ${counts.join(", ")} (${Math.round(elapsedMs)} ms)`);
  print(`the manager's event loop ticked ${ticks} times meanwhile`);
  return counts;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const servers = process.argv[2] ?? process.env.NATS_URL;
  await main(servers === undefined ? new LocalExchangeFactory() : new NatsExchangeFactory({ servers }));
}

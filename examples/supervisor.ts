/**
 * A supervisor with restarts: the manager restarts an agent that fails, under the same id and
 * mailbox, up to `maxRetries` times with a doubling backoff. Requests sent while it restarts wait
 * in its mailbox and reach the next run; its in-memory state starts over.
 *
 *   npx tsx examples/supervisor.ts [nats://127.0.0.1:4222]     (no argument and no NATS_URL: in process)
 */
import { Agent, LocalExchangeFactory, Manager, NatsExchangeFactory, action, loop } from "../src/index.ts";
import type { ExchangeFactory } from "../src/index.ts";

/** Runs of each agent so far, by id (kept outside the agent: its own state starts over at each run). */
const runs = new Map<string, number>();

/** Fails its first two startups (a dependency not ready yet), then serves. */
export class FlakyStartup extends Agent {
  #run = 0;
  override async agentOnStartup(): Promise<void> {
    this.#run = (runs.get(this.agentId.uid) ?? 0) + 1;
    runs.set(this.agentId.uid, this.#run);
    if (this.#run <= 2) throw new Error(`dependency not ready (run ${this.#run})`);
  }
  @action async run(): Promise<number> {
    return this.#run;
  }
}

/** Crashes when told to: its loop throws, which fails the run (`shutdownOnLoopError`). */
export class Crashy extends Agent {
  #crash: (() => void) | undefined;
  #run = 0;
  #served = 0;
  override async agentOnStartup(): Promise<void> {
    this.#run = (runs.get(this.agentId.uid) ?? 0) + 1;
    runs.set(this.agentId.uid, this.#run);
  }
  @loop async watchdog(signal: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#crash = () => reject(new Error("crashed on purpose"));
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }
  /** Fails the run now: requests that arrive from here on wait for the next run. */
  @action async crash(): Promise<void> {
    this.#crash?.();
  }
  /** Which run answers, and how many requests this run has served. */
  @action async serve(): Promise<{ run: number; served: number }> {
    return { run: this.#run, served: ++this.#served };
  }
}

/** Run the example on `factory`, printing what happens. */
export async function main(factory: ExchangeFactory, print: (...values: unknown[]) => void = console.log): Promise<void> {
  await using manager = await Manager.fromExchangeFactory(factory, { maxRetries: 3, retryBackoffMs: 50 });

  const flaky = await manager.launch(FlakyStartup);
  // Sent at once: it waits in the mailbox through the two failed startups.
  print("FlakyStartup answered from run", await flaky.run());

  const crashy = await manager.launch(Crashy);
  const before = await crashy.serve();
  print(`Crashy run ${before.run} served ${before.served} request(s)`);
  await crashy.crash();
  // Restarted under the same id: the handle still works; its state started over.
  const after = await crashy.with({ timeoutMs: 10_000 }).serve();
  print(`after the crash, Crashy run ${after.run} served ${after.served} request(s)`);
  print("same agent id:", manager.running().some((id) => id.uid === crashy.agentId.uid));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const servers = process.argv[2] ?? process.env.NATS_URL;
  await main(servers === undefined ? new LocalExchangeFactory() : new NatsExchangeFactory({ servers }));
}

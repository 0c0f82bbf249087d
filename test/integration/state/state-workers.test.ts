/**
 * Durable state and reminders of agents in worker threads, on the in-process exchange (the state
 * and reminders reach the main thread's exchange through its port) and on NATS: the state is kept
 * across runs in workers and in the event loop, and a reminder set from a worker fires into it.
 */
import { describe, expect, test } from "vitest";
import { LocalExchangeFactory, Manager, NatsExchangeFactory } from "../../../src/index.ts";
import type { ExchangeFactory, Handle } from "../../../src/index.ts";
import { WorkerThreadExecutor } from "../../../src/manager/worker-thread-executor.ts";
import { Reminded, StatefulCounter } from "../../fixtures/state-agents.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

const AGENTS = new URL("../../fixtures/state-agents.ts", import.meta.url);
const EXEC_ARGV = ["--import", new URL("../../fixtures/register-tsx.mjs", import.meta.url).href];

let serial = 0;

const exchanges: Array<{ name: string; create(): ExchangeFactory }> = [
  { name: "in-process", create: () => new LocalExchangeFactory() },
  {
    name: "NATS",
    create: () =>
      new NatsExchangeFactory({
        servers: shared.nats.url,
        prefix: `sw${process.pid}_${++serial}`,
        ...(shared.nats.connectionOptions.user === undefined ? {} : { connectionOptions: { user: shared.nats.connectionOptions.user, pass: shared.nats.connectionOptions.pass } }),
      }),
  },
];

describe.each(exchanges)("durable state in worker threads: $name exchange", ({ create }) => {
  test("state saved in a worker is loaded by the next run, in the event loop; a reminder set in a worker fires into it", async () => {
    const executor = new WorkerThreadExecutor({ modules: [AGENTS], execArgv: EXEC_ARGV });
    await using manager = await Manager.fromExchangeFactory(create(), { executors: { workers: executor } });
    const registration = await manager.registerAgent(StatefulCounter);
    const inWorker = await manager.launch(StatefulCounter, { registration, executor: "workers" });
    expect([await inWorker.increment(2), await inWorker.increment(3)]).toEqual([2, 5]);
    await manager.shutdown(inWorker, { blocking: true, terminate: false });

    const other = new Manager(await manager.exchangeFactory.createUserClient());
    await using _ = other;
    const inLoop = await other.launch(StatefulCounter, { registration });
    expect(await inLoop.increment(1)).toBe(6);

    const reminded: Handle<Reminded> = await manager.launch(Reminded, { executor: "workers" });
    await reminded.remind("tick", { action: "onReminder", everyMs: 150 });
    const deadline = Date.now() + 10_000;
    let fires: number[] = [];
    while ((fires = await reminded.fires("tick")).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(fires.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < fires.length; i++) expect(fires[i]! - fires[i - 1]!).toBe(150);
    expect((await reminded.reminders()).map((r) => r.name)).toEqual(["tick"]);
    expect(await reminded.forget("tick")).toBe(true);
  });
});

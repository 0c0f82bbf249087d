/**
 * Subscriptions of agents run in worker threads: on NATS the worker's own factory reads the
 * stream; on the in-process exchange the worker has no events, and the agent's startup fails with
 * a typed error saying so.
 */
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { expect, test } from "vitest";
import { InvalidConfigError, LocalExchangeFactory, Manager, NatsExchangeFactory } from "../../../src/index.ts";
import { WorkerThreadExecutor } from "../../../src/manager/worker-thread-executor.ts";
import { OrderedRecorder } from "../../fixtures/event-agents.ts";
import { startTestNats } from "../../support/nats.ts";

const AGENTS = new URL("../../fixtures/event-agents.ts", import.meta.url);
const EXEC_ARGV = ["--import", new URL("../../fixtures/register-tsx.mjs", import.meta.url).href];

test("an agent in a worker thread reads its durable subscription on NATS", async () => {
  await using nats = await startTestNats();
  const nc = await connect(nats.connectionOptions);
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "DURABLE", subjects: ["durable.>"] });
    await jsm.streams.add({ name: "RESULTS", subjects: ["results.>"] });
    const factory = new NatsExchangeFactory({ servers: nats.url, prefix: "wt" });
    await using manager = await Manager.fromExchangeFactory(factory, { executors: { workers: new WorkerThreadExecutor({ modules: [AGENTS], execArgv: EXEC_ARGV }) } });
    const recorder = await manager.launch(OrderedRecorder, { executor: "workers" });
    await recorder.ping();
    const js = jetstream(nc);
    for (let n = 0; n < 20; n++) await js.publish("durable.k1.ev", JSON.stringify({ key: "k1", n }));
    await expect.poll(async () => (await jsm.streams.info("RESULTS")).state.messages, { timeout: 20_000 }).toBe(20);
  } finally {
    await nc.close();
  }
}, 60_000);

test("on the in-process exchange an agent with subscriptions in a worker thread fails at startup with InvalidConfigError", async () => {
  const manager = await Manager.fromExchangeFactory(new LocalExchangeFactory(), {
    executors: { workers: new WorkerThreadExecutor({ modules: [AGENTS], execArgv: EXEC_ARGV }) },
  });
  const recorder = await manager.launch(OrderedRecorder, { executor: "workers" });
  const error = await manager.wait([recorder], { raiseError: true }).catch((e: unknown) => e);
  await manager.close().catch(() => undefined);
  expect(error).toBeInstanceOf(InvalidConfigError);
  expect((error as Error).message).toContain("offers none");
}, 60_000);

/**
 * `Manager.close()` after the only host of the pool its agents run on has drained: the agents were
 * handed back to the pool and no host will start them to read their shutdown request. Before the
 * fix, close waited out its whole deadline (`closeTimeoutMs`, 60 s by default) and threw
 * `WaitTimeoutError`.
 */
import { describe, expect, test } from "vitest";
import { HostPoolExecutor, MailboxStatus, Manager, NatsExchangeFactory } from "../../../src/index.ts";
import { RuntimeHost } from "../../../runtime/index.ts";
import { Counter } from "../../fixtures/worker-agents.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();


describe("Manager.close() after the pool's only host drained", () => {
  test("ends the launches no host will start, terminates their mailboxes, and returns at once without an error", async () => {
    const options = { servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `drained${process.pid}` };
    const factory = new NatsExchangeFactory(options);
    const host = await RuntimeHost.start({ pool: "solo", classes: [Counter], exchange: options, heartbeatMs: 500, hostTtlMs: 2_000 });
    const manager = await Manager.fromExchangeFactory(factory, { executors: { solo: new HostPoolExecutor({ pool: "solo" }) }, closeTimeoutMs: 30_000 });
    const counter = await manager.launch(Counter, { executor: "solo" });
    await counter.with({ timeoutMs: 20_000 }).ping();
    await host.drain();
    const started = Date.now();
    const error = await manager.close().catch((e: unknown) => e);
    const took = Date.now() - started;
    expect(error).toBeUndefined();
    expect(took).toBeLessThan(10_000);
    // As a shutdown with the default terminateOnSuccess leaves it.
    const observer = new NatsExchangeFactory(options);
    const client = await observer.createUserClient();
    expect(await client.status(counter.agentId)).toBe(MailboxStatus.Terminated);
    await client.close();
    await observer.close();
  }, 60_000);
});

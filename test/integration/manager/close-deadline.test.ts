/**
 * `Manager.close()` with an agent that does not stop (its shutdown hook never returns, on a host in
 * a child process): it says what it waits for, gives up at `closeTimeoutMs`, still closes
 * everything, and throws `WaitTimeoutError`. (Agents queued on a pool no host serves do not make
 * it wait: close-drained.test.ts.)
 */
import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, test } from "vitest";
import { HostPoolExecutor, Manager, NatsExchangeFactory, WaitTimeoutError } from "../../../src/index.ts";
import { StubbornShutdown } from "../../fixtures/host-agents.ts";
import { spawnHost } from "../../support/host-process.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();


describe("Manager.close() deadline", () => {
  test("an agent that does not stop: close logs what it waits for and ends with WaitTimeoutError", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino(
      { level: "info" },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    );
    const prefix = `close${process.pid}`;
    const factory = new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix });
    const host = await spawnHost({ servers: shared.nats.url, pool: "stubborn", prefix });
    const manager = await Manager.fromExchangeFactory(factory, {
      executors: { pool: new HostPoolExecutor({ pool: "stubborn" }) },
      closeTimeoutMs: 1_000,
      logger,
    });
    const handle = await manager.launch(StubbornShutdown, { executor: "pool" });
    await handle.with({ timeoutMs: 20_000 }).ping();
    const started = Date.now();
    const error = await manager.close().catch((e: unknown) => e);
    const took = Date.now() - started;
    expect(error).toBeInstanceOf(WaitTimeoutError);
    expect((error as Error).message).toContain(handle.agentId.uid);
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(10_000);
    const waiting = lines.find((l) => String(l.msg).startsWith("closing: waiting for agents"));
    expect(waiting).toMatchObject({ agents: [handle.agentId.uid], executors: ["pool"] });
    expect(lines.some((l) => String(l.msg).startsWith("close timed out"))).toBe(true);
    // Everything was closed all the same.
    await expect(manager.launch(StubbornShutdown, { executor: "pool" })).rejects.toThrow(/closed/);
    await expect(factory.createUserClient()).rejects.toThrow(/closed/);
    await host.kill();
  }, 60_000);
});

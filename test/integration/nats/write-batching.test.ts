/** One socket write per event-loop turn: nothing lost or reordered, closing writes what is queued, and reconnects are batched too. */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import net from "node:net";
import { describe, expect, test } from "vitest";
import { batchTransportWrites, batchWrites } from "../../../src/exchange/nats/write-batching.ts";
import { natsForFile, startTestNats } from "../../support/nats.ts";

const shared = natsForFile();

/** The fixture's own connection, which no test batches or re-encodes, watches what the others send. */
const observer = (): NatsConnection => shared.nc;

/** Count socket writes (every socket of this process) while `run` runs. */
async function countWrites(run: () => Promise<void>): Promise<number> {
  let writes = 0;
  const write = net.Socket.prototype.write;
  net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
    writes++;
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as typeof write;
  try {
    await run();
  } finally {
    net.Socket.prototype.write = write;
  }
  return writes;
}

describe("write batching", () => {
  test("publishes made a few microtasks apart leave in one write, all of them, in order", async () => {
    const received: number[] = [];
    const sub = observer().subscribe("batch.order", { callback: (_e, m) => void received.push(m.data[0]! + 256 * m.data[1]!) });
    await observer().flush();
    const nc = await connect(shared.nats.connectionOptions);
    expect(batchWrites(nc)).toBe(true);
    expect(batchTransportWrites(nc)).toBe(true); // idempotent
    const publishSpread = async (): Promise<void> => {
      for (let i = 0; i < 1000; i++) {
        nc.publish("batch.order", new Uint8Array([i % 256, Math.floor(i / 256)]));
        // Each publish a microtask after the last: nats.js alone writes each one separately.
        await Promise.resolve();
      }
    };
    const batched = await countWrites(async () => {
      await publishSpread();
      await new Promise((resolve) => setImmediate(resolve));
    });
    await nc.flush();
    const plain = await connect(shared.nats.connectionOptions);
    const unbatched = await countWrites(async () => {
      for (let i = 0; i < 20; i++) {
        plain.publish("batch.other", new Uint8Array([i]));
        await Promise.resolve();
      }
      await new Promise((resolve) => setImmediate(resolve));
    });
    expect(batched).toBe(1);
    expect(unbatched).toBeGreaterThanOrEqual(20);
    await observer().flush();
    await expect.poll(() => received.length, { timeout: 10_000 }).toBe(1000);
    expect(received).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    sub.unsubscribe();
    await nc.close();
    await plain.close();
  });

  test("closing in the same turn as the publishes still sends them", async () => {
    const received: number[] = [];
    const sub = observer().subscribe("batch.close", { callback: (_e, m) => void received.push(m.data[0]!) });
    await observer().flush();
    const nc = await connect(shared.nats.connectionOptions);
    batchWrites(nc);
    for (let i = 0; i < 10; i++) nc.publish("batch.close", new Uint8Array([i]));
    await nc.close();
    await expect.poll(() => received.length, { timeout: 10_000 }).toBe(10);
    expect(received).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    sub.unsubscribe();
  });

  test("after the server restarts, the new connection's writes are batched and delivered", async () => {
    const local = await startTestNats();
    try {
      const nc = await connect({ ...local.connectionOptions, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
      batchWrites(nc);
      const reconnected = (async () => {
        for await (const s of nc.status()) if (s.type === "reconnect") return;
      })();
      await local.restart();
      await reconnected;
      // The wrap happens when the reconnect is reported: give its listener a turn.
      await new Promise((resolve) => setImmediate(resolve));
      const received: number[] = [];
      const watcher = await connect(local.connectionOptions);
      watcher.subscribe("batch.again", { callback: (_e, m) => void received.push(m.data[0]!) });
      await watcher.flush();
      const writes = await countWrites(async () => {
        for (let i = 0; i < 5; i++) {
          nc.publish("batch.again", new Uint8Array([i]));
          await Promise.resolve();
        }
        await new Promise((resolve) => setImmediate(resolve));
      });
      expect(writes).toBe(1);
      await expect.poll(() => received.length, { timeout: 10_000 }).toBe(5);
      await watcher.close();
      await nc.close();
    } finally {
      await local[Symbol.asyncDispose]();
    }
  });
});

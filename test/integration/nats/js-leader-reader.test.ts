/** The result records' KV reads at the leader through a shared inbox: values, absences, deletions, and failures typed as nats.js types them. */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { ClosedConnectionError } from "@nats-io/nats-core";
import { JetStreamApiError, jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { JetStreamLeaderReader } from "../../../src/exchange/nats/js-leader-reader.ts";
import { JetStreamPublisher } from "../../../src/exchange/nats/js-publisher.ts";
import { isStreamNotFound } from "../../../src/exchange/nats/nats-errors.ts";
import { startTestNats } from "../../support/nats.ts";
import type { TestNats } from "../../support/nats.ts";

let nats: TestNats;
let nc: NatsConnection;
let kv: KV;

beforeAll(async () => {
  nats = await startTestNats();
  nc = await connect(nats.connectionOptions);
  kv = await new Kvm(jetstream(nc)).create("leaderread", { history: 1 });
});
afterAll(async () => {
  await nc?.close();
  await nats?.[Symbol.asyncDispose]();
});

describe("JetStreamLeaderReader", () => {
  test("reads what kv.put and the shared publisher stored, and nothing for an absent, deleted or purged key", async () => {
    const reader = new JetStreamLeaderReader(nc);
    expect(await reader.getKv("leaderread", "absent.key", 5000)).toBeUndefined();
    await kv.put("a.b", new Uint8Array([1, 2, 3]));
    expect(await reader.getKv("leaderread", "a.b", 5000)).toEqual(new Uint8Array([1, 2, 3]));
    // Written the way result records are: a JetStream publish to the key's subject, no headers.
    await new JetStreamPublisher(nc).publish("$KV.leaderread.c.d", new Uint8Array([9]), undefined, 5000);
    expect([...((await kv.get("c.d"))?.value ?? [])]).toEqual([9]);
    expect(await reader.getKv("leaderread", "c.d", 5000)).toEqual(new Uint8Array([9]));
    await kv.put("empty", new Uint8Array(0));
    expect(await reader.getKv("leaderread", "empty", 5000)).toEqual(new Uint8Array(0));
    await kv.delete("a.b");
    expect(await reader.getKv("leaderread", "a.b", 5000)).toBeUndefined();
    await kv.purge("c.d");
    expect(await reader.getKv("leaderread", "c.d", 5000)).toBeUndefined();
    // Many at once, each answered with its own value.
    await Promise.all(Array.from({ length: 50 }, (_, i) => kv.put(`many.${i}`, new Uint8Array([i]))));
    const values = await Promise.all(Array.from({ length: 50 }, (_, i) => reader.getKv("leaderread", `many.${i}`, 5000)));
    expect(values).toEqual(Array.from({ length: 50 }, (_, i) => new Uint8Array([i])));
  });

  test("a bucket that does not exist fails with nats.js's JetStreamApiError, and a closed connection with ClosedConnectionError", async () => {
    const reader = new JetStreamLeaderReader(nc);
    const error = await reader.getKv("no_such_bucket", "k", 5000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JetStreamApiError);
    expect(isStreamNotFound(error)).toBe(true);
    const other = await connect(nats.connectionOptions);
    const closing = new JetStreamLeaderReader(other);
    await other.close();
    await expect(closing.getKv("leaderread", "k", 5000)).rejects.toBeInstanceOf(ClosedConnectionError);
  });
});

/** The mailbox path's JetStream publisher: acks, duplicates, and every failure typed as nats.js types it. */
import { connect } from "@nats-io/transport-node";
import { NoRespondersError, headers } from "@nats-io/nats-core";
import { JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { beforeAll, describe, expect, test } from "vitest";
import { JetStreamPublisher } from "../../../src/exchange/nats/js-publisher.ts";
import { isTransientNatsError } from "../../../src/exchange/nats/nats-errors.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();


beforeAll(async () => {
  const jsm = await jetstreamManager(shared.nc);
  await jsm.streams.add({ name: "pubtest", subjects: ["pubtest.>"], duplicate_window: 60_000_000_000 });
});

function withId(id: string) {
  const h = headers();
  h.set("Nats-Msg-Id", id);
  return h;
}

describe("JetStreamPublisher", () => {
  test("stores a message and reports a re-sent id as a duplicate", async () => {
    const publisher = new JetStreamPublisher(shared.nc);
    const first = await publisher.publish("pubtest.a", new Uint8Array([1]), withId("m1"), 5000);
    const again = await publisher.publish("pubtest.a", new Uint8Array([1]), withId("m1"), 5000);
    expect(first).toMatchObject({ stream: "pubtest", duplicate: false });
    expect(again).toMatchObject({ stream: "pubtest", seq: first.seq, duplicate: true });
  });

  test("a subject no stream captures fails with NoRespondersError, which is retried", async () => {
    const publisher = new JetStreamPublisher(shared.nc);
    const error = await publisher.publish("nostream.a", new Uint8Array([1]), headers(), 5000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NoRespondersError);
    expect(isTransientNatsError(error)).toBe(true);
  });

  test("a failed expectation fails with the server's JetStreamApiError code", async () => {
    const publisher = new JetStreamPublisher(shared.nc);
    const h = headers();
    h.set("Nats-Expected-Stream", "other");
    const error = await publisher.publish("pubtest.b", new Uint8Array([1]), h, 5000).catch((e: unknown) => e);
    expect((error as Error).name).toBe("JetStreamApiError");
    expect(error).toBeInstanceOf(JetStreamApiError);
    expect((error as JetStreamApiError).code).toBe(10060);
  });

  test("an unanswered publish times out with TimeoutError; a closed connection fails what waits", async () => {
    const other = await connect(shared.nats.connectionOptions);
    other.subscribe("silent.>", { callback: () => {} });
    await other.flush();
    const publisher = new JetStreamPublisher(other);
    const started = Date.now();
    const error = await publisher.publish("silent.a", new Uint8Array([1]), headers(), 300).catch((e: unknown) => e);
    expect((error as Error).name).toBe("TimeoutError");
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    const waiting = publisher.publish("silent.b", new Uint8Array([1]), headers(), 60_000).catch((e: unknown) => e);
    await other.close();
    expect(((await waiting) as Error).name).toBe("ClosedConnectionError");
  });

  test("store() resolves with nothing once stored; a failure goes to the recovery, whose outcome the publish takes", async () => {
    const publisher = new JetStreamPublisher(shared.nc);
    await expect(publisher.store("pubtest.c", new Uint8Array([1]), withId("s1"), 5000)).resolves.toBeUndefined();
    const failures: Error[] = [];
    const recovered = await publisher.publish("nostream.c", new Uint8Array([1]), headers(), 5000, (error) => {
      failures.push(error);
      return publisher.publish("pubtest.c", new Uint8Array([2]), withId("s2"), 5000);
    });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(NoRespondersError);
    expect(recovered).toMatchObject({ stream: "pubtest", duplicate: false });
    const refused = new Error("refused by the recovery");
    const error = await publisher
      .store("nostream.d", new Uint8Array([1]), headers(), 5000, () => {
        throw refused;
      })
      .catch((e: unknown) => e);
    expect(error).toBe(refused);
  });

  test("a late acknowledgement of an expired publish does not settle the next publish in its slot", async () => {
    const other = await connect(shared.nats.connectionOptions);
    let seq = 0;
    // A stand-in stream that acknowledges each publish 400 ms late, numbering them.
    other.subscribe("late.>", {
      callback: (_error, msg) => {
        const ack = JSON.stringify({ stream: "late", seq: ++seq });
        setTimeout(() => msg.respond(new TextEncoder().encode(ack)), 400);
      },
    });
    await other.flush();
    const publisher = new JetStreamPublisher(other);
    const first = await publisher.publish("late.a", new Uint8Array([1]), headers(), 150).catch((e: unknown) => e);
    expect((first as Error).name).toBe("TimeoutError");
    // The first publish's slot is free again: the second takes it, and the first's
    // acknowledgement arrives while the second waits.
    const second = await publisher.publish("late.b", new Uint8Array([1]), headers(), 5000);
    expect(second.seq).toBe(2);
    await other.close();
  });
});

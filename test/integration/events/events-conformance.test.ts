import { afterAll, beforeAll } from "vitest";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { NatsExchangeFactory } from "../../../src/index.ts";
import { startTestNats } from "../../support/nats.ts";
import type { TestNats } from "../../support/nats.ts";
import { describeEventsConformance } from "../../conformance/events-conformance.ts";

let nats: TestNats;
let nc: NatsConnection;
let counter = 0;

beforeAll(async () => {
  nats = await startTestNats();
  nc = await connect(nats.connectionOptions);
});
afterAll(async () => {
  await nc?.close();
  await nats?.[Symbol.asyncDispose]();
});

describeEventsConformance("NATS JetStream exchange", () => ({
  newFactory: () => new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix: `ev${process.pid}_${++counter}` }),
  streams: true,
  createStream: async (name, subjects) => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name, subjects });
  },
  // A foreign publisher: plain nats.js, no library code.
  publish: async (_factory, subject, data, options) => {
    const headers = options?.headers === undefined ? undefined : natsHeaders();
    for (const [k, v] of Object.entries(options?.headers ?? {})) headers!.set(k, v);
    if (options?.durable === true) await jetstream(nc).publish(subject, data, headers === undefined ? undefined : { headers });
    else nc.publish(subject, data, headers === undefined ? undefined : { headers });
  },
}));

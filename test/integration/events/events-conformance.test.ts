import { headers as natsHeaders } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { NatsExchangeFactory } from "../../../src/index.ts";
import { natsForFile } from "../../support/nats.ts";
import { describeEventsConformance } from "../../conformance/events-conformance.ts";

const shared = natsForFile();

let counter = 0;


describeEventsConformance("NATS JetStream exchange", () => ({
  newFactory: () => new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `ev${process.pid}_${++counter}` }),
  streams: true,
  createStream: async (name, subjects) => {
    const jsm = await jetstreamManager(shared.nc);
    await jsm.streams.add({ name, subjects });
  },
  // A foreign publisher: plain nats.js, no library code.
  publish: async (_factory, subject, data, options) => {
    const headers = options?.headers === undefined ? undefined : natsHeaders();
    for (const [k, v] of Object.entries(options?.headers ?? {})) headers!.set(k, v);
    if (options?.durable === true) await jetstream(shared.nc).publish(subject, data, headers === undefined ? undefined : { headers });
    else shared.nc.publish(subject, data, headers === undefined ? undefined : { headers });
  },
}));

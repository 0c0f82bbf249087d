/**
 * The durable-state suite (test/conformance/state-conformance.ts) against NATS: the state bucket,
 * compare-and-set writes, the ownership mark at load. Each test has its own prefix.
 */
import { NatsExchangeFactory } from "../../../src/index.ts";
import type { NatsExchangeOptions } from "../../../src/index.ts";
import { describeStateConformance } from "../../conformance/state-conformance.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

let counter = 0;


describeStateConformance("NATS JetStream exchange", () => ({
  newFactory: (options?: NatsExchangeOptions) =>
    new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `st${process.pid}_${++counter}`, ...options }),
}));

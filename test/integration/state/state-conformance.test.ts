/**
 * The durable-state suite (test/conformance/state-conformance.ts) against NATS: the state bucket,
 * compare-and-set writes, the ownership mark at load. Each test has its own prefix.
 */
import { afterAll, beforeAll } from "vitest";
import { NatsExchangeFactory } from "../../../src/index.ts";
import type { NatsExchangeOptions } from "../../../src/index.ts";
import { describeStateConformance } from "../../conformance/state-conformance.ts";
import { startTestNats } from "../../support/nats.ts";
import type { TestNats } from "../../support/nats.ts";

let nats: TestNats;
let counter = 0;

beforeAll(async () => {
  nats = await startTestNats();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

describeStateConformance("NATS JetStream exchange", () => ({
  newFactory: (options?: NatsExchangeOptions) =>
    new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix: `st${process.pid}_${++counter}`, ...options }),
}));

import { afterAll, beforeAll } from "vitest";
import { NatsExchangeFactory } from "../../src/index.ts";
import { startTestNats } from "../support/nats.ts";
import type { TestNats } from "../support/nats.ts";
import { describeTransportContract } from "../conformance/transport-contract.ts";

let nats: TestNats;
let counter = 0;

beforeAll(async () => {
  nats = await startTestNats();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

describeTransportContract("NATS JetStream exchange", () => ({
  newFactory: () =>
    new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix: `c${process.pid}_${++counter}` }),
}));

/** The reminder suite (test/conformance/reminder-conformance.ts) against NATS; each test has its own prefix. */
import { afterAll, beforeAll } from "vitest";
import { NatsExchangeFactory } from "../../../src/index.ts";
import type { NatsExchangeOptions } from "../../../src/index.ts";
import { describeReminderConformance } from "../../conformance/reminder-conformance.ts";
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

describeReminderConformance("NATS JetStream exchange", () => ({
  newFactory: (options?: NatsExchangeOptions) =>
    new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix: `rm${process.pid}_${++counter}`, ...options }),
}));

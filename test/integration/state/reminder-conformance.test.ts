/** The reminder suite (test/conformance/reminder-conformance.ts) against NATS; each test has its own prefix. */
import { NatsExchangeFactory } from "../../../src/index.ts";
import type { NatsExchangeOptions } from "../../../src/index.ts";
import { describeReminderConformance } from "../../conformance/reminder-conformance.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

let counter = 0;


describeReminderConformance("NATS JetStream exchange", () => ({
  newFactory: (options?: NatsExchangeOptions) =>
    new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `rm${process.pid}_${++counter}`, ...options }),
}));

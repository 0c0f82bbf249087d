import { afterAll, beforeAll } from "vitest";
import { NatsExchangeFactory } from "../../src/index.ts";
import type { NatsExchangeOptions } from "../../src/index.ts";
import { startTestNats } from "../support/nats.ts";
import type { TestNats } from "../support/nats.ts";
import { describeParityConformance } from "../conformance/academy-parity.ts";
import { describeConformance } from "../conformance/exchange-conformance.ts";

let nats: TestNats;
let counter = 0;

beforeAll(async () => {
  nats = await startTestNats();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

/** Each test gets its own prefix: its own streams, buckets and subjects on the shared server. */
function factory(options: NatsExchangeOptions = {}): NatsExchangeFactory {
  return new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix: `t${process.pid}_${++counter}`, ...options });
}

const jetStream = () => ({ newFactory: (options?: NatsExchangeOptions) => factory(options) });
const coreReplies = () => ({ newFactory: (options?: NatsExchangeOptions) => factory({ ...options, replies: "core" }) });
describeConformance("NATS JetStream exchange", jetStream);
describeConformance("NATS JetStream exchange, replies over core NATS", coreReplies);
describeParityConformance("NATS JetStream exchange", jetStream);
describeParityConformance("NATS JetStream exchange, replies over core NATS", coreReplies);

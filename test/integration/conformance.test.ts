import { NatsExchangeFactory } from "../../src/index.ts";
import type { NatsExchangeOptions } from "../../src/index.ts";
import { natsForFile } from "../support/nats.ts";
import { describeParityConformance } from "../conformance/academy-parity.ts";
import { describeConformance } from "../conformance/exchange-conformance.ts";

const shared = natsForFile();

let counter = 0;


/** Each test gets its own prefix: its own streams, buckets and subjects on the shared server. */
function factory(options: NatsExchangeOptions = {}): NatsExchangeFactory {
  return new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `t${process.pid}_${++counter}`, ...options });
}

const jetStream = () => ({ newFactory: (options?: NatsExchangeOptions) => factory(options) });
const coreReplies = () => ({ newFactory: (options?: NatsExchangeOptions) => factory({ ...options, replies: "core" }) });
describeConformance("NATS JetStream exchange", jetStream);
describeConformance("NATS JetStream exchange, replies over core NATS", coreReplies);
describeParityConformance("NATS JetStream exchange", jetStream);
describeParityConformance("NATS JetStream exchange, replies over core NATS", coreReplies);

import { NatsExchangeFactory } from "../../src/index.ts";
import { natsForFile } from "../support/nats.ts";
import { describeTransportContract } from "../conformance/transport-contract.ts";

const shared = natsForFile();

let counter = 0;


describeTransportContract("NATS JetStream exchange", () => ({
  newFactory: () =>
    new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `c${process.pid}_${++counter}` }),
}));

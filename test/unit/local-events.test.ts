import { LocalExchangeFactory } from "../../src/index.ts";
import type { ExchangeFactory } from "../../src/index.ts";
import { describeEventsConformance } from "../conformance/events-conformance.ts";

describeEventsConformance("in-process exchange", () => ({
  newFactory: () => new LocalExchangeFactory(),
  streams: false,
  createStream: async () => undefined,
  publish: async (factory: ExchangeFactory, subject, data, options) => {
    await (await factory.events!()).publish(subject, data, { durable: options?.durable, headers: options?.headers });
  },
}));

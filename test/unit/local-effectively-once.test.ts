import { LocalExchangeFactory } from "../../src/index.ts";
import { encodeMessage } from "../../src/protocol/codec.ts";
import { describeEffectivelyOnce } from "../conformance/effectively-once.ts";

describeEffectivelyOnce("in-process exchange", () => ({
  newFactory: (options) => new LocalExchangeFactory(options),
  redeliver: async (factory, request) => (factory as LocalExchangeFactory).exchange.send(request.dest, encodeMessage(request), true),
}));

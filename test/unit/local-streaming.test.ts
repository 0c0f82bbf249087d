import { LocalExchangeFactory } from "../../src/index.ts";
import { describeStreamingConformance } from "../conformance/streaming-conformance.ts";

describeStreamingConformance("in-process exchange", () => ({ newFactory: (options) => new LocalExchangeFactory(options) }));

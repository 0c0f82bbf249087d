import { LocalExchangeFactory } from "../../src/index.ts";
import { describeConformance } from "../conformance/exchange-conformance.ts";

describeConformance("in-process exchange", () => ({ newFactory: (options) => new LocalExchangeFactory(options) }));

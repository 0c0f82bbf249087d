import { LocalExchangeFactory } from "../../src/index.ts";
import { describeStateConformance } from "../conformance/state-conformance.ts";

describeStateConformance("in-process exchange", () => ({ newFactory: (options?: ConstructorParameters<typeof LocalExchangeFactory>[0]) => new LocalExchangeFactory(options) }));

import { LocalExchangeFactory } from "../../src/index.ts";
import { describeParityConformance } from "../conformance/academy-parity.ts";
import { describeConformance } from "../conformance/exchange-conformance.ts";

const target = () => ({ newFactory: (options?: ConstructorParameters<typeof LocalExchangeFactory>[0]) => new LocalExchangeFactory(options) });
describeConformance("in-process exchange", target);
describeParityConformance("in-process exchange", target);

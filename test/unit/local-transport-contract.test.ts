import { LocalExchangeFactory } from "../../src/index.ts";
import { describeTransportContract } from "../conformance/transport-contract.ts";

describeTransportContract("in-process exchange", () => ({ newFactory: () => new LocalExchangeFactory() }));

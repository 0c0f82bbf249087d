import { LocalExchangeFactory } from "../../src/index.ts";
import { describeReminderConformance } from "../conformance/reminder-conformance.ts";

describeReminderConformance("in-process exchange", () => ({ newFactory: (options?: ConstructorParameters<typeof LocalExchangeFactory>[0]) => new LocalExchangeFactory(options) }));

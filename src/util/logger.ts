import { pino } from "pino";
import type { Logger } from "pino";

export type { Logger };

/** A logger that writes nothing: the default for every component. */
export const silentLogger: Logger = pino({ level: "silent" });

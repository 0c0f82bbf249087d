/**
 * Progress reports of one ordinary action to a caller that asked for them (`progress: true` in its
 * request): sent one at a time in order; while one is on its way only the latest report made
 * meanwhile is kept, so an action that reports in a tight loop costs one message per round trip.
 */
import { MessageType } from "../protocol/messages.ts";
import type { ResponseBody } from "../protocol/messages.ts";
import type { Logger } from "../util/logger.ts";

/** No report is waiting. */
const NONE: unique symbol = Symbol("none");

/** Sends one action's progress reports. */
export class ProgressReporter {
  readonly #send: (body: ResponseBody) => Promise<void>;
  readonly #logger: Logger;
  #seq = 0;
  #pending: unknown = NONE;
  #sending: Promise<void> | undefined;
  #closed = false;

  /** @param send - sends a progress frame to the caller (through the `outboundResponse` interceptors). */
  constructor(send: (body: ResponseBody) => Promise<void>, logger: Logger) {
    this.#send = send;
    this.#logger = logger;
  }

  /** Report `progress`; ignored once the action has ended. */
  report(progress: unknown): void {
    if (this.#closed) return;
    this.#pending = progress;
    this.#sending ??= this.#drain();
  }

  /** The action ended: wait for the report on its way and the last one kept (they precede the result). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#sending;
  }

  async #drain(): Promise<void> {
    while (this.#pending !== NONE) {
      const progress = this.#pending;
      this.#pending = NONE;
      try {
        await this.#send({ type: MessageType.ActionProgress, seq: this.#seq++, progress });
      } catch (error) {
        // Progress is advisory: a report that cannot go out (too large, exchange down) is dropped.
        this.#logger.debug({ err: error }, "progress report not sent");
      }
    }
    this.#sending = undefined;
  }
}

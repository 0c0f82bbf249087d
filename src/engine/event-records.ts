/**
 * Records of effectively-once event handling (docs/EVENTS.md section 3), kept in the exchange's
 * result store: for an agent's own subscription one record of how far its in-order events were
 * handled ({@link Watermark}), for a shared group one record per event ({@link eventRecord}).
 */
import type { InboundEvent } from "../exchange/events.ts";
import type { ResultStore } from "../exchange/result-store.ts";
import { MessageType } from "../protocol/messages.ts";
import type { ActionRequest } from "../protocol/messages.ts";
import type { Logger } from "../util/logger.ts";

/**
 * How far an agent's own durable subscription has handled its stream: one record per
 * subscription, whose result is the sequence of the last event handled, rewritten as events
 * complete (one write in flight; the events completed meanwhile are covered by the next). An event
 * is acknowledged once a record covering it is written, so that an event redelivered at or below
 * the recorded sequence is known to be handled: events of the subscription are handled in stream
 * order, one at a time.
 */
export class Watermark {
  readonly #store: ResultStore;
  readonly #scope: string;
  readonly #request: ActionRequest;
  readonly #logger: Logger;
  #pending: InboundEvent[] = [];
  #writing: Promise<void> | undefined;

  constructor(store: ResultStore, scope: string, handler: string, stream: string, logger: Logger) {
    this.#store = store;
    this.#scope = scope;
    this.#logger = logger;
    this.#request = selfRequest(scope, handler, `evw-${safeToken(handler)}-${safeToken(stream)}`);
  }

  /** Whether an event with this sequence was handled (the record covers it). */
  async covers(sequence: number): Promise<boolean> {
    const body = await this.#store.lookup(this.#scope, this.#request, NO_HANDLES);
    return body?.type === MessageType.ActionResponse && typeof body.result === "number" && sequence <= body.result;
  }

  /** The handler completed `event`: acknowledge it once a record covers it. */
  complete(event: InboundEvent): void {
    this.#pending.push(event);
    this.#writing ??= this.#write().finally(() => (this.#writing = undefined));
  }

  /** Settles when every completed event is recorded (or handed back). */
  async idle(): Promise<void> {
    while (this.#writing !== undefined) await this.#writing;
  }

  async #write(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending;
      this.#pending = [];
      const top = batch.reduce((max, e) => Math.max(max, e.sequence!), 0);
      try {
        await this.#store.record(this.#scope, this.#request, { type: MessageType.ActionResponse, result: top });
        for (const event of batch) event.ack();
      } catch (error) {
        // Handled but not recorded: they may run again (at-least-once).
        this.#logger.warn({ err: error, upTo: top }, "could not record completed events; they may run again");
        for (const event of batch) event.nak(1_000);
      }
    }
  }
}

/** Handles in recorded results are not used (an event's record holds none). */
export const NO_HANDLES = { getHandle: () => { throw new Error("no handles in event records"); } } as never;

/** A type or handler name as a key token. */
export function safeToken(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, "_");
}

/**
 * The record of a completed event, written through the result store as the record of a request
 * from `scope` to itself whose tag names the handler, stream and sequence (docs/EVENTS.md).
 */
export function eventRecord(scope: string, handler: string, event: InboundEvent): ActionRequest {
  return selfRequest(scope, handler, `ev-${safeToken(handler)}-${event.stream}-${event.sequence}`);
}

/** The request from `scope` to itself, naming `handler`, whose result record an event record is. */
function selfRequest(scope: string, handler: string, tag: string): ActionRequest {
  return { type: MessageType.ActionRequest, tag, dest: scope, src: scope, replyTo: undefined, action: handler, args: [] } as ActionRequest;
}

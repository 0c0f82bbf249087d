/**
 * The requests a client is waiting on, by tag. Each has a sink that receives every response to it
 * as it arrives and says which one is final; the request leaves the table with its final
 * response: a call's first response (after any progress reports), a stream's end after its items
 * (`PendingCall`, `PendingStream`).
 */
import type { AgentId } from "../identifiers.ts";
import type { RequestMessage, ResponseMessage } from "../protocol/messages.ts";
import { SlotMap } from "../util/slot-table.ts";

/** Receives the responses to one request. */
export interface ResponseSink {
  /** The request whose responses this sink receives. */
  readonly request: RequestMessage;
  /** The agent the request was sent to. */
  readonly agentId: AgentId;
  /**
   * A response to the request arrived. Must not throw.
   * @returns true when it is the final one: the request then leaves the table.
   */
  receive(response: ResponseMessage): boolean;
  /** The request ends without its final response (send failure, client closed, mailbox terminated). Must not throw. */
  fail(error: unknown): void;
}

/** Pending requests of one client, by tag. */
export class PendingRequests {
  /** By request tag (a {@link SlotMap}: no `Map` holding the calls themselves). */
  readonly #sinks = new SlotMap<ResponseSink>();

  /** Wait for responses to `sink.request`. */
  add(sink: ResponseSink): void {
    this.#sinks.set(sink.request.tag, sink);
  }

  /** The sink waiting for responses tagged `tag`, if any. */
  get(tag: string): ResponseSink | undefined {
    return this.#sinks.get(tag);
  }

  /** Stop waiting for `sink`'s responses (no-op if it is no longer in the table). */
  remove(sink: ResponseSink): void {
    if (this.#sinks.get(sink.request.tag) === sink) this.#sinks.delete(sink.request.tag);
  }

  /** Hand `response` to `sink`; the request leaves the table if it was the final one. */
  receive(sink: ResponseSink, response: ResponseMessage): void {
    if (sink.receive(response)) this.remove(sink);
  }

  /** End `sink`'s request with `error`. */
  fail(sink: ResponseSink, error: unknown): void {
    this.remove(sink);
    sink.fail(error);
  }

  /** Every pending request's sink. */
  all(): ResponseSink[] {
    return this.#sinks.values();
  }

  /** End every pending request with `error`. */
  failAll(error: unknown): void {
    for (const sink of this.#sinks.values()) this.fail(sink, error);
  }

  /** Whether a request to the mailbox `uid` is pending. */
  waitsOn(uid: string): boolean {
    for (const sink of this.#sinks.values()) if (sink.agentId.uid === uid) return true;
    return false;
  }

  /** End every request pending on the mailbox `uid` with the error `errorFor` makes for it. */
  failWaitingOn(uid: string, errorFor: (sink: ResponseSink) => unknown): void {
    for (const sink of this.#sinks.values()) if (sink.agentId.uid === uid) this.fail(sink, errorFor(sink));
  }
}

/**
 * The caller side of one stream (docs/PROTOCOL.md section 15): a pending request whose sink takes
 * many frames. Items are put in order by their sequence numbers (a duplicate is dropped, an early
 * frame waits for the ones before it), handed to the consumer as an async iterator, and the
 * consumer's progress is granted back to the agent as credit, half a window at a time. At most a
 * window of items is ever buffered here: the agent sends no item the credit does not allow.
 */
import { ActionCancelledError, ActionKindError, MalformedMessageError, RequestTimeoutError, StreamInterruptedError } from "../errors.ts";
import type { AgentId } from "../identifiers.ts";
import { fromFailure } from "../protocol/failure.ts";
import { MessageType } from "../protocol/messages.ts";
import type { ActionRequest, ResponseMessage } from "../protocol/messages.ts";
import type { ResponseSink } from "./pending-requests.ts";
import type { StreamOptions } from "./handle.ts";

/** What a stream needs from the client that opened it. */
export interface StreamOwner {
  /** The consumer asked for the first item: send the request. A failure to send fails the stream. */
  open(stream: PendingStream): void;
  /** The stream is over on this side: take it out of the pending table. */
  release(stream: PendingStream): void;
  /** The consumer gave up before the end: ask the agent to cancel the stream. */
  cancel(stream: PendingStream): void;
  /** The consumer has taken items: allow the agent to send items numbered below `credit`. */
  credit(stream: PendingStream, credit: number): void;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/** One stream in a client's pending table, and the iterator its consumer reads. */
export class PendingStream implements ResponseSink, AsyncIterator<unknown, unknown, undefined> {
  /** The request (replaced, with its headers, once the interceptors have run). */
  request: ActionRequest;
  readonly agentId: AgentId;
  /** The options the stream was opened with (timeout, signal: applied when its request goes out). */
  readonly options: StreamOptions;
  /** Settles with the stream's end (what `outboundRequest` hooks see as the call's result), or rejects with its error. */
  readonly finished: Promise<ResponseMessage>;
  readonly #owner: StreamOwner;
  readonly #window: number;
  readonly #itemTimeoutMs: number | undefined;
  #resolveFinished!: (response: ResponseMessage) => void;
  #rejectFinished!: (error: unknown) => void;
  /** Items in order, not yet taken; `#head` is the next one. */
  #queue: unknown[] = [];
  #head = 0;
  /** Items received in order so far (the seq of the next one expected). */
  #received = 0;
  /** Items the consumer has taken. */
  #taken = 0;
  /** The credit last granted: the agent may send items numbered below it. */
  #granted: number;
  /** The run of the generator whose frames this stream takes (set by the first frame). */
  #run: string | undefined;
  /** Frames that arrived before the ones they follow, by seq. */
  #early: Map<number, readonly unknown[]> | undefined;
  /** The end frame, when it came before some of the items it counts. */
  #pendingEnd: Extract<ResponseMessage, { type: "stream-end" }> | undefined;
  /** Set once the stream ended: after the queued items, the consumer gets this. */
  #outcome: { readonly error: unknown } | { readonly result: unknown } | undefined;
  /** Ended on this side (given up, closed): the pending table no longer routes to it. */
  #over = false;
  /** Calls of `next` waiting for an item, in call order (a generator's `next` queues the same way). */
  #waiters: Array<{ resolve: (step: IteratorResult<unknown, unknown>) => void; reject: (error: unknown) => void }> = [];
  #timer: NodeJS.Timeout | undefined;
  #itemTimer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #opened = false;
  /** The consumer has been given the outcome: later calls of `next` get the plain end. */
  #outcomeTaken = false;
  /** In the pending table, its request on its way. */
  #started = false;

  /**
   * @param window - the request's `stream` value: items allowed before the first credit.
   * @param itemTimeoutMs - give up when the consumer waits this long for the next item.
   */
  constructor(owner: StreamOwner, request: ActionRequest, agentId: AgentId, window: number, itemTimeoutMs: number | undefined, options: StreamOptions) {
    this.#owner = owner;
    this.options = options;
    this.request = request;
    this.agentId = agentId;
    this.#window = window;
    this.#granted = window;
    this.#itemTimeoutMs = itemTimeoutMs;
    this.finished = new Promise<ResponseMessage>((resolve, reject) => {
      this.#resolveFinished = resolve;
      this.#rejectFinished = reject;
    });
    // Seen by the consumer through the iterator; the promise only informs interceptors.
    this.finished.catch(() => undefined);
  }

  /** Over before it started (the consumer closed it, or it failed): its request must not be sent. */
  get closed(): boolean {
    return this.#over || this.#outcome !== undefined;
  }

  /** Items received and not yet taken (at most a window). */
  get buffered(): number {
    return this.#queue.length - this.#head;
  }

  /** Start the overall timeout and listen to the signal (once the stream is in the pending table). */
  start(timeoutMs: number | undefined, signal: AbortSignal | undefined): void {
    this.#started = true;
    this.#signal = signal;
    signal?.addEventListener("abort", this, { once: true });
    if (timeoutMs !== undefined) this.#timer = setTimeout(() => this.#giveUp(this.#timeoutError(timeoutMs, "overall")), timeoutMs);
    if (this.#waiters.length > 0) this.#armItemTimer();
  }

  /** A frame of this stream arrived. @returns true when the stream is over (it leaves the table). */
  receive(response: ResponseMessage): boolean {
    if (this.#over) return true;
    switch (response.type) {
      case MessageType.StreamItems:
        if (!this.#sameRun(response.run)) return true;
        this.#items(response.seq, response.items);
        break;
      case MessageType.StreamEnd:
        if (!this.#sameRun(response.run)) return true;
        this.#pendingEnd = response;
        break;
      case MessageType.ErrorResponse:
        // Refused before any item (unknown action, not a streaming one, interrupted, ...).
        this.#end({ error: fromFailure(response.error) }, response);
        return true;
      case MessageType.ActionProgress:
        return false;
      case MessageType.ActionResponse:
      case MessageType.SuccessResponse:
        this.#end(
          {
            error: new ActionKindError(`Action '${this.request.action}' of ${this.agentId} answered with one result: it is not a streaming action`, {
              action: this.request.action,
              agentId: this.agentId.uid,
              streaming: false,
            }),
          },
          response,
        );
        return true;
    }
    const end = this.#pendingEnd;
    if (end !== undefined && this.#received >= end.count && !this.#over) {
      this.#end(end.error === undefined ? { result: end.result } : { error: fromFailure(end.error) }, end);
    }
    return this.#over || this.#outcome !== undefined;
  }

  /**
   * Whether a frame of `run` belongs to the run this stream follows. The first frame sets it. A
   * frame of another run means the agent ran the request again (it was delivered again after a
   * crash): taken up when nothing was received yet, else the stream is interrupted (and the new
   * run cancelled), since its items cannot be spliced onto the earlier run's.
   */
  #sameRun(run: string): boolean {
    if (this.#run === run) return true;
    if (this.#run === undefined || (this.#received === 0 && this.#early === undefined && this.#pendingEnd === undefined)) {
      this.#run = run;
      return true;
    }
    this.#giveUp(
      new StreamInterruptedError(
        `Stream '${this.request.action}' on ${this.agentId} was interrupted after ${this.#received} items: the agent ran its request again (it was delivered again after a crash)`,
        { agentId: this.agentId.uid, tag: this.request.tag, received: this.#received },
      ),
    );
    return false;
  }

  /** The stream ends without its end frame (send failure, client closed, mailbox terminated). */
  fail(error: unknown): void {
    this.#finish(error);
  }

  /** The signal aborted (the stream is its own listener). */
  handleEvent(): void {
    this.#giveUp(
      new ActionCancelledError(`Stream '${this.request.action}' on ${this.agentId} was aborted by the caller`, {
        agentId: this.agentId.uid,
        tag: this.request.tag,
        cause: this.#signal?.reason,
      }),
    );
  }

  next(): Promise<IteratorResult<unknown, unknown>> {
    // Ended for the consumer already (its outcome taken, or closed with `return`).
    if (this.#outcomeTaken) return Promise.resolve(DONE);
    if (!this.#opened) {
      this.#opened = true;
      this.#owner.open(this);
    }
    if (this.#waiters.length === 0 && this.#head < this.#queue.length) return Promise.resolve({ done: false, value: this.#take() });
    const outcome = this.#outcome;
    if (outcome !== undefined && this.#waiters.length === 0) {
      this.#outcomeTaken = true;
      this.#over = true;
      return "error" in outcome ? Promise.reject(outcome.error) : Promise.resolve({ done: true, value: outcome.result });
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#armItemTimer();
    });
  }

  /** The consumer stopped early (`break`, `return`): the agent is asked to cancel the stream. */
  return(): Promise<IteratorResult<unknown, unknown>> {
    this.#opened = true;
    if (this.#outcome === undefined && !this.#over) {
      if (this.#started) this.#giveUp(undefined);
      else {
        // Its request not sent yet (or never asked for): it will not be; the call is over.
        this.#outcome = { result: undefined };
        this.#stopTimers();
        this.#resolveFinished({ type: MessageType.StreamEnd, tag: this.request.tag, dest: "", src: this.agentId.uid, run: "", count: 0 });
      }
    }
    this.#outcomeTaken = true;
    this.#over = true;
    this.#queue = [];
    this.#head = 0;
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #take(): unknown {
    const item = this.#queue[this.#head];
    this.#queue[this.#head++] = undefined;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    this.#taken++;
    // Half a window taken since the last grant: grant again (one credit per half window).
    const credit = this.#taken + this.#window;
    if (this.#outcome === undefined && credit - this.#granted >= Math.max(1, this.#window >> 1)) {
      this.#granted = credit;
      this.#owner.credit(this, credit);
    }
    return item;
  }

  #items(seq: number, items: readonly unknown[]): void {
    const end = seq + items.length;
    if (end <= this.#received) return; // a duplicate
    if (end > this.#granted) {
      this.#finish(
        new MalformedMessageError(`Stream '${this.request.action}' from ${this.agentId} sent item ${end - 1} beyond its credit (${this.#granted})`),
      );
      return;
    }
    if (seq > this.#received) {
      (this.#early ??= new Map()).set(seq, items);
      return;
    }
    this.#append(items, this.#received - seq);
    const early = this.#early;
    if (early === undefined) return;
    for (let next = early.get(this.#received); ; next = early.get(this.#received)) {
      if (next !== undefined) {
        early.delete(this.#received);
        this.#append(next, 0);
        continue;
      }
      // A frame may also overlap what arrived (frames split differently after a retry).
      let found = false;
      for (const [at, frame] of early) {
        if (at + frame.length <= this.#received) early.delete(at);
        else if (at <= this.#received) {
          early.delete(at);
          this.#append(frame, this.#received - at);
          found = true;
          break;
        }
      }
      if (!found) break;
    }
  }

  #append(items: readonly unknown[], from: number): void {
    for (let i = from; i < items.length; i++) this.#queue.push(items[i]);
    this.#received += items.length - from;
    if (this.#waiters.length === 0 || this.#head === this.#queue.length) return;
    this.#disarmItemTimer();
    while (this.#waiters.length > 0 && this.#head < this.#queue.length) this.#waiters.shift()!.resolve({ done: false, value: this.#take() });
    if (this.#waiters.length > 0) this.#armItemTimer();
  }

  /** The agent ended the stream: the consumer gets the queued items, then this. */
  #end(outcome: { readonly error: unknown } | { readonly result: unknown }, response?: ResponseMessage): void {
    this.#outcome = outcome;
    this.#stopTimers();
    if ("error" in outcome) this.#rejectFinished(outcome.error);
    else this.#resolveFinished(response!);
    // Waiters exist only while the queue is empty: the first gets the outcome, later ones the end.
    const waiters = this.#waiters.splice(0);
    const first = waiters.shift();
    if (first !== undefined) {
      this.#outcomeTaken = true;
      this.#over = true;
      if ("error" in outcome) first.reject(outcome.error);
      else first.resolve({ done: true, value: outcome.result });
    }
    for (const waiter of waiters) waiter.resolve(DONE);
  }

  /** The stream is over on this side, with `error` for the consumer (now, not after the queue). */
  #finish(error: unknown): void {
    if (this.#over || this.#outcome !== undefined) return;
    this.#queue = [];
    this.#head = 0;
    this.#end({ error });
    this.#over = true;
  }

  /** Give up: out of the table, a cancel to the agent, and `error` (if any) to the consumer. */
  #giveUp(error: unknown): void {
    if (this.#over || this.#outcome !== undefined) return;
    this.#owner.release(this);
    this.#owner.cancel(this);
    if (error === undefined) {
      // Closed by its consumer: for interceptors, a call that ended after the items taken.
      this.#outcome = { result: undefined };
      this.#stopTimers();
      this.#resolveFinished({ type: MessageType.StreamEnd, tag: this.request.tag, dest: "", src: this.agentId.uid, run: this.#run ?? "", count: this.#taken });
      this.#over = true;
      return;
    }
    this.#finish(error);
  }

  #armItemTimer(): void {
    const ms = this.#itemTimeoutMs;
    if (ms === undefined || this.#itemTimer !== undefined) return;
    this.#itemTimer = setTimeout(() => {
      this.#itemTimer = undefined;
      this.#giveUp(this.#timeoutError(ms, "item"));
    }, ms);
  }

  #disarmItemTimer(): void {
    if (this.#itemTimer !== undefined) clearTimeout(this.#itemTimer);
    this.#itemTimer = undefined;
  }

  #stopTimers(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#disarmItemTimer();
    this.#signal?.removeEventListener("abort", this);
  }

  #timeoutError(ms: number, which: "overall" | "item"): RequestTimeoutError {
    const what = which === "item" ? `waited ${ms} ms for its next item` : `did not end within ${ms} ms`;
    return new RequestTimeoutError(`Stream '${this.request.action}' on ${this.agentId} ${what}; a cancel request was sent`, {
      agentId: this.agentId.uid,
      operation: this.request.action,
      timeoutMs: ms,
    });
  }
}

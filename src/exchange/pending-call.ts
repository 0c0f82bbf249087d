/**
 * One call waiting for its response: a promise settled by the first response, or by the call's
 * timeout or abort signal (then a cancel request follows for actions). Built without a closure
 * per call: the call is its own abort listener, and its timer calls a shared function.
 */
import { ActionCancelledError, PingCancelledError, RequestTimeoutError } from "../errors.ts";
import type { AgentId } from "../identifiers.ts";
import { fromFailure } from "../protocol/failure.ts";
import { MessageType } from "../protocol/messages.ts";
import type { RequestMessage, ResponseMessage } from "../protocol/messages.ts";
import type { ResponseSink } from "./pending-requests.ts";

/** What a call needs from the client that made it. */
export interface CallOwner {
  /** The call gave up: take it out of the pending table. */
  release(call: PendingCall): void;
  /** The call gave up on an action: ask the agent to cancel it. */
  cancel(call: PendingCall): void;
}

const ONCE = Object.freeze({ once: true });

function timedOut(call: PendingCall): void {
  call.timedOut();
}

/**
 * The error a call rejects with when it gives up: `RequestTimeoutError` after its timeout; when
 * its signal aborts, `ActionCancelledError` for actions and `PingCancelledError` for pings and
 * shutdowns.
 */
export function giveUpError(reason: "timeout" | "abort", request: RequestMessage, cause: unknown): Error {
  if (request.type === MessageType.ActionRequest) {
    return reason === "timeout"
      ? new RequestTimeoutError(`Action '${request.action}' on ${request.dest} timed out; a cancel request was sent`, {
          agentId: request.dest,
          operation: request.action,
          timeoutMs: cause as number,
        })
      : new ActionCancelledError(`Action '${request.action}' on ${request.dest} was aborted by the caller`, {
          agentId: request.dest,
          tag: request.tag,
          cause,
        });
  }
  const operation = request.type === MessageType.PingRequest ? "ping" : "shutdown";
  return reason === "timeout"
    ? new RequestTimeoutError(`${operation} request to ${request.dest} timed out`, { agentId: request.dest, operation, timeoutMs: cause as number })
    : new PingCancelledError(`${operation} request to ${request.dest} was aborted`, { agentId: request.dest, cause });
}

/** A call (one request, one response) in a client's pending table. */
export class PendingCall implements ResponseSink {
  readonly request: RequestMessage;
  readonly agentId: AgentId;
  /** Settles with the response, or rejects with the remote error or why the call gave up. */
  readonly promise: Promise<ResponseMessage>;
  readonly #owner: CallOwner;
  readonly #timeoutMs: number | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onProgress: ((progress: unknown) => void) | undefined;
  #resolve!: (response: ResponseMessage) => void;
  #reject!: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #done = false;

  /**
   * @param timeoutMs - give up after this many ms (undefined: never).
   * @param signal - give up when it aborts.
   * @param onProgress - receives the action's progress reports (the request asked for them).
   */
  constructor(
    owner: CallOwner,
    request: RequestMessage,
    agentId: AgentId,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
    onProgress?: (progress: unknown) => void,
  ) {
    this.#owner = owner;
    this.#onProgress = onProgress;
    this.request = request;
    this.agentId = agentId;
    this.#timeoutMs = timeoutMs;
    this.#signal = signal;
    this.promise = new Promise<ResponseMessage>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** Start the timeout and listen to the signal (once the call is in the pending table). */
  start(): void {
    this.#signal?.addEventListener("abort", this, ONCE);
    if (this.#timeoutMs !== undefined) this.#timer = setTimeout(timedOut, this.#timeoutMs, this);
  }

  /**
   * A call ends with its first final response (an error response rejects with the remote error);
   * progress reports before it go to `onProgress`.
   */
  receive(response: ResponseMessage): boolean {
    if (response.type === MessageType.ActionProgress || response.type === MessageType.StreamItems) {
      if (response.type === MessageType.ActionProgress && !this.#done) this.#progress(response.progress);
      return false;
    }
    if (this.#finish()) {
      if (response.type === MessageType.ErrorResponse) this.#reject(fromFailure(response.error));
      else this.#resolve(response);
    }
    return true;
  }

  #progress(progress: unknown): void {
    try {
      this.#onProgress?.(progress);
    } catch {
      // An observer's exception must not end the call (nor reach the mailbox reader).
    }
  }

  fail(error: unknown): void {
    if (this.#finish()) this.#reject(error);
  }

  /** The signal aborted (the call is its own listener). */
  handleEvent(): void {
    this.#giveUp("abort", this.#signal?.reason);
  }

  /** @internal The timeout passed. */
  timedOut(): void {
    this.#giveUp("timeout", this.#timeoutMs);
  }

  #giveUp(reason: "timeout" | "abort", cause: unknown): void {
    if (!this.#finish()) return;
    this.#owner.release(this);
    this.#reject(giveUpError(reason, this.request, cause));
    if (this.request.type === MessageType.ActionRequest) this.#owner.cancel(this);
  }

  /** Mark the call done, stopping its timer and listener. @returns false if it was done already. */
  #finish(): boolean {
    if (this.#done) return false;
    this.#done = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this);
    return true;
  }
}

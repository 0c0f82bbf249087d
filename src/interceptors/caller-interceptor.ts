/**
 * Caller-side interceptors: hooks of an exchange client around the requests it sends and the
 * responses it receives. Modelled on the Temporal TypeScript SDK's client interceptors: each hook
 * is `(input, next) => output`, and calls `next` to go on.
 */
import type { AgentId } from "../identifiers.ts";
import type { RequestBody, RequestMessage, ResponseMessage } from "../protocol/messages.ts";

/** What `outboundRequest` hooks get: a request about to be sent, and the options of its call. */
export interface OutboundRequestInput {
  /** The agent the request goes to. */
  readonly agentId: AgentId;
  /** The request: its type and, for an action, its name and arguments. */
  readonly body: RequestBody;
  /** The request's tag, unique to it (responses carry it back). */
  readonly tag: string;
  /**
   * The headers the request will carry, empty at the start of the chain. Set entries to add
   * headers: lowercase names; `academy-` names are reserved for this library (docs/PROTOCOL.md
   * section 3.4). The map belongs to this call.
   */
  headers: Record<string, string>;
  /** Give up after this many ms (a cancel is sent for actions); undefined waits for ever. May be changed. */
  timeoutMs: number | undefined;
  /** Abort the call when this aborts; may be changed. */
  signal: AbortSignal | undefined;
}

/** What `inboundResponse` hooks get: a response to one of this client's requests, before it settles the call. */
export interface InboundResponseInput {
  /** The request it answers. */
  readonly request: RequestMessage;
  /** The response; its `headers` are the ones the responder set. */
  readonly response: ResponseMessage;
}

/** The rest of an `outboundRequest` chain: sends the request and waits for its final response. */
export type OutboundRequestNext = (input: OutboundRequestInput) => Promise<ResponseMessage>;

/** The rest of an `inboundResponse` chain: hands the response to the waiting call. */
export type InboundResponseNext = (input: InboundResponseInput) => void;

/**
 * Hooks of an exchange client (configured on the exchange factory, `interceptors.caller`). Every
 * hook is optional. A hook calls `next` with the input, changed or not, to go on; the first
 * interceptor of a list is the outermost (it runs first and sees the result last).
 *
 * ```ts
 * const tracing: CallerInterceptor = {
 *   outboundRequest(input, next) {
 *     input.headers["x-trace-id"] = currentTraceId();
 *     return next(input);
 *   },
 * };
 * ```
 */
export interface CallerInterceptor {
  /**
   * Around one call: from before its request is sent until its final response arrives. May set
   * headers, `timeoutMs` and `signal` before calling `next`; may replace or observe the result.
   * Runs synchronously where the call is made, so it sees the calling action's
   * {@link currentAction} scope. A throw (or rejection) fails the call with that error. A request
   * sent without waiting for an answer (`Handle.shutdown`) goes through it too: there `next`
   * resolves, once the exchange has taken the request, with a `success-response` the client makes
   * itself.
   */
  outboundRequest?(input: OutboundRequestInput, next: OutboundRequestNext): Promise<ResponseMessage>;
  /**
   * Each response to a pending call, as it arrives and before it settles the call. Synchronous,
   * so that responses are handled in the order they arrive. A throw fails the call with that
   * error; not calling `next` leaves the call waiting (until its timeout or abort).
   */
  inboundResponse?(input: InboundResponseInput, next: InboundResponseNext): void;
}

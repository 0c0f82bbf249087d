/**
 * Agent-side interceptors: hooks of the engine that runs an agent, around the requests it
 * receives, the actions it runs and the responses it sends. Modelled on the Temporal TypeScript
 * SDK's `ActivityInboundCallsInterceptor`: each hook is `(input, next) => output`.
 */
import type { MessageHeaders } from "../protocol/headers.ts";
import type { ActionRequest, RequestMessage, ResponseBody } from "../protocol/messages.ts";
import type { EventContext } from "../agent/subscriptions.ts";

/** What `inboundRequest` hooks get: a request that reached the agent, before it is dispatched. */
export interface InboundRequestInput {
  /** The request (any type: action, ping, cancel, shutdown); its `headers` are the caller's. */
  readonly request: RequestMessage;
  /** 1 on first delivery, more on redeliveries. */
  readonly deliveryCount: number;
}

/** What `action` hooks get: an action request about to run, with a slot taken. */
export interface ActionInput {
  /** The request; its `headers` are the caller's. */
  readonly request: ActionRequest;
  /** The type name of the agent running the action (`agentType`, else its class name). */
  readonly agentType: string;
  /** The arguments the action's method gets (before its `ActionContext`, if it takes one). May be changed. */
  args: readonly unknown[];
  /**
   * The action's abort signal (aborts when the caller cancels or the agent shuts down). May be
   * replaced by one that also aborts for another reason; the action sees the one `next` gets.
   */
  signal: AbortSignal;
}

/** What `outboundResponse` hooks get: a response about to be sent. */
export interface OutboundResponseInput {
  /** The request it answers. */
  readonly request: RequestMessage;
  /** The response: a result, a success, or an error. May be replaced. */
  response: ResponseBody;
  /**
   * The headers the response will carry, empty at the start of the chain (a response never
   * inherits its request's headers). Set entries to add headers.
   */
  headers: Record<string, string>;
}

/**
 * What `event` hooks get: one run of an agent's event handler: an `@event` handler, run each time
 * its `AgentEvent` is set, or a `@subscribe` handler, run for an event that arrived as a message
 * (with the message's `headers`, the decoded `payload` and the handler's `context`).
 */
export interface EventInput {
  /** Uid of the agent. */
  readonly agentId: string;
  /** The agent's type name. */
  readonly agentType: string;
  /** The handler method's name. */
  readonly handler: string;
  /**
   * What the handler reacts to: the `AgentEvent` property of an `@event` handler; for a
   * `@subscribe` handler the subscription's subject as declared (with its wildcards: a bounded set,
   * fit for metric labels and span names; the event's own subject is `context.subject`).
   */
  readonly event: string;
  /**
   * Headers of the message that carried the event (a trace context, say); absent for events
   * raised inside the agent, such as `AgentEvent`s.
   */
  readonly headers?: MessageHeaders | undefined;
  /** `@subscribe` handlers: the decoded payload the handler gets. */
  readonly payload?: unknown;
  /** `@subscribe` handlers: the event context the handler gets (subject, sequence, delivery count...). */
  readonly context?: EventContext | undefined;
}

/** The rest of an `inboundRequest` chain: returns the request to dispatch. */
export type InboundRequestNext = (input: InboundRequestInput) => RequestMessage;

/** The rest of an `action` chain: runs the action and returns its result. */
export type ActionNext = (input: ActionInput) => Promise<unknown>;

/** The rest of an `outboundResponse` chain: sends the response. */
export type OutboundResponseNext = (input: OutboundResponseInput) => Promise<void>;

/** The rest of an `event` chain: runs the handler. */
export type EventNext = (input: EventInput) => Promise<void>;

/**
 * Hooks of the engine that runs an agent (configured on the exchange factory,
 * `interceptors.agent`). Every hook is optional. A hook calls `next` with the input, changed or
 * not, to go on; the first interceptor of a list is the outermost.
 *
 * ```ts
 * const auth: AgentInterceptor = {
 *   inboundRequest(input, next) {
 *     if (input.request.headers?.["x-token"] !== secret) throw new Error("not allowed");
 *     return next(input);
 *   },
 * };
 * ```
 */
export interface AgentInterceptor {
  /**
   * A request as it reaches the agent, before it is dispatched (any request type, also before
   * startup completes). Synchronous, so requests are dispatched in mailbox order. Return what
   * `next` returns to let the request through; throw to reject it: the caller is answered with
   * that error (it crosses the wire like an action's exception) and the request is not run.
   * Redeliveries of a request already answered or running do not reach it.
   */
  inboundRequest?(input: InboundRequestInput, next: InboundRequestNext): RequestMessage;
  /**
   * Around an action's execution, once the action has a concurrency slot. Runs outside the
   * action's {@link currentAction} scope, which `next` enters. What it returns (or throws) is
   * the action's result (or error) sent to the caller.
   */
  action?(input: ActionInput, next: ActionNext): Promise<unknown>;
  /**
   * Around sending a response (action results and errors, ping, cancel and shutdown
   * acknowledgements, rejections by `inboundRequest`). May add headers or replace the response.
   * A throw is handled like a failure to send: logged, and the response dropped.
   */
  outboundResponse?(input: OutboundResponseInput, next: OutboundResponseNext): Promise<void>;
  /**
   * Around one run of an event handler (see {@link EventInput}). What it throws is the handler's
   * error: with the default `shutdownOnLoopError`, it shuts the agent down.
   */
  event?(input: EventInput, next: EventNext): Promise<void>;
}

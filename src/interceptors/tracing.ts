/**
 * Tracing with OpenTelemetry: the built-in interceptors that carry a W3C trace context in the
 * message headers (`traceparent`, `tracestate`) from callers to agents, and make the spans of a
 * call: `send <action>` (kind CLIENT) around a call on the caller's side, `handle <action>` (kind
 * SERVER) around its execution in the agent, a child of the caller's span even on another host;
 * and `event <name>` around an event handler's run. Runtime hosts and host-pool executors make
 * their own spans (`launch`, `claim`, `reap`) with the helpers here.
 *
 * Only `@opentelemetry/api` is used: until the application installs an SDK (a tracer provider,
 * and a propagator for the trace context to travel), nothing is recorded and the interceptors do
 * no work beyond one check per call ({@link tracingInstalled}). With an SDK but no context
 * manager, a call made inside an action still gets the action's span as its parent (found through
 * the action scope).
 */
import { ProxyTracerProvider, ROOT_CONTEXT, SpanKind, SpanStatusCode, context, defaultTextMapGetter, defaultTextMapSetter, propagation, trace } from "@opentelemetry/api";
import type { Attributes, Context, Span, SpanOptions, Tracer } from "@opentelemetry/api";
import type { MessageHeaders } from "../protocol/headers.ts";
import { MessageType } from "../protocol/messages.ts";
import type { ResponseMessage } from "../protocol/messages.ts";
import { currentAction } from "./action-scope.ts";
import type { ActionInput, ActionNext, AgentInterceptor, EventInput, EventNext } from "./agent-interceptor.ts";
import type { CallerInterceptor, OutboundRequestInput, OutboundRequestNext } from "./caller-interceptor.ts";
import { SlotMap } from "../util/slot-table.ts";

/** The name of this library's tracer (the instrumentation scope of its spans). */
export const TRACER_NAME = "academy-nats";

/** Attribute names of this library's spans, beside OpenTelemetry's semantic conventions. */
export const TraceAttribute = {
  AgentId: "academy.agent.id",
  AgentType: "academy.agent.type",
  Action: "academy.action",
  Tag: "academy.tag",
  /** How it ended: `ok`, `error`, `timeout` or `cancelled` (calls, actions, events); claims and launches have their own. */
  Outcome: "academy.outcome",
  Event: "academy.event",
  Handler: "academy.handler",
  Pool: "academy.pool",
  HostId: "academy.host.id",
  Generation: "academy.launch.gen",
} as const;

/** The delegate of a tracer provider nobody installed (this copy of the API's no-op provider). */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * Whether an OpenTelemetry SDK is installed (a global tracer provider was registered). Cheap: two
 * property reads. When false, this library's tracing does nothing at all.
 */
export function tracingInstalled(): boolean {
  const provider = trace.getTracerProvider();
  // A provider of another copy of the API is one somebody registered.
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NOOP_PROVIDER;
}

/**
 * Export the spans the installed SDK still holds (its tracer provider's `forceFlush`, when it has
 * one), waiting at most `timeoutMs`: a process about to exit calls it so that its last spans are
 * not lost. Does nothing without an SDK; never throws.
 */
export async function flushTraces(timeoutMs = 2_000): Promise<void> {
  if (!tracingInstalled()) return;
  const provider = trace.getTracerProvider() as { getDelegate?: () => unknown };
  const sdk = (typeof provider.getDelegate === "function" ? provider.getDelegate() : provider) as { forceFlush?: () => Promise<void> };
  if (typeof sdk.forceFlush !== "function") return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    sdk.forceFlush().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}

/** This library's tracer, from the global tracer provider (a no-op until an SDK is installed). */
export function academyTracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/**
 * Write the trace context of `ctx` into `headers` with the global propagator (W3C `traceparent`
 * and `tracestate` with the SDKs' defaults). Does nothing without a propagator.
 */
export function injectTraceContext(ctx: Context, headers: Record<string, string>): void {
  propagation.inject(ctx, headers, defaultTextMapSetter);
}

/** The context whose trace `headers` carry (the root context when they carry none). */
export function extractTraceContext(headers: MessageHeaders | undefined): Context {
  if (headers === undefined) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
}

/**
 * End `span` as failed by `error`: the exception recorded, status ERROR, `error.type` (the error's
 * `code`, else its name) and the outcome (`timeout`, `cancelled` or `error`).
 */
export function endSpanWithError(span: Span, error: unknown): void {
  const err = error as { message?: unknown } | undefined;
  const type = errorTypeOf(error);
  span.setAttributes({ "error.type": type, [TraceAttribute.Outcome]: outcomeOf(type) });
  if (error instanceof Error) span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: typeof err?.message === "string" ? err.message : String(error) });
  span.end();
}

/** What kind of error `error` is: its `code` (this library's errors have one), else its name, else `Error`. */
export function errorTypeOf(error: unknown): string {
  const err = error as { code?: unknown; name?: unknown } | undefined;
  return typeof err?.code === "string" ? err.code : typeof err?.name === "string" ? err.name : "Error";
}

/** `timeout`, `cancelled` or `error`, from an error code or name. */
export function outcomeOf(errorType: string): "timeout" | "cancelled" | "error" {
  if (errorType === "REQUEST_TIMEOUT" || errorType === "RequestTimeoutError") return "timeout";
  if (errorType === "ACTION_CANCELLED" || errorType === "ActionCancelledError") return "cancelled";
  return "error";
}

/** End `span` as successful. */
export function endSpanOk(span: Span): void {
  span.setAttribute(TraceAttribute.Outcome, "ok");
  span.end();
}

/**
 * Run `fn` in a span named `name` (started with `options`, as a child of `parent`, else of
 * {@link currentTraceContext}), ended when `fn` settles: as failed if it throws, else with the outcome
 * `fn`'s result gives (`ok` unless `outcome` says otherwise). Without an SDK, `fn` runs alone.
 * @param fn - gets the span (undefined without an SDK), to add attributes and to inject its context.
 */
export async function inSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span | undefined) => Promise<T>,
  parent?: Context,
  outcome?: (result: T) => string,
): Promise<T> {
  if (!tracingInstalled()) return fn(undefined);
  const ctx = parent ?? currentTraceContext();
  const span = academyTracer().startSpan(name, options, ctx);
  let result: T;
  try {
    result = await context.with(trace.setSpan(ctx, span), fn, undefined, span);
  } catch (error) {
    endSpanWithError(span, error);
    throw error;
  }
  span.setAttribute(TraceAttribute.Outcome, outcome?.(result) ?? "ok");
  span.end();
  return result;
}

/**
 * Call `fn(arg)` outside any trace: agents start this way, so that their loops and the calls those
 * make do not join the trace of whatever launched them.
 */
export function runOutsideTrace<T, R>(fn: (arg: T) => R, arg: T): R {
  return context.with(ROOT_CONTEXT, fn, undefined, arg);
}

/**
 * The spans of the actions running now, by agent and tag: the parent of the calls those actions
 * make when no context manager carries the active span through their awaits. A {@link SlotMap}:
 * no `Map` holding the spans themselves.
 */
const actionSpans = new SlotMap<Span>();

function actionKey(agentId: string, tag: string): string {
  return `${agentId} ${tag}`;
}

/**
 * The context to make a span in now: the active context when it holds a span, else (no context
 * manager carried it here) the span of the action running in this async context, if any.
 */
export function currentTraceContext(): Context {
  const active = context.active();
  if (trace.getSpan(active) !== undefined) return active;
  const scope = currentAction();
  const span = scope === undefined ? undefined : actionSpans.get(actionKey(scope.agentId, scope.tag));
  return span === undefined ? active : trace.setSpan(active, span);
}

/** Options of {@link tracingInterceptors}. */
export interface TracingOptions {
  /**
   * The `messaging.system` attribute of the spans (`nats` on the NATS exchange).
   * @defaultValue none (the attribute is not set)
   */
  messagingSystem?: string;
}

/** Caller side: a `send <action>` span around each action call, its context in the request's headers. */
class CallerTracing implements CallerInterceptor {
  readonly #system: string | undefined;

  constructor(system: string | undefined) {
    this.#system = system;
  }

  outboundRequest(input: OutboundRequestInput, next: OutboundRequestNext): Promise<ResponseMessage> {
    if (input.body.type !== MessageType.ActionRequest || !tracingInstalled()) return next(input);
    const action = input.body.action;
    const attributes: Attributes = {
      "messaging.operation.type": "send",
      "messaging.destination.name": input.agentId.uid,
      "messaging.message.id": input.tag,
      [TraceAttribute.AgentId]: input.agentId.uid,
      [TraceAttribute.Action]: action,
      [TraceAttribute.Tag]: input.tag,
    };
    if (this.#system !== undefined) attributes["messaging.system"] = this.#system;
    const parent = currentTraceContext();
    const span = academyTracer().startSpan(`send ${action}`, { kind: SpanKind.CLIENT, attributes }, parent);
    const ctx = trace.setSpan(parent, span);
    injectTraceContext(ctx, input.headers);
    let sent: Promise<ResponseMessage>;
    try {
      sent = context.with(ctx, next, undefined, input);
    } catch (error) {
      endSpanWithError(span, error);
      throw error;
    }
    return sent.then(
      (response) => {
        if (response.type === MessageType.ErrorResponse) endSpanWithError(span, { code: response.error.code ?? response.error.type, message: response.error.message });
        else endSpanOk(span);
        return response;
      },
      (error: unknown) => {
        endSpanWithError(span, error);
        throw error;
      },
    );
  }
}

/** Agent side: a `handle <action>` span around each action, and an `event <name>` span around each event handler run. */
class AgentTracing implements AgentInterceptor {
  readonly #system: string | undefined;

  constructor(system: string | undefined) {
    this.#system = system;
  }

  action(input: ActionInput, next: ActionNext): Promise<unknown> {
    if (!tracingInstalled()) return next(input);
    return this.#handle(input, next);
  }

  event(input: EventInput, next: EventNext): Promise<void> {
    if (!tracingInstalled()) return next(input);
    const fromMessage = input.headers !== undefined;
    const attributes: Attributes = {
      [TraceAttribute.AgentId]: input.agentId,
      [TraceAttribute.AgentType]: input.agentType,
      [TraceAttribute.Event]: input.event,
      [TraceAttribute.Handler]: input.handler,
    };
    if (fromMessage && this.#system !== undefined) attributes["messaging.system"] = this.#system;
    const parent = fromMessage ? extractTraceContext(input.headers) : ROOT_CONTEXT;
    return inSpan(`event ${input.event}`, { kind: fromMessage ? SpanKind.CONSUMER : SpanKind.INTERNAL, attributes }, () => next(input), parent);
  }

  async #handle(input: ActionInput, next: ActionNext): Promise<unknown> {
    const { request } = input;
    const attributes: Attributes = {
      "messaging.operation.type": "process",
      "messaging.destination.name": request.dest,
      "messaging.message.id": request.tag,
      [TraceAttribute.AgentId]: request.dest,
      [TraceAttribute.AgentType]: input.agentType,
      [TraceAttribute.Action]: request.action,
      [TraceAttribute.Tag]: request.tag,
    };
    if (this.#system !== undefined) attributes["messaging.system"] = this.#system;
    const parent = extractTraceContext(request.headers);
    const span = academyTracer().startSpan(`handle ${request.action}`, { kind: SpanKind.SERVER, attributes }, parent);
    const key = actionKey(request.dest, request.tag);
    actionSpans.set(key, span);
    try {
      const result = await context.with(trace.setSpan(parent, span), next, undefined, input);
      endSpanOk(span);
      return result;
    } catch (error) {
      // An action stopped by its signal failed for the signal's reason (a cancel, a deadline, shutdown).
      endSpanWithError(span, input.signal.aborted ? input.signal.reason : error);
      throw error;
    } finally {
      actionSpans.delete(key);
    }
  }
}

/**
 * The tracing interceptors, one per side. Exchange factories put them first (outermost) unless
 * created with `tracing: false`; they do nothing until an OpenTelemetry SDK is installed.
 *
 * - Caller side (`outboundRequest`): each action call is a `send <action>` span (kind CLIENT), a
 *   child of the active span (or of the calling action's span), ended by the final response; its
 *   context goes into the request's headers with the global propagator.
 * - Agent side (`action`): each action is a `handle <action>` span (kind SERVER), a child of the
 *   context in the request's headers, active while the action runs; `event`: each event handler
 *   run is an `event <name>` span.
 *
 * Attributes: `messaging.system`, `messaging.operation.type`, `messaging.destination.name` (the
 * agent's mailbox uid), `messaging.message.id` (the tag), `academy.agent.id`,
 * `academy.agent.type` (agent side), `academy.action`, `academy.tag`, `academy.outcome`, and on
 * failure `error.type` (the error's code) with status ERROR.
 */
export function tracingInterceptors(options: TracingOptions = {}): { readonly caller: CallerInterceptor; readonly agent: AgentInterceptor } {
  return Object.freeze({ caller: new CallerTracing(options.messagingSystem), agent: new AgentTracing(options.messagingSystem) });
}

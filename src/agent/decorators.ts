/**
 * Standard (TC39) decorators that declare an agent's actions, loops, timers and event handlers.
 * They record what they decorate in the class's decorator metadata; the runtime reads it back with
 * {@link agentSpec}.
 */
import { AgentDefinitionError } from "../errors.ts";

// Node 20 has no Symbol.metadata. tsc only records decorator metadata when it exists, and esbuild
// falls back to Symbol.for("Symbol.metadata"); install that same symbol so both agree.
(Symbol as { metadata?: symbol }).metadata ??= Symbol.for("Symbol.metadata");

// Registered, so that every copy of this library in a process reads the members the others record.
const SPECS = Symbol.for("academy-nats.members");

type AsyncMethod = (this: unknown, ...args: never[]) => Promise<unknown>;

/** An action: a method callable through handles. */
export interface ActionSpec {
  readonly kind: "action";
  readonly name: string;
  readonly description: string | undefined;
  /** Whether the method receives an {@link ActionContext} as an extra last argument. */
  readonly context: boolean;
  readonly method: AsyncMethod;
}

/** A background loop, timer or event handler, started after startup and stopped at shutdown. */
export interface LoopSpec {
  readonly kind: "loop" | "timer" | "event";
  readonly name: string;
  readonly method: AsyncMethod;
  /** Timers: interval between the end of one call and the start of the next, in ms. */
  readonly intervalMs?: number;
  /** Event handlers: name of the {@link AgentEvent} property they wait on. */
  readonly event?: string;
}

export type MemberSpec = ActionSpec | LoopSpec;

/** Options of {@link action}. */
export interface ActionOptions {
  /** Text returned by `agentDescribe` for this action. */
  description?: string;
  /**
   * Pass an `ActionContext` (caller, request tag, abort signal, exchange client) as an extra last
   * argument.
   * @defaultValue false
   */
  context?: boolean;
  /**
   * Allow a name that clashes with a handle method (`action`, `ping`, `shutdown`, ...). Such an
   * action is reachable only through `handle.action(name, ...)`.
   * @defaultValue false
   */
  allowProtectedName?: boolean;
}

/** Names a handle uses itself; an action with one of these names would be shadowed. */
export const PROTECTED_NAMES: ReadonlySet<string> = new Set([
  "action",
  "invoke",
  "with",
  "ping",
  "shutdown",
  "agentId",
  "then",
  "catch",
  "finally",
  "constructor",
  "toJSON",
  "toString",
]);

function isAsyncFunction(fn: unknown): boolean {
  return Object.prototype.toString.call(fn) === "[object AsyncFunction]";
}

function record(context: ClassMethodDecoratorContext, spec: MemberSpec): void {
  if (context.static || context.private) {
    throw new AgentDefinitionError(`@${spec.kind} can only decorate public instance methods (got '${String(context.name)}')`);
  }
  const metadata = context.metadata as Record<symbol, MemberSpec[]> | undefined;
  if (metadata === undefined) {
    throw new AgentDefinitionError("Decorator metadata is unavailable; compile with standard (non-experimental) decorators");
  }
  if (!Object.prototype.hasOwnProperty.call(metadata, SPECS)) metadata[SPECS] = [];
  metadata[SPECS]!.push(spec);
}

function requireAsync(kind: string, name: string, method: unknown): void {
  if (!isAsyncFunction(method)) {
    throw new AgentDefinitionError(`@${kind} method '${name}' must be an async function`);
  }
}

function decorateAction(options: ActionOptions) {
  return function <M extends AsyncMethod>(method: M, context: ClassMethodDecoratorContext): M {
    const name = String(context.name);
    requireAsync("action", name, method);
    if (PROTECTED_NAMES.has(name) && options.allowProtectedName !== true) {
      throw new AgentDefinitionError(
        `Action name '${name}' clashes with a handle method; rename it or pass { allowProtectedName: true }`,
      );
    }
    record(context, { kind: "action", name, description: options.description, context: options.context === true, method });
    return method;
  };
}

/**
 * Declare an action: an async method other agents and users call through handles.
 *
 * ```ts
 * @action async increment(by = 1) { ... }
 * @action({ description: "Add to the count", context: true }) async add(n: number, ctx: ActionContext) { ... }
 * ```
 * @throws {AgentDefinitionError} when the class is defined, if the method is not async.
 */
export function action<M extends AsyncMethod>(method: M, context: ClassMethodDecoratorContext): M;
export function action(
  options: ActionOptions,
): <M extends AsyncMethod>(method: M, context: ClassMethodDecoratorContext) => M;
export function action(
  methodOrOptions: AsyncMethod | ActionOptions,
  context?: ClassMethodDecoratorContext,
): unknown {
  if (typeof methodOrOptions === "function") return decorateAction({})(methodOrOptions, context!);
  return decorateAction(methodOrOptions);
}

/**
 * Declare a loop: an async method started after startup with an `AbortSignal` that aborts at
 * shutdown. It should return when the signal aborts.
 */
export function loop<M extends (this: unknown, signal: AbortSignal) => Promise<unknown>>(
  method: M,
  context: ClassMethodDecoratorContext,
): M {
  const name = String(context.name);
  requireAsync("loop", name, method);
  record(context, { kind: "loop", name, method: method as unknown as AsyncMethod });
  return method;
}

/**
 * Declare a timer: the method runs every `intervalMs` until shutdown, the first time one interval
 * after startup; the next interval starts when a call completes.
 */
export function timer(intervalMs: number) {
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new AgentDefinitionError(`@timer interval must be a positive number of ms (got ${intervalMs})`);
  }
  return function <M extends AsyncMethod>(method: M, context: ClassMethodDecoratorContext): M {
    const name = String(context.name);
    requireAsync("timer", name, method);
    record(context, { kind: "timer", name, method, intervalMs });
    return method;
  };
}

/**
 * Declare an event handler: the method runs each time the {@link AgentEvent} stored in the agent's
 * property `eventProperty` is set (the event is cleared before each call).
 */
export function event(eventProperty: string) {
  return function <M extends AsyncMethod>(method: M, context: ClassMethodDecoratorContext): M {
    const name = String(context.name);
    requireAsync("event", name, method);
    record(context, { kind: "event", name, method, event: eventProperty });
    return method;
  };
}

/** The members of an agent class, its own and inherited (a subclass's method overrides by name). */
export interface AgentSpec {
  readonly actions: ReadonlyMap<string, ActionSpec>;
  readonly loops: readonly LoopSpec[];
}

const specCache = new WeakMap<object, AgentSpec>();

/** Read the decorated members of an agent class. */
export function agentSpec(cls: abstract new (...args: never[]) => unknown): AgentSpec {
  const cached = specCache.get(cls);
  if (cached !== undefined) return cached;
  const chain: object[] = [];
  for (let c: unknown = cls; typeof c === "function" && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    chain.unshift(c);
  }
  const actions = new Map<string, ActionSpec>();
  const loops = new Map<string, LoopSpec>();
  for (const c of chain) {
    const metadata = (c as { [Symbol.metadata]?: Record<symbol, MemberSpec[]> })[Symbol.metadata as symbol as typeof Symbol.metadata];
    if (metadata == null || !Object.prototype.hasOwnProperty.call(metadata, SPECS)) continue;
    for (const spec of metadata[SPECS] ?? []) {
      actions.delete(spec.name);
      loops.delete(spec.name);
      if (spec.kind === "action") actions.set(spec.name, spec);
      else loops.set(spec.name, spec);
    }
  }
  const spec: AgentSpec = { actions, loops: [...loops.values()] };
  specCache.set(cls, spec);
  return spec;
}

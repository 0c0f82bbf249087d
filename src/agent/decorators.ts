/**
 * Standard (TC39) decorators that declare an agent's actions, loops, timers and event handlers.
 * They record what they decorate in the class's decorator metadata; the engine reads it back with
 * {@link agentSpec}.
 */
import { AgentDefinitionError } from "../errors.ts";
import { parameterList, splitParameters } from "./parameters.ts";

// Node 20 has no Symbol.metadata. tsc only records decorator metadata when it exists, and esbuild
// falls back to Symbol.for("Symbol.metadata"); install that same symbol so both agree.
(Symbol as { metadata?: symbol }).metadata ??= Symbol.for("Symbol.metadata");

const SPECS = Symbol("academy.members");
const DEFINED_AT = Symbol("academy.definedAt");

/**
 * Where the code that is defining a class is: the first stack frame outside this module (the
 * class's own module, or its compiler's decorator helpers, which live in the same module).
 */
function definitionSite(): string | undefined {
  const frames = (new Error().stack ?? "").split("\n").slice(1);
  const here = frames[0]?.match(/\((.*):\d+:\d+\)$/)?.[1] ?? frames[0]?.match(/at (.*):\d+:\d+$/)?.[1];
  for (const frame of frames) {
    const location = frame.match(/\((.*:\d+):\d+\)$/)?.[1] ?? frame.match(/at (.*:\d+):\d+$/)?.[1];
    if (location !== undefined && (here === undefined || !location.startsWith(`${here}:`))) return location;
  }
  return undefined;
}

/** Where a decorated agent class was defined (`file:line`), if known: for error messages. */
export function classDefinitionSite(cls: object): string | undefined {
  // Only the class's own metadata: a class without decorators inherits its base class's.
  if (!Object.prototype.hasOwnProperty.call(cls, Symbol.metadata)) return undefined;
  const metadata = (cls as { [Symbol.metadata]?: Record<symbol, unknown> })[Symbol.metadata as symbol as typeof Symbol.metadata];
  if (metadata == null || !Object.prototype.hasOwnProperty.call(metadata, DEFINED_AT)) return undefined;
  return metadata[DEFINED_AT] as string | undefined;
}

type AsyncMethod = (this: unknown, ...args: never[]) => Promise<unknown>;

/** An action: a method callable through handles. */
export interface ActionSpec {
  readonly kind: "action";
  readonly name: string;
  readonly description: string | undefined;
  /** Whether the method receives an {@link ActionContext} as its last declared parameter. */
  readonly context: boolean;
  /**
   * With `context`, the position of the context among the method's arguments: its last declared
   * parameter, whatever the caller passed before it (omitted arguments are `undefined`).
   */
  readonly contextIndex: number;
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
   * Pass the `ActionContext` (caller, request tag, abort signal, exchange client) as the method's
   * last declared parameter, whatever the caller passed: `inc(by = 1, ctx?)` called as `inc()`
   * gets `by = 1`. The same context is `this.actionContext` in any action, without this option.
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
  if (!Object.prototype.hasOwnProperty.call(metadata, SPECS)) {
    metadata[SPECS] = [];
    (metadata as Record<symbol, unknown>)[DEFINED_AT] = definitionSite();
  }
  metadata[SPECS]!.push(spec);
}

function requireAsync(kind: string, name: string, method: unknown): void {
  if (!isAsyncFunction(method)) {
    throw new AgentDefinitionError(`@${kind} method '${name}' must be an async function`);
  }
}

/**
 * Where an action declared with `context: true` takes its context: its last declared parameter.
 * @throws {AgentDefinitionError} if it declares none, or its last one is a rest parameter.
 */
function contextParameterIndex(name: string, method: AsyncMethod): number {
  const parameters = splitParameters(parameterList(method));
  const last = parameters.at(-1);
  if (last === undefined) {
    throw new AgentDefinitionError(`Action '${name}' takes its context (context: true) but declares no parameter for it`);
  }
  if (last.startsWith("...")) {
    throw new AgentDefinitionError(`Action '${name}' takes its context (context: true) in a rest parameter; declare a last parameter for it`);
  }
  return parameters.length - 1;
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
    const withContext = options.context === true;
    const contextIndex = withContext ? contextParameterIndex(name, method) : -1;
    record(context, { kind: "action", name, description: options.description, context: withContext, contextIndex, method });
    return method;
  };
}

/**
 * Declare an action: an async method other agents and users call through handles.
 *
 * ```ts
 * @action async increment(by = 1) { ... }
 * @action async whoAsked() { return this.actionContext.sourceId; }
 * @action({ description: "Add to the count", context: true }) async add(n = 1, ctx?: ActionContext) { ... }
 * ```
 * @throws {AgentDefinitionError} when the class is defined, if the method is not async, or has
 *   `context: true` without a last parameter for the context.
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

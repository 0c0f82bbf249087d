/**
 * Standard (TC39) decorators that declare an agent's actions, loops, timers and event handlers.
 * They record what they decorate in the class's decorator metadata; the engine reads it back with
 * {@link agentSpec}.
 */
import { AgentDefinitionError } from "../errors.ts";
import { parameterList, splitParameters } from "./parameters.ts";
import type { ResolvedSubscription, SubscribeOptions } from "./subscriptions.ts";

// Node 20 has no Symbol.metadata. tsc only records decorator metadata when it exists, and esbuild
// falls back to Symbol.for("Symbol.metadata"); install that same symbol so both agree.
(Symbol as { metadata?: symbol }).metadata ??= Symbol.for("Symbol.metadata");

// Registered, so that every copy of this library in a process reads the members the others record.
const SPECS = Symbol.for("academy-nats.members");
const DEFINED_AT = Symbol.for("academy-nats.definedAt");

/**
 * Where the code that is defining a class is: the first stack frame outside this module (the
 * class's own module, or its compiler's decorator helpers, which live in the same module).
 */
function definitionSite(): string | undefined {
  const frames = (new Error().stack ?? "").split("\n").slice(1);
  const here = frames[0]?.match(/\((.*):\d+:\d+\)$/)?.[1] ?? frames[0]?.match(/at (.*):\d+:\d+$/)?.[1];
  // Decorators of other modules of this folder (`@subscribe`) record through this one: skip them too.
  const folder = here === undefined ? undefined : here.slice(0, Math.max(here.lastIndexOf("/"), here.lastIndexOf("\\")) + 1);
  for (const frame of frames) {
    const location = frame.match(/\((.*:\d+):\d+\)$/)?.[1] ?? frame.match(/at (.*:\d+):\d+$/)?.[1];
    if (location === undefined) continue;
    const inHere = here !== undefined && location.startsWith(`${here}:`);
    const decoratorModule = folder !== undefined && location.startsWith(folder) && /\/(subscriptions|decorators)\.[cm]?[jt]s:/.test(location.replace(/\\/g, "/"));
    if (!inHere && !decoratorModule) return location;
  }
  return undefined;
}

/** Where an agent class was defined (`file:line`), if known (it has members of its own): for error messages. */
export function classDefinitionSite(cls: object): string | undefined {
  // Only the class's own metadata: a class without members of its own inherits its base class's.
  if (!Object.prototype.hasOwnProperty.call(cls, Symbol.metadata)) return undefined;
  const metadata = (cls as { [Symbol.metadata]?: Record<symbol, unknown> })[Symbol.metadata as symbol as typeof Symbol.metadata];
  if (metadata == null || !Object.prototype.hasOwnProperty.call(metadata, DEFINED_AT)) return undefined;
  return metadata[DEFINED_AT] as string | undefined;
}

type AsyncMethod = (this: unknown, ...args: never[]) => Promise<unknown>;
/** A streaming action's method: an `async *` method. */
type AsyncGeneratorMethod = (this: unknown, ...args: never[]) => AsyncGenerator<unknown, unknown, undefined>;
/** What `@action` decorates: an async method, or an `async *` method (a streaming action). */
type ActionMethod = AsyncMethod | AsyncGeneratorMethod;

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
  /**
   * A streaming action: an `async *` method, whose items the caller takes with `handle.stream`
   * (docs/PROTOCOL.md section 15).
   */
  readonly streaming: boolean;
  /**
   * Effectively-once execution: a redelivery of a request this action completed is answered with
   * the recorded response instead of running the action again (docs/PROTOCOL.md section 10.10).
   */
  readonly once: boolean;
  readonly method: ActionMethod;
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

/** An event subscription (`@subscribe`): started after startup, stopped at shutdown. */
export interface SubscriptionSpec {
  readonly kind: "subscription";
  readonly name: string;
  readonly method: AsyncMethod;
  readonly subscription: ResolvedSubscription;
}

export type MemberSpec = ActionSpec | LoopSpec | SubscriptionSpec;

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
  /**
   * Effectively-once execution (docs/PROTOCOL.md section 10.10): the response is recorded before
   * the request is acknowledged, and a redelivery of the request within the exchange's result
   * window (after a crash of the agent, its host or the server, or a response that could not be
   * published) is answered with it instead of running the action again. `false` opts this action
   * out: no record is written or read, and a redelivery runs it again (at-least-once), which suits
   * actions that are cheap and idempotent, or whose results are too large to keep.
   * @defaultValue true
   */
  once?: boolean;
}

/** Names a handle uses itself; an action with one of these names would be shadowed. */
export const PROTECTED_NAMES: ReadonlySet<string> = new Set([
  "action",
  "invoke",
  "stream",
  "invokeStream",
  "proxyCall",
  "sendCall",
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

function isAsyncGeneratorFunction(fn: unknown): boolean {
  return Object.prototype.toString.call(fn) === "[object AsyncGeneratorFunction]";
}

/** What a decorator says when code compiled with `experimentalDecorators` calls it. */
const EXPERIMENTAL_DECORATORS =
  "academy-nats decorators are standard (TC39) decorators, but this code was compiled with experimentalDecorators: " +
  'remove "experimentalDecorators" from tsconfig.json (TypeScript 5.0 or later compiles standard decorators), ' +
  "or define the agent without decorators (defineAgent)";

/**
 * The parameter type that makes TypeScript with `experimentalDecorators` report why a decorator
 * does not fit: its error names this property.
 */
export type ExperimentalDecoratorsNotSupported = {
  readonly "academy-nats decorators are standard (TC39) decorators: remove experimentalDecorators from tsconfig.json": true;
};

/** A standard decorator of agent methods (the second signature only turns legacy uses into a clear type error). */
export interface AgentMethodDecorator<M extends ActionMethod = AsyncMethod> {
  <N extends M>(method: N, context: ClassMethodDecoratorContext): N;
  (target: object, propertyKey: string | symbol, descriptor: ExperimentalDecoratorsNotSupported): never;
}

/** @throws {AgentDefinitionError} when called the way `experimentalDecorators` code calls decorators. */
function assertStandard(context: unknown): asserts context is ClassMethodDecoratorContext {
  if (typeof context !== "object" || context === null || !("kind" in context)) throw new AgentDefinitionError(EXPERIMENTAL_DECORATORS);
}

/**
 * `resolveSubscription` of `subscriptions.ts`, installed by that module when it loads (it imports
 * this one, so this one cannot import it back).
 */
let subscriptionResolver: ((subject: string, options: SubscribeOptions, handler: string) => ResolvedSubscription) | undefined;

/** @internal Called by `subscriptions.ts` as it loads. */
export function installSubscriptionResolver(resolve: (subject: string, options: SubscribeOptions, handler: string) => ResolvedSubscription): void {
  subscriptionResolver = resolve;
}

/** @internal Check a decorator was called as a standard decorator of a method (for decorators in other modules). */
export function assertStandardDecorator(context: unknown): asserts context is ClassMethodDecoratorContext {
  assertStandard(context);
}

/** @internal Record a member declared by a decorator of another module (`@subscribe`). */
export function recordMember(context: ClassMethodDecoratorContext, spec: MemberSpec): void {
  requireAsync(spec.kind === "subscription" ? "subscribe" : spec.kind, spec.name, spec.method);
  record(context, spec);
}

function record(context: ClassMethodDecoratorContext, spec: MemberSpec): void {
  if (context.static || context.private) {
    throw new AgentDefinitionError(`@${spec.kind} can only decorate public instance methods (got '${String(context.name)}')`);
  }
  const metadata = context.metadata as Record<symbol, MemberSpec[]> | undefined;
  if (metadata === undefined) throw new AgentDefinitionError(EXPERIMENTAL_DECORATORS);
  addSpec(metadata, spec);
}

function addSpec(metadata: Record<symbol, MemberSpec[]>, spec: MemberSpec): void {
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
function contextParameterIndex(name: string, method: unknown): number {
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

/** The spec of an action named `name`, checked. */
function actionSpec(name: string, method: unknown, options: ActionOptions): ActionSpec {
  const streaming = isAsyncGeneratorFunction(method);
  if (!streaming && !isAsyncFunction(method)) {
    throw new AgentDefinitionError(`@action method '${name}' must be an async function (or an async generator, for a streaming action)`);
  }
  if (PROTECTED_NAMES.has(name) && options.allowProtectedName !== true) {
    throw new AgentDefinitionError(`Action name '${name}' clashes with a handle method; rename it or pass { allowProtectedName: true }`);
  }
  const context = options.context === true;
  const contextIndex = context ? contextParameterIndex(name, method) : -1;
  if (options.once !== undefined && typeof options.once !== "boolean") {
    throw new AgentDefinitionError(`Action '${name}': once must be a boolean (got ${String(options.once)})`);
  }
  return { kind: "action", name, description: options.description, context, contextIndex, streaming, once: options.once !== false, method: method as ActionMethod };
}

function decorateAction(options: ActionOptions): AgentMethodDecorator<ActionMethod> {
  return function (method: ActionMethod, context: unknown): ActionMethod {
    assertStandard(context);
    record(context, actionSpec(String(context.name), method, options));
    return method;
  } as AgentMethodDecorator<ActionMethod>;
}

/**
 * Declare an action: an async method other agents and users call through handles.
 *
 * ```ts
 * @action async increment(by = 1) { ... }
 * @action async whoAsked() { return this.actionContext.sourceId; }
 * @action({ description: "Add to the count", context: true }) async add(n = 1, ctx?: ActionContext) { ... }
 * @action async *tokens(prompt: string) { for (const t of prompt.split(" ")) yield t; }
 * ```
 * An `async *` method is a streaming action: callers take its items with `handle.stream(name,
 * ...args)` (or `handle.tokens(...)`, which returns an `AsyncIterable`), with flow control and
 * cancellation (README, *Streaming*).
 * Standard decorators only: code compiled with `experimentalDecorators` gets an
 * `AgentDefinitionError` saying so (and TypeScript a type error naming the setting).
 * @throws {AgentDefinitionError} when the class is defined, if the method is not async, or has
 *   `context: true` without a last parameter for the context.
 */
export function action<M extends ActionMethod>(method: M, context: ClassMethodDecoratorContext): M;
export function action(options: ActionOptions): AgentMethodDecorator<ActionMethod>;
export function action(target: object, propertyKey: string | symbol, descriptor: ExperimentalDecoratorsNotSupported): never;
export function action(methodOrOptions: ActionMethod | ActionOptions | object, context?: unknown): unknown {
  if (typeof methodOrOptions === "function") return decorateAction({})(methodOrOptions as ActionMethod, context as ClassMethodDecoratorContext);
  if (context !== undefined) assertStandard(context); // `@action` on a method, called as legacy code calls it
  return decorateAction(methodOrOptions as ActionOptions);
}

/**
 * Declare a loop: an async method started after startup with an `AbortSignal` that aborts at
 * shutdown. It should return when the signal aborts.
 */
export function loop<M extends (this: unknown, signal: AbortSignal) => Promise<unknown>>(method: M, context: ClassMethodDecoratorContext): M;
export function loop(target: object, propertyKey: string | symbol, descriptor: ExperimentalDecoratorsNotSupported): never;
export function loop(method: unknown, context: unknown): unknown {
  assertStandard(context);
  const name = String(context.name);
  requireAsync("loop", name, method);
  record(context, { kind: "loop", name, method: method as AsyncMethod });
  return method;
}

/**
 * Declare a timer: the method runs every `intervalMs` until shutdown, the first time one interval
 * after startup; the next interval starts when a call completes.
 * @throws {AgentDefinitionError} for an interval that is not a positive number.
 */
export function timer(intervalMs: number): AgentMethodDecorator {
  checkInterval(intervalMs);
  return function (method: AsyncMethod, context: unknown): AsyncMethod {
    assertStandard(context);
    const name = String(context.name);
    requireAsync("timer", name, method);
    record(context, { kind: "timer", name, method, intervalMs });
    return method;
  } as AgentMethodDecorator;
}

function checkInterval(intervalMs: number): void {
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new AgentDefinitionError(`@timer interval must be a positive number of ms (got ${intervalMs})`);
  }
}

/**
 * Declare an event handler: the method runs each time the {@link AgentEvent} stored in the agent's
 * property `eventProperty` is set (the event is cleared before each call).
 */
export function event(eventProperty: string): AgentMethodDecorator {
  return function (method: AsyncMethod, context: unknown): AsyncMethod {
    assertStandard(context);
    const name = String(context.name);
    requireAsync("event", name, method);
    record(context, { kind: "event", name, method, event: eventProperty });
    return method;
  } as AgentMethodDecorator;
}

/** The members {@link defineAgent} declares, by method name. */
export interface AgentDefinition {
  /** Actions: method names, or method name to options (as `@action(options)`). */
  readonly actions?: readonly string[] | Readonly<Record<string, ActionOptions>>;
  /** Loops (as `@loop`). */
  readonly loops?: readonly string[];
  /** Timers: method name to interval in ms (as `@timer(ms)`). */
  readonly timers?: Readonly<Record<string, number>>;
  /** Event handlers: method name to the property holding the `AgentEvent` (as `@event(prop)`). */
  readonly events?: Readonly<Record<string, string>>;
  /** Subscriptions: method name to the subject and options (as `@subscribe(subject, options)`). */
  readonly subscriptions?: Readonly<Record<string, SubscribeOptions & { readonly subject: string }>>;
}

/**
 * Declare an agent class's actions, loops, timers, event handlers and subscriptions without decorators: for plain
 * JavaScript, or TypeScript compiled without standard decorators. Call it once, right after the
 * class, before the class is launched; the methods must be async methods of its prototype.
 *
 * ```js
 * class Counter extends Agent {
 *   count = 0;
 *   async increment(by = 1) { return (this.count += by); }
 *   async tick() {}
 * }
 * defineAgent(Counter, { actions: ["increment"], timers: { tick: 1000 } });
 * ```
 * @returns the class.
 * @throws {AgentDefinitionError} for a method the prototype lacks or that is not async, a
 *   protected action name, or a bad timer interval.
 */
export function defineAgent<C extends abstract new (...args: never[]) => unknown>(cls: C, definition: AgentDefinition): C {
  const metaKey = Symbol.metadata as symbol;
  const own = Object.prototype.hasOwnProperty.call(cls, metaKey) ? (cls as unknown as Record<symbol, Record<symbol, MemberSpec[]>>)[metaKey] : undefined;
  const metadata: Record<symbol, MemberSpec[]> =
    own ?? (Object.create((cls as unknown as Record<symbol, object | null>)[metaKey] ?? null) as Record<symbol, MemberSpec[]>);
  if (own === undefined) Object.defineProperty(cls, metaKey, { value: metadata, configurable: true });
  const methodOf = (name: string, kind: string): AsyncMethod => {
    const method = (cls.prototype as Record<string, unknown>)[name];
    if (typeof method !== "function") throw new AgentDefinitionError(`${kind} '${name}' is not a method of ${cls.name || "the class"}`);
    requireAsync(kind, name, method);
    return method as AsyncMethod;
  };
  const actions = Array.isArray(definition.actions)
    ? Object.fromEntries((definition.actions as readonly string[]).map((name) => [name, {}]))
    : ((definition.actions ?? {}) as Record<string, ActionOptions>);
  for (const [name, options] of Object.entries(actions)) {
    const method = (cls.prototype as Record<string, unknown>)[name];
    // An async generator is a streaming action; anything else must be an async method.
    addSpec(metadata, actionSpec(name, isAsyncGeneratorFunction(method) ? method : methodOf(name, "action"), options));
  }
  for (const name of definition.loops ?? []) addSpec(metadata, { kind: "loop", name, method: methodOf(name, "loop") });
  for (const [name, intervalMs] of Object.entries(definition.timers ?? {})) {
    checkInterval(intervalMs);
    addSpec(metadata, { kind: "timer", name, method: methodOf(name, "timer"), intervalMs });
  }
  for (const [name, property] of Object.entries(definition.events ?? {})) {
    addSpec(metadata, { kind: "event", name, method: methodOf(name, "event"), event: property });
  }
  for (const [name, { subject, ...options }] of Object.entries(definition.subscriptions ?? {})) {
    const method = methodOf(name, "subscribe");
    if (subscriptionResolver === undefined) throw new AgentDefinitionError("Subscriptions need academy-nats's subscriptions module: import the library's entry");
    addSpec(metadata, { kind: "subscription", name, method, subscription: subscriptionResolver(subject, options, name) });
  }
  return cls;
}

/** The members of an agent class, its own and inherited (a subclass's method overrides by name). */
export interface AgentSpec {
  readonly actions: ReadonlyMap<string, ActionSpec>;
  readonly loops: readonly LoopSpec[];
  /** Event subscriptions (`@subscribe`). */
  readonly subscriptions: readonly SubscriptionSpec[];
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
  const subscriptions = new Map<string, SubscriptionSpec>();
  for (const c of chain) {
    const metadata = (c as { [Symbol.metadata]?: Record<symbol, MemberSpec[]> })[Symbol.metadata as symbol as typeof Symbol.metadata];
    if (metadata == null || !Object.prototype.hasOwnProperty.call(metadata, SPECS)) continue;
    for (const spec of metadata[SPECS] ?? []) {
      actions.delete(spec.name);
      loops.delete(spec.name);
      subscriptions.delete(spec.name);
      if (spec.kind === "action") actions.set(spec.name, spec);
      else if (spec.kind === "subscription") subscriptions.set(spec.name, spec);
      else loops.set(spec.name, spec);
    }
  }
  const spec: AgentSpec = { actions, loops: [...loops.values()], subscriptions: [...subscriptions.values()] };
  specCache.set(cls, spec);
  return spec;
}

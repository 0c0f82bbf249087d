/**
 * Handles: references to an agent anywhere, through which its actions are called.
 */
import type { ActionContext, Agent } from "../agent/agent.ts";
import type { AgentId } from "../identifiers.ts";
import { HandleReference } from "../protocol/codec.ts";
import { currentAgentClient } from "./client-scope.ts";
import type { RequestBody, ResponseMessage } from "../protocol/messages.ts";
import { MessageType } from "../protocol/messages.ts";
import { ActionKindError } from "../errors.ts";

/** Per-call options of a remote call. */
export interface CallOptions {
  /**
   * Give up after this many ms: a cancel request is sent to the agent (its action's signal aborts)
   * and the call rejects with `RequestTimeoutError`.
   * @defaultValue no timeout
   */
  timeoutMs?: number;
  /** Abort the call: a cancel request is sent and the call rejects with `ActionCancelledError`. */
  signal?: AbortSignal;
  /**
   * Receives the action's progress reports (`this.actionContext.reportProgress(...)`), in order,
   * before the result. Without it the agent sends none. An exception it throws is ignored.
   */
  onProgress?: (progress: unknown) => void;
}

/** Options of a stream (`handle.stream`, `handle.invokeStream`, `handle.with`). */
export interface StreamOptions extends CallOptions {
  /**
   * Most items the agent runs ahead of what the consumer has taken: items buffered on each side
   * and in the exchange stay within it, so a stream holds at most `window` x the item size in
   * memory on each side. A positive integer; lower it for large items. A larger window streams
   * faster when the consumer keeps up (docs/BENCHMARKS.md, *Streaming*).
   * @defaultValue 1024 (`DEFAULT_STREAM_WINDOW`)
   */
  window?: number;
  /**
   * Give up when the consumer has waited this many ms for the next item (a cancel request is
   * sent; the iteration throws `RequestTimeoutError`). `timeoutMs` bounds the whole stream.
   * @defaultValue no limit
   */
  itemTimeoutMs?: number;
}

/** Options of `Handle.shutdown`. */
export interface HandleShutdownOptions {
  /** Override the agent's config: terminate its mailbox (`true`) or keep it (`false`). */
  terminate?: boolean;
}

/** @internal What a handle needs from its exchange client. */
export interface HandleClient {
  /**
   * Send a request to `dest` and wait for its response. On timeout or abort the call rejects
   * (`RequestTimeoutError`, `ActionCancelledError` or `PingCancelledError`); for actions a cancel
   * request is sent.
   */
  request(dest: AgentId, body: RequestBody, options: CallOptions): Promise<ResponseMessage>;
  /** Send a request that nobody answers; resolves once the exchange has taken it. */
  post(dest: AgentId, body: RequestBody): Promise<void>;
  /** Open a stream of a streaming action (sent when its first item is asked for). */
  stream(dest: AgentId, action: string, args: readonly unknown[], options: StreamOptions): AsyncIterableIterator<unknown>;
}

type HandleApiName = "action" | "invoke" | "stream" | "invokeStream" | "proxyCall" | "sendCall" | "with" | "ping" | "shutdown" | "agentId";

/**
 * The names a handle's typed proxy offers: `A`'s public string members, except those inherited
 * from `Agent` (the built-in actions `agentDescribe` and `agentStats` excepted) and the handle's
 * own methods. Decided by name only, never by a member's type, so that agents holding handles to
 * their own type or to each other (a ring, a team) type-check: a member typed `Handle<Self>` would
 * otherwise need the proxy's names to work out the proxy's names.
 */
type ProxyKey<K> = K extends HandleApiName
  ? never
  : K extends Exclude<keyof Agent, "agentDescribe" | "agentStats">
    ? never
    : K extends string
      ? K
      : never;

/**
 * The proxy's member `K`: a call of the action when `A[K]` is an async method, the stream of its
 * items when it is an `async *` method, else `never` (not callable).
 */
type ProxyMember<A, K extends keyof A> = A[K] extends (...args: any[]) => Promise<any>
  ? (...args: ActionArgs<A, K>) => Promise<ActionResult<A, K>>
  : A[K] extends (...args: any[]) => AsyncGenerator<any, any, any>
    ? (...args: ActionArgs<A, K>) => AsyncIterableIterator<StreamItem<A, K>>
    : never;

/** Names of `A`'s methods that can be called as actions (async, not inherited from `Agent`). */
export type ActionName<A> = {
  [K in keyof A]-?: ProxyKey<K> extends never ? never : A[K] extends (...args: any[]) => Promise<any> ? K : never;
}[keyof A] &
  string;

/** Names of `A`'s streaming actions (`async *` methods, not inherited from `Agent`). */
export type StreamName<A> = {
  [K in keyof A]-?: ProxyKey<K> extends never ? never : A[K] extends (...args: any[]) => AsyncGenerator<any, any, any> ? K : never;
}[keyof A] &
  string;

/** The items streaming action `K` yields. */
export type StreamItem<A, K extends keyof A> = A[K] extends (...args: any[]) => AsyncGenerator<infer T, any, any> ? T : never;

/** A parameter list without its last parameter when that is an `ActionContext` (required or optional). */
type StripContext<P extends readonly unknown[]> = P extends readonly [...infer Rest, ActionContext]
  ? Rest
  : P extends readonly [...infer Rest, (ActionContext | undefined)?]
    ? Rest
    : P;

/**
 * The arguments a caller passes to action `K`: its parameters without a last `ActionContext`
 * one, which the engine supplies (`@action({ context: true })`). A call cannot pass a value in
 * the context's place.
 */
export type ActionArgs<A, K extends keyof A> = A[K] extends (...args: infer P) => any ? StripContext<P> : never;

/** What action `K` resolves to. */
export type ActionResult<A, K extends keyof A> = A[K] extends (...args: any[]) => Promise<infer R> ? R : never;

/**
 * The typed proxy part of a handle: one method per action (other public members of the agent
 * class are there typed `never`, so they cannot be called).
 */
export type ActionProxy<A> = {
  readonly [K in keyof A as ProxyKey<K>]: ProxyMember<A, K>;
};

/**
 * A reference to an agent: `handle.increment(3)`, `handle.action("increment", 3)`,
 * `handle.with({ timeoutMs: 500 }).increment(3)`, `handle.ping()`, `handle.shutdown()`; for a
 * streaming action `for await (const t of handle.tokens(prompt))` or `handle.stream("tokens", prompt)`.
 * Handles can be passed as action arguments and results; they arrive bound to the receiver.
 * Inside an agent (its actions, loops and hooks) every handle sends from that agent's own
 * client, whichever client made it, as in Academy.
 */
export type Handle<A extends Agent = Agent> = AgentHandle<A> & ActionProxy<A>;

/** Property names that must never turn into actions (promise, test-framework and inspection probes). */
const NOT_ACTIONS: ReadonlySet<string> = new Set([
  "then",
  "catch",
  "finally",
  "toJSON",
  "asymmetricMatch",
  "nodeType",
  "tagName",
  "inspect",
  "valueOf",
  "length",
]);

function isActionProperty(prop: string): boolean {
  return !NOT_ACTIONS.has(prop) && !prop.startsWith("$$") && !prop.startsWith("@@") && !prop.startsWith("__");
}

/** What an action call resolves with: its result (undefined for a response without one). */
function resultOf(response: ResponseMessage): unknown {
  return response.type === MessageType.ActionResponse ? response.result : undefined;
}

/**
 * Calls through typed proxies not yet decided (call or stream), in the order they were made. A
 * call made any other way (`action`, `invoke`, `ping`, `shutdown`) first sends these as ordinary
 * calls, so that one client's requests still reach the exchange in the order they were made.
 */
const undecided: ProxyCall[] = [];

function sendUndecided(): void {
  while (undecided.length > 0) undecided.shift()!.send();
}

/**
 * The microtask each proxy call queues: sends the oldest call still undecided. Calls decided
 * sooner (iterated, awaited, or sent before a call by name) leave the queue, so a microtask may
 * send a later one: by the time any microtask runs, the synchronous step that made it is over, and
 * the call was not iterated there.
 */
function sendOldest(): void {
  undecided.shift()?.send();
}

/**
 * A call through the typed proxy: a promise of the action's result (a thenable: `await`,
 * `then`, `catch`, `finally`) that is also an async iterable of a streaming action's items. It is
 * a stream if its iterator is asked for in the synchronous step that made it; otherwise it is
 * sent as an ordinary call at the end of that step, or sooner when awaited or when a call by name
 * comes after it. One class with its methods on the prototype: no closure or property per call.
 */
class ProxyCall implements Promise<unknown>, AsyncIterable<unknown> {
  readonly #handle: AgentHandle;
  readonly #name: string;
  readonly #args: readonly unknown[];
  #sent: Promise<unknown> | undefined;
  #streamed = false;

  constructor(handle: AgentHandle, name: string, args: readonly unknown[]) {
    this.#handle = handle;
    this.#name = name;
    this.#args = args;
    undecided.push(this);
    queueMicrotask(sendOldest);
  }

  get [Symbol.toStringTag](): string {
    return "ProxyCall";
  }

  /** Send it as an ordinary call, once; the promise of its result. */
  send(): Promise<unknown> {
    if (this.#sent === undefined) {
      this.#leaveQueue();
      this.#sent = this.#streamed
        ? Promise.reject(this.#kindError())
        : this.#handle.sendCall(this.#name, this.#args, {});
    }
    return this.#sent;
  }

  then<R1 = unknown, R2 = never>(
    onfulfilled?: ((value: unknown) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.send().then(onfulfilled, onrejected);
  }

  catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<unknown> {
    return this.send().catch(onrejected);
  }

  finally(onfinally?: (() => void) | null): Promise<unknown> {
    return this.send().finally(onfinally);
  }

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    if (this.#sent !== undefined || this.#streamed) throw this.#kindError();
    this.#streamed = true;
    this.#leaveQueue();
    return this.#handle.invokeStream(this.#name, this.#args);
  }

  #leaveQueue(): void {
    const at = undecided.indexOf(this);
    if (at >= 0) undecided.splice(at, 1);
  }

  #kindError(): ActionKindError {
    return new ActionKindError(
      `The call of '${this.#name}' was ${this.#streamed ? "iterated as a stream" : "sent as an ordinary action"}: ` +
        "iterate a stream where it is made, and await an ordinary call",
      { action: this.#name, agentId: this.#handle.agentId.uid, streaming: this.#streamed },
    );
  }
}

/**
 * A call's options: a handle's `defaults`, overridden by `options` (no copy when `options` is
 * empty, the common case). A function, not a method: handles are proxies, which have no private
 * members of their class.
 */
function callOptions<O extends CallOptions>(defaults: O, options: O): O {
  for (const _ in options) return { ...defaults, ...options };
  return defaults;
}

/**
 * The handle class behind {@link Handle}. Construct handles with `client.getHandle(id)` or
 * `manager.getHandle(id)`, not directly.
 */
export class AgentHandle<A extends Agent = Agent> extends HandleReference {
  readonly agentId: AgentId<A>;
  private readonly client: HandleClient;
  private readonly defaults: StreamOptions;
  private readonly actionFns = new Map<string, (...args: unknown[]) => Promise<unknown>>();

  constructor(agentId: AgentId<A>, client: HandleClient, defaults: StreamOptions = {}) {
    super();
    this.agentId = agentId;
    this.client = client;
    this.defaults = defaults;
    // The constructor returns the typed proxy over this instance.
    return new Proxy(this, {
      get(target, prop, receiver) {
        if (typeof prop === "symbol" || prop in target) return Reflect.get(target, prop, receiver);
        if (!isActionProperty(prop)) return undefined;
        let fn = target.actionFns.get(prop);
        if (fn === undefined) {
          fn = (...args: unknown[]) => target.proxyCall(prop, args);
          target.actionFns.set(prop, fn);
        }
        return fn;
      },
    });
  }

  /**
   * Call an action by name. Rejects with the agent's exception (same `name` and `message`).
   * @throws {BadEntityIdError | AgentTerminatedError} if the agent is missing or terminated.
   * @throws {UnknownActionError} if the agent has no such action.
   */
  action<K extends ActionName<A>>(name: K, ...args: ActionArgs<A, K>): Promise<ActionResult<A, K>>;
  action(name: string, ...args: unknown[]): Promise<unknown>;
  action(name: string, ...args: unknown[]): Promise<unknown> {
    return this.invoke(name, args);
  }

  /**
   * Call an action with explicit per-call options.
   * @throws {RequestTimeoutError} after `timeoutMs` (a cancel request is sent to the agent).
   * @throws {ActionCancelledError} when `signal` aborts (a cancel request is sent) or the agent cancels.
   */
  invoke(name: string, args: readonly unknown[] = [], options: CallOptions = {}): Promise<unknown> {
    if (undecided.length > 0) sendUndecided();
    return this.sendCall(name, args, options);
  }

  /** @internal Send an action request (no proxy calls are waiting to go before it). */
  sendCall(name: string, args: readonly unknown[], options: CallOptions): Promise<unknown> {
    // Not async (one promise fewer per call): what it throws becomes a rejection.
    try {
      const resolved = callOptions<CallOptions>(this.defaults, options);
      return (currentAgentClient() ?? this.client)
        .request(
          this.agentId,
          resolved.onProgress === undefined
            ? { type: MessageType.ActionRequest, action: name, args }
            : { type: MessageType.ActionRequest, action: name, args, progress: true },
          resolved,
        )
        .then(resultOf);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The items of a streaming action (an `async *` method), in order, each once: an async
   * iterator whose request is sent when the first item is asked for. It ends when the generator
   * returns, and throws what the generator threw (same `name` and `message`) after the items
   * before it. Leaving the loop early (`break`) cancels the stream: the generator's `finally`
   * runs in the agent. Options come from `with(...)`; see `invokeStream` for per-call ones.
   * @throws {ActionKindError} (when iterated) if the action is not a streaming one.
   */
  stream<K extends StreamName<A>>(name: K, ...args: ActionArgs<A, K>): AsyncIterableIterator<StreamItem<A, K>>;
  stream(name: string, ...args: unknown[]): AsyncIterableIterator<unknown>;
  stream(name: string, ...args: unknown[]): AsyncIterableIterator<unknown> {
    return this.invokeStream(name, args);
  }

  /**
   * A stream with explicit per-call options (`window`, `itemTimeoutMs`, `timeoutMs`, `signal`).
   * @throws {RequestTimeoutError} (when iterated) after `timeoutMs` overall or `itemTimeoutMs`
   *   waiting for one item (a cancel request is sent).
   * @throws {ActionCancelledError} (when iterated) when `signal` aborts or the agent cancels the
   *   stream (it shut down, say).
   * @throws {StreamInterruptedError} (when iterated) if the agent lost the stream (a crash).
   * @throws {InvalidConfigError} for a `window` that is not a positive integer.
   */
  invokeStream(name: string, args: readonly unknown[] = [], options: StreamOptions = {}): AsyncIterableIterator<unknown> {
    return (currentAgentClient() ?? this.client).stream(this.agentId, name, args, callOptions(this.defaults, options));
  }

  /**
   * @internal A call through the typed proxy: a promise of the action's result, which is also an
   * async iterable of a streaming action's items. Which one is decided at the end of the current
   * synchronous step: asked for its iterator by then (`for await (const t of handle.tokens())`),
   * it is a stream; else it is sent as an ordinary call (sooner, if a call by name is made first
   * meanwhile: requests keep the order they were made in).
   */
  proxyCall(name: string, args: readonly unknown[]): Promise<unknown> & AsyncIterable<unknown> {
    return new ProxyCall(this as AgentHandle, name, args);
  }

  /** A handle to the same agent whose calls use these options by default. */
  with(options: StreamOptions): Handle<A> {
    return new AgentHandle<A>(this.agentId, this.client, { ...this.defaults, ...options }) as Handle<A>;
  }

  /**
   * Round trip to the agent and back; waits for the agent's startup to finish.
   * @returns the round-trip time in ms.
   * @throws {RequestTimeoutError} after `timeoutMs`.
   */
  async ping(options: CallOptions = {}): Promise<number> {
    if (undecided.length > 0) sendUndecided();
    const start = performance.now();
    await (currentAgentClient() ?? this.client).request(this.agentId, { type: MessageType.PingRequest }, callOptions(this.defaults, options));
    return performance.now() - start;
  }

  /**
   * Ask the agent to shut down. Only sends, as Academy's `Handle.shutdown` does: resolves once the
   * request is in the agent's mailbox, not when the agent has read it or stopped (the agent reads
   * it after its startup, whenever it runs). To wait for the agent to stop, use
   * `Manager.shutdown` (blocking by default) or `Manager.wait`.
   * @throws {AgentTerminatedError} if the agent's mailbox is already terminated.
   * @throws {BadEntityIdError} if the agent does not exist.
   */
  async shutdown(options: HandleShutdownOptions = {}): Promise<void> {
    if (undecided.length > 0) sendUndecided();
    await (currentAgentClient() ?? this.client).post(this.agentId, { type: MessageType.ShutdownRequest, terminate: options.terminate });
  }

  override toString(): string {
    return `Handle<${this.agentId.toString()}>`;
  }

  toJSON(): { agentId: ReturnType<AgentId["toJSON"]> } {
    return { agentId: this.agentId.toJSON() };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }
}

/** Whether `value` is a handle. */
export function isHandle(value: unknown): value is Handle {
  return value instanceof AgentHandle;
}

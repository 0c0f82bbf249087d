/**
 * Handles: references to an agent anywhere, through which its actions are called.
 */
import type { ActionContext, Agent } from "../agent/agent.ts";
import type { AgentId } from "../identifiers.ts";
import { HandleReference } from "../protocol/codec.ts";
import type { RequestBody, ResponseMessage } from "../protocol/messages.ts";
import { MessageType } from "../protocol/messages.ts";

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
}

/** Options of `Handle.shutdown`. */
export interface HandleShutdownOptions {
  /** Override the agent's config: terminate its mailbox (`true`) or keep it (`false`). */
  terminate?: boolean;
  /** Give up waiting for the agent's acknowledgement after this many ms. */
  timeoutMs?: number;
}

/** @internal What a handle needs from its exchange client. */
export interface HandleClient {
  /**
   * Send a request to `dest` and wait for its response. On timeout or abort the call rejects
   * (`RequestTimeoutError`, `ActionCancelledError` or `PingCancelledError`); for actions a cancel
   * request is sent.
   */
  request(dest: AgentId, body: RequestBody, options: CallOptions): Promise<ResponseMessage>;
}

type HandleApiName = "action" | "invoke" | "with" | "ping" | "shutdown" | "agentId";

/** Names of `A`'s methods that can be called as actions (async, not inherited from `Agent`). */
export type ActionName<A> = {
  [K in keyof A]-?: K extends HandleApiName
    ? never
    : K extends Exclude<keyof Agent, "agentDescribe">
      ? never
      : A[K] extends (...args: any[]) => Promise<any>
        ? K
        : never;
}[keyof A] &
  string;

type StripContext<P extends readonly unknown[]> = P extends readonly [...infer Rest, ActionContext] ? Rest : P;

/** The arguments a caller passes to action `K` (an `ActionContext` last parameter is supplied by the engine). */
export type ActionArgs<A, K extends keyof A> = A[K] extends (...args: infer P) => any ? StripContext<P> : never;

/** What action `K` resolves to. */
export type ActionResult<A, K extends keyof A> = A[K] extends (...args: any[]) => Promise<infer R> ? R : never;

/** The typed proxy part of a handle: one method per action. */
export type ActionProxy<A> = {
  readonly [K in ActionName<A>]: (...args: ActionArgs<A, K>) => Promise<ActionResult<A, K>>;
};

/**
 * A reference to an agent: `handle.increment(3)`, `handle.action("increment", 3)`,
 * `handle.with({ timeoutMs: 500 }).increment(3)`, `handle.ping()`, `handle.shutdown()`.
 * Handles can be passed as action arguments and results; they arrive bound to the receiver.
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

/**
 * A call's options: a handle's `defaults`, overridden by `options` (no copy when `options` is
 * empty, the common case). A function, not a method: handles are proxies, which have no private
 * members of their class.
 */
function callOptions(defaults: CallOptions, options: CallOptions): CallOptions {
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
  private readonly defaults: CallOptions;
  private readonly actionFns = new Map<string, (...args: unknown[]) => Promise<unknown>>();

  constructor(agentId: AgentId<A>, client: HandleClient, defaults: CallOptions = {}) {
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
          fn = (...args: unknown[]) => target.invoke(prop, args);
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
  async invoke(name: string, args: readonly unknown[] = [], options: CallOptions = {}): Promise<unknown> {
    const response = await this.client.request(
      this.agentId,
      { type: MessageType.ActionRequest, action: name, args },
      callOptions(this.defaults, options),
    );
    return response.type === MessageType.ActionResponse ? response.result : undefined;
  }

  /** A handle to the same agent whose calls use these options by default. */
  with(options: CallOptions): Handle<A> {
    return new AgentHandle<A>(this.agentId, this.client, { ...this.defaults, ...options }) as Handle<A>;
  }

  /**
   * Round trip to the agent and back; waits for the agent's startup to finish.
   * @returns the round-trip time in ms.
   * @throws {RequestTimeoutError} after `timeoutMs`.
   */
  async ping(options: CallOptions = {}): Promise<number> {
    const start = performance.now();
    await this.client.request(this.agentId, { type: MessageType.PingRequest }, callOptions(this.defaults, options));
    return performance.now() - start;
  }

  /**
   * Ask the agent to shut down; resolves when the agent has acknowledged (not when it has stopped).
   * @throws {AgentTerminatedError} if the agent's mailbox is already terminated.
   */
  async shutdown(options: HandleShutdownOptions = {}): Promise<void> {
    await this.client.request(
      this.agentId,
      { type: MessageType.ShutdownRequest, terminate: options.terminate },
      { timeoutMs: options.timeoutMs ?? this.defaults.timeoutMs, signal: this.defaults.signal },
    );
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

/**
 * The action running in the current async context. The engine runs each action's method inside
 * an `AsyncLocalStorage` scope holding the action's request data; caller-side interceptors read
 * it to carry values from the request an action handles to the calls that action makes (the
 * deadline interceptors do exactly that).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { MessageHeaders } from "../protocol/headers.ts";

/** What the engine knows of the action running in the current async context. */
export interface ActionScope {
  /** Uid of the agent running the action. */
  readonly agentId: string;
  /** The action's name. */
  readonly action: string;
  /** The request's tag. */
  readonly tag: string;
  /** Uid of the caller's mailbox (absent for requests from callers without one). */
  readonly source: string | undefined;
  /** The request's headers, as the caller set them (absent when it set none). */
  readonly headers: MessageHeaders | undefined;
  /** The action's abort signal: aborts when the caller cancels, a deadline passes, or the agent shuts down. */
  readonly signal: AbortSignal;
}

/**
 * @internal The key under which the engine's scope objects carry the running agent's exchange
 * client, so that handles used inside the agent send from that agent's mailbox
 * (`exchange/client-scope.ts`). Not part of {@link ActionScope}.
 */
export const SCOPE_CLIENT: unique symbol = Symbol("academy.scopeClient");

/** Marks a store that is an agent's, not an action's (its loops, timers, hooks). */
const AGENT_ONLY: unique symbol = Symbol("academy.agentOnly");

/** The store of an agent's code outside its actions: only its client. */
interface AgentOnlyScope {
  readonly [AGENT_ONLY]: true;
  readonly [SCOPE_CLIENT]: unknown;
}

/**
 * One storage for both: a second `AsyncLocalStorage` would make every promise of the process
 * carry one more store (measured: about 10% more time per in-process call).
 */
const storage = new AsyncLocalStorage<ActionScope | AgentOnlyScope>();

/**
 * The action running in the current async context: inside an action's method, and in everything
 * it calls or awaits (caller-side interceptors of the calls it makes included). `undefined`
 * elsewhere (loops, startup and shutdown hooks, code outside agents).
 */
export function currentAction(): ActionScope | undefined {
  const store = storage.getStore();
  return store === undefined || AGENT_ONLY in store ? undefined : store;
}

/** @internal Whether any scope (an action's, or an agent's) is current. */
export function inAnyScope(): boolean {
  return storage.getStore() !== undefined;
}

/** @internal The client carried by the current scope (the running agent's), if any. */
export function currentScopeClient(): unknown {
  return (storage.getStore() as { readonly [SCOPE_CLIENT]?: unknown } | undefined)?.[SCOPE_CLIENT];
}

/**
 * @internal Call `fn(arg)` as the agent whose client is `client`, outside any action: the engine
 * runs an agent's startup, loops and shutdown this way.
 */
export function runInAgentScope<T, R>(client: unknown, fn: (arg: T) => R, arg: T): R {
  const scope: AgentOnlyScope = { [AGENT_ONLY]: true, [SCOPE_CLIENT]: client };
  return storage.run(scope, fn, arg);
}

/**
 * @internal Call `fn` with `thisArg` and `args` inside `scope` (no closure per call). The engine
 * runs every action this way.
 */
export function runInActionScope<R>(scope: ActionScope, fn: (...args: unknown[]) => R, thisArg: unknown, args: readonly unknown[]): R {
  return storage.run(scope, Reflect.apply as (fn: (...args: unknown[]) => R, thisArg: unknown, args: readonly unknown[]) => R, fn, thisArg, args);
}

/**
 * @internal Call `fn(arg)` outside any scope, an action's or an agent's. Deliveries and agent
 * runs start this way, so that a receiver never runs in the scope of the action or agent that
 * sent the message, opened the connection or launched the agent.
 */
export function runOutsideActionScope<T, R>(fn: (arg: T) => R, arg: T): R {
  if (storage.getStore() === undefined) return fn(arg);
  return storage.run(undefined as unknown as ActionScope, fn, arg);
}

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

const storage = new AsyncLocalStorage<ActionScope>();

/**
 * The action running in the current async context: inside an action's method, and in everything
 * it calls or awaits (caller-side interceptors of the calls it makes included). `undefined`
 * elsewhere (loops, startup and shutdown hooks, code outside agents).
 */
export function currentAction(): ActionScope | undefined {
  return storage.getStore();
}

/**
 * @internal Call `fn` with `thisArg` and `args` inside `scope` (no closure per call). The engine
 * runs every action this way.
 */
export function runInActionScope<R>(scope: ActionScope, fn: (...args: unknown[]) => R, thisArg: unknown, args: readonly unknown[]): R {
  return storage.run(scope, Reflect.apply as (fn: (...args: unknown[]) => R, thisArg: unknown, args: readonly unknown[]) => R, fn, thisArg, args);
}

/**
 * @internal Call `fn(arg)` outside any action scope. Deliveries and agent runs start this way, so
 * that a receiver never runs in the scope of the action that sent the message, opened the
 * connection or launched the agent.
 */
export function runOutsideActionScope<T, R>(fn: (arg: T) => R, arg: T): R {
  if (storage.getStore() === undefined) return fn(arg);
  return storage.run(undefined as unknown as ActionScope, fn, arg);
}

/**
 * Interceptors as an exchange factory holds them, and how a chain of hooks is composed: once,
 * when a client or an engine is made, so that a call costs one function call per hook and
 * nothing when there is none.
 */
import { InvalidConfigError } from "../errors.ts";
import type { AgentInterceptor } from "./agent-interceptor.ts";
import type { CallerInterceptor } from "./caller-interceptor.ts";
import { deadlineInterceptors } from "./deadline.ts";
import { tracingInterceptors } from "./tracing.ts";

/** Interceptors an exchange factory is given (`interceptors` option). */
export interface InterceptorOptions {
  /**
   * Hooks of every exchange client the factory makes (users' and agents'), first one outermost.
   * @defaultValue none
   */
  caller?: readonly CallerInterceptor[];
  /**
   * Hooks of every agent run on the factory's exchange, first one outermost.
   * @defaultValue none
   */
  agent?: readonly AgentInterceptor[];
}

/** The complete interceptor lists of an exchange factory, built-in ones (tracing, deadlines) first. */
export interface Interceptors {
  readonly caller: readonly CallerInterceptor[];
  readonly agent: readonly AgentInterceptor[];
}

/** A hook: `(input, next) => output`. */
type Hook<I, O> = (input: I, next: (input: I) => O) => O;

/** The hooks named `K` of interceptors of type `T`, as functions of `(input, next)`. */
type HookOf<T, K extends keyof T> = NonNullable<T[K]> extends Hook<infer I, infer O> ? Hook<I, O> : never;

/** The function a chain of hooks named `K` composes to. */
export type Chain<T, K extends keyof T> = HookOf<T, K> extends Hook<infer I, infer O> ? (input: I) => O : never;

/**
 * Compose the hooks named `method` of `interceptors` around `terminal` (the first interceptor is
 * the outermost), as the Temporal SDK's `composeInterceptors` does, once.
 * @returns the chain, or `undefined` when no interceptor has the hook (then call the terminal
 * directly, with no input object to build).
 */
export function composeInterceptors<T extends object, K extends keyof T>(
  interceptors: readonly T[],
  method: K,
  terminal: Chain<T, K>,
): Chain<T, K> | undefined {
  let next = terminal as (input: unknown) => unknown;
  let composed = false;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const interceptor = interceptors[i]!;
    const hook = interceptor[method] as Hook<unknown, unknown> | undefined;
    if (hook === undefined) continue;
    const inner = next;
    next = (input) => hook.call(interceptor, input, inner);
    composed = true;
  }
  return composed ? (next as Chain<T, K>) : undefined;
}

/** The built-in interceptors a factory turns on (its options of the same names). */
export interface BuiltInInterceptors {
  /** @defaultValue true */
  readonly deadlines?: boolean | undefined;
  /** @defaultValue true */
  readonly tracing?: boolean | undefined;
  /** The `messaging.system` of the factory's spans (`nats`). */
  readonly messagingSystem?: string | undefined;
}

/**
 * The complete lists of a factory's interceptors: the tracing interceptors first (outermost, so
 * that a span covers what the others do) when `tracing` is on, then the deadline interceptors
 * when `deadlines` is on, then `options`' own, in their order.
 * @param builtIns - the factory's `deadlines` and `tracing` options (a boolean: `deadlines` alone).
 * @throws {InvalidConfigError} when a list is not an array of objects, or `deadlines` or `tracing` not a boolean.
 */
export function resolveInterceptors(options: InterceptorOptions | undefined, builtIns: BuiltInInterceptors | boolean | undefined = {}): Interceptors {
  const { deadlines = true, tracing = true, messagingSystem } = typeof builtIns === "object" ? builtIns : { deadlines: builtIns };
  for (const [option, value] of [["deadlines", deadlines], ["tracing", tracing]] as const) {
    if (typeof value !== "boolean") throw new InvalidConfigError(`${option} must be true or false (got ${String(value)})`, { option });
  }
  const caller: CallerInterceptor[] = [];
  const agent: AgentInterceptor[] = [];
  if (tracing) {
    const traced = tracingInterceptors({ messagingSystem });
    caller.push(traced.caller);
    agent.push(traced.agent);
  }
  if (deadlines) {
    const builtIn = deadlineInterceptors();
    caller.push(builtIn.caller);
    agent.push(builtIn.agent);
  }
  caller.push(...checkedList(options?.caller, "caller"));
  agent.push(...checkedList(options?.agent, "agent"));
  return Object.freeze({ caller: Object.freeze(caller), agent: Object.freeze(agent) });
}

function checkedList<T>(list: readonly T[] | undefined, side: string): readonly T[] {
  if (list === undefined) return Object.freeze([]);
  if (!Array.isArray(list) || list.some((interceptor) => typeof interceptor !== "object" || interceptor === null)) {
    throw new InvalidConfigError(`interceptors.${side} must be an array of interceptor objects`, { option: "interceptors" });
  }
  return Object.freeze([...list]);
}

/**
 * Which client a handle sends from. A handle is bound to the client that made it, but inside an
 * agent (its actions, loops, timers, event handlers, startup and shutdown hooks, and everything
 * they await) every handle sends from that agent's own client, as Academy's handles do (they look
 * their client up in a context variable). So a handle an agent was given before it ran, say one
 * stored in an instance passed to `launch`, calls as the agent and not as whoever made it.
 */
import { currentScopeClient, runInAgentScope } from "../interceptors/action-scope.ts";
import type { HandleClient } from "./handle.ts";

/**
 * The client of the agent whose code runs in the current async context: the running action's, or
 * the agent's (its engine runs it in a scope of its own); undefined outside agents.
 */
export function currentAgentClient(): HandleClient | undefined {
  return currentScopeClient() as HandleClient | undefined;
}

/** @internal Call `fn(arg)` as the agent whose client is `client` (the engine runs an agent this way). */
export function runAsAgent<T, R>(client: HandleClient, fn: (arg: T) => R, arg: T): R {
  return runInAgentScope(client, fn, arg);
}

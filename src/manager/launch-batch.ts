/**
 * Launching several agents at once whose constructor arguments include each other's handles
 * (Academy's `launch_batch`): a ring, a team, a coordinator and its workers. Every agent is
 * registered first, so every id exists; then each is launched with arguments that may hold its
 * siblings' handles, on any executor (handles travel as ids and arrive bound to each agent).
 */
import { describeValue, isAgentInstance, isAgentSubclass } from "../agent/agent.ts";
import type { Agent } from "../agent/agent.ts";
import type { AgentClass } from "../agent/agent-type.ts";
import type { RuntimeConfig } from "../agent/runtime-config.ts";
import { AgentDefinitionError, UnknownExecutorError } from "../errors.ts";
import type { Handle } from "../exchange/handle.ts";
import type { AgentRegistration } from "../exchange/transport.ts";
import type { LaunchOptions } from "./manager.ts";

/** One agent of a batch (see `Manager.launchBatch`). */
export interface BatchLaunch<A extends Agent = Agent> {
  /** The agent class, or (event-loop executor only) an instance. */
  readonly agent: AgentClass<A> | A;
  /**
   * Constructor arguments, or a function of the batch's handles (in the order of the batch,
   * this agent's own included) that returns them. Ignored when launching an instance.
   */
  readonly args?: readonly unknown[] | ((handles: readonly Handle[]) => readonly unknown[]);
  /** Display name, used when registering. */
  readonly name?: string;
  readonly config?: RuntimeConfig;
  /** Executor name. */
  readonly executor?: string;
  /** Override the manager's `maxRetries` for this agent. */
  readonly maxRetries?: number;
}

/** The agent type of a batch entry. */
export type BatchAgent<L> = L extends BatchLaunch<infer A> ? A : Agent;

/** What a batch launch needs of its manager. */
export interface BatchManager {
  readonly executors: readonly string[];
  registerAgents(agents: ReadonlyArray<{ agent: AgentClass; name?: string | undefined }>): Promise<AgentRegistration[]>;
  getHandle<A extends Agent>(agent: AgentRegistration<A>): Handle<A>;
  launch<A extends Agent>(agent: AgentClass<A> | A, options: LaunchOptions<A>): Promise<Handle<A>>;
  terminateUnlaunched(registration: AgentRegistration): Promise<void>;
}

/**
 * Register every agent of `launches`, then launch each in order with its arguments (made from the
 * batch's handles when `args` is a function).
 * @returns the handles, in the order of `launches`.
 * @throws {AgentDefinitionError | UnknownExecutorError} before registering anything, for an entry
 *   that is not an agent or names no executor of the manager.
 * @throws the first launch's error; as with Academy's batch, agents launched before it keep
 *   running, and the registrations of those after it (it included) are terminated.
 */
export async function launchBatch(manager: BatchManager, launches: readonly BatchLaunch[]): Promise<Handle[]> {
  for (const entry of launches) {
    const isClass = typeof entry.agent === "function";
    if (isClass ? !isAgentSubclass(entry.agent) : !isAgentInstance(entry.agent)) {
      throw new AgentDefinitionError(`launchBatch() takes Agent subclasses or instances (got ${describeValue(entry.agent)})`);
    }
    if (entry.executor !== undefined && !manager.executors.includes(entry.executor)) {
      throw new UnknownExecutorError(`No executor named '${entry.executor}'`, { executor: entry.executor });
    }
  }
  const registrations = await manager.registerAgents(
    launches.map((entry) => ({
      agent: (typeof entry.agent === "function" ? entry.agent : entry.agent.constructor) as AgentClass,
      name: entry.name,
    })),
  );
  const handles = registrations.map((registration) => manager.getHandle(registration));
  let launched = 0;
  try {
    for (const [i, entry] of launches.entries()) {
      const args = typeof entry.args === "function" ? entry.args(handles) : entry.args;
      await manager.launch(entry.agent, {
        registration: registrations[i]!,
        ...(args === undefined ? {} : { args }),
        ...(entry.config === undefined ? {} : { config: entry.config }),
        ...(entry.executor === undefined ? {} : { executor: entry.executor }),
        ...(entry.maxRetries === undefined ? {} : { maxRetries: entry.maxRetries }),
      });
      launched++;
    }
  } catch (error) {
    await Promise.all(registrations.slice(launched).map((registration) => manager.terminateUnlaunched(registration)));
    throw error;
  }
  return handles;
}

import type { Agent } from "../agent/agent.ts";
import type { AgentClass } from "../agent/agent-type.ts";
import { ExecutorError } from "../errors.ts";
import type { AgentExecution, AgentExecutor, LaunchSpec } from "./executor.ts";
import { buildFromArgs, runAgentOnce, runWithRetries } from "./executor.ts";

/**
 * Runs agents in the manager's own event loop: the default executor, and the only one that
 * accepts ready-made agent instances. A retried instance is run again as the same object.
 */
export class EventLoopExecutor implements AgentExecutor {
  execute<A extends Agent>(spec: LaunchSpec<A>): AgentExecution {
    if (typeof spec.agent === "string") {
      return { done: Promise.reject(new ExecutorError(`The event-loop executor runs agent classes and instances, not type names ('${spec.agent}')`, { executor: "event-loop" })) };
    }
    const source =
      typeof spec.agent === "function" ? buildFromArgs(spec.agent as AgentClass<A>, spec.args) : (spec.agent as A);
    return { done: runWithRetries(spec, (config) => runAgentOnce(source, spec, config)) };
  }

  async close(): Promise<void> {}
}

/**
 * Agents launched alongside a running agent (`agent.agentLaunchAlongside`, Academy's
 * `agent_launch_alongside`): registered through the parent's client, run in the parent's thread by
 * engines of their own (so on whatever executor runs the parent: the manager's event loop, the
 * parent's worker thread, the parent's runtime host), and shut down, and waited for, when the
 * parent shuts down.
 */
import { describeValue, isAgentInstance, isAgentSubclass } from "../agent/agent.ts";
import type { Agent } from "../agent/agent.ts";
import type { LaunchAlongsideOptions } from "../agent/agent.ts";
import type { AgentClass } from "../agent/agent-type.ts";
import type { RuntimeConfig } from "../agent/runtime-config.ts";
import { AgentDefinitionError, AgentStateError } from "../errors.ts";
import type { AgentExchangeClient } from "../exchange/exchange-client.ts";
import type { Handle } from "../exchange/handle.ts";
import type { AgentRegistration } from "../exchange/transport.ts";
import { decodeValue, encodeValue } from "../protocol/codec.ts";
import type { Logger } from "../util/logger.ts";
import type { AgentSource } from "./agent-engine.ts";

/** What the children need of an engine: one that runs `source` once. */
export interface ChildRunner {
  run(): Promise<void>;
  requestShutdown(request: { expected: boolean }): void;
}

/** Makes the engine of a child (the parent engine passes its own constructor, with its factory). */
export type MakeChildEngine = (source: AgentSource, registration: AgentRegistration, config: RuntimeConfig | undefined) => ChildRunner;

interface Child {
  readonly agentId: string;
  readonly engine: ChildRunner;
  /** Settles when the child has stopped; never rejects. */
  done: Promise<void>;
  stopped: boolean;
  failed: boolean;
  error: unknown;
}

/** The children of one run of an agent. */
export class ChildAgents {
  readonly #make: MakeChildEngine;
  readonly #logger: Logger;
  readonly #children: Child[] = [];
  #closed = false;

  constructor(make: MakeChildEngine, logger: Logger) {
    this.#make = make;
    this.#logger = logger;
  }

  /** How many children were launched and have not stopped. */
  get running(): number {
    return this.#children.filter((child) => !child.stopped).length;
  }

  /**
   * Register and start a child; returns its handle (bound to `client`, the parent's) at once.
   * @throws {AgentDefinitionError} for something that is not an agent class or instance.
   * @throws {AgentStateError} once the parent is shutting down.
   */
  async launch<A extends Agent>(client: AgentExchangeClient, agent: AgentClass<A> | A, options: LaunchAlongsideOptions): Promise<Handle<A>> {
    if (this.#closed) throw new AgentStateError("The agent is shutting down; it launches no more agents alongside it");
    const isClass = typeof agent === "function";
    if (isClass ? !isAgentSubclass(agent) : !isAgentInstance(agent)) {
      throw new AgentDefinitionError(`agentLaunchAlongside() takes an Agent subclass or instance (got ${describeValue(agent)})`);
    }
    const agentClass = (isClass ? agent : agent.constructor) as AgentClass<A>;
    // Encoded as for any launch: the child gets copies, and handles among them bound to its client.
    const args = isClass ? encodeValue([...(options.args ?? [])]) : undefined;
    const registration = await client.registerAgent(agentClass, options.name === undefined ? {} : { name: options.name });
    if (this.#closed) {
      await client.terminate(registration.agentId).catch(() => undefined);
      throw new AgentStateError("The agent is shutting down; it launches no more agents alongside it");
    }
    const source: AgentSource<A> = isClass
      ? {
          agentClass,
          build: (childClient) => {
            const decoded = decodeValue(args!, childClient);
            return new agentClass(...(Array.isArray(decoded) ? decoded : []));
          },
        }
      : agent;
    const engine = this.#make(source as AgentSource, registration, options.config);
    const child: Child = { agentId: registration.agentId.uid, engine, done: Promise.resolve(), stopped: false, failed: false, error: undefined };
    child.done = engine.run().then(
      () => {
        child.stopped = true;
      },
      (error: unknown) => {
        child.stopped = true;
        child.failed = true;
        child.error = error;
        this.#logger.error({ err: error, child: child.agentId }, "agent launched alongside failed");
      },
    );
    this.#children.push(child);
    this.#logger.info({ child: child.agentId, agentType: registration.agentType.name }, "launched agent alongside");
    return client.getHandle(registration.agentId);
  }

  /**
   * Shut every child down (an expected shutdown: each terminates its mailbox per its config) and
   * wait for them; no more children can be launched.
   * @returns the errors the children failed with.
   */
  async shutdown(): Promise<unknown[]> {
    this.#closed = true;
    for (const child of this.#children) child.engine.requestShutdown({ expected: true });
    await Promise.all(this.#children.map((child) => child.done));
    return this.#children.filter((child) => child.failed).map((child) => child.error);
  }
}

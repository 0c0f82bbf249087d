/**
 * The exchange factory contract: mints user and agent clients for one exchange, and describes
 * itself so that a worker thread can build a factory for the same exchange.
 */
import type { Transferable } from "node:worker_threads";
import type { Agent } from "../agent/agent.ts";
import type { Interceptors } from "../interceptors/interceptors.ts";
import type { AgentClientOptions, AgentExchangeClient, RequestHandler, UserClientOptions, UserExchangeClient } from "./exchange-client.ts";

import type { AgentRegistration } from "./transport.ts";


/** Options of `createUserClient`. */
export interface CreateUserClientOptions extends UserClientOptions {
  /** Display name of the user. */
  name?: string;
}

/**
 * A structured-clonable description of a factory, with the objects to transfer alongside it.
 * `kind` selects the rebuilder in the worker (`"nats"`, `"local-port"`).
 */
export interface WorkerFactoryDescriptor {
  readonly kind: string;
  readonly data: unknown;
  readonly transfer: readonly Transferable[];
}

/** Mints exchange clients for one exchange. */
export interface ExchangeFactory {
  /**
   * The factory's interceptors: every client it makes runs the caller-side ones; an engine that
   * runs an agent on this exchange runs the agent-side ones.
   */
  readonly interceptors: Interceptors;
  /** A new user client with its own (new) mailbox. */
  createUserClient(options?: CreateUserClientOptions): Promise<UserExchangeClient>;
  /**
   * A client for a registered agent; requests reaching its mailbox go to `handler`.
   * @throws {BadEntityIdError} if the agent is not registered.
   * @throws {AgentTerminatedError} if its mailbox is terminated.
   */
  createAgentClient<A extends Agent>(
    registration: AgentRegistration<A>,
    handler: RequestHandler,
    options?: AgentClientOptions,
  ): Promise<AgentExchangeClient>;
  /** Describe this factory for a worker thread (see {@link WorkerFactoryDescriptor}). */
  forWorker(): WorkerFactoryDescriptor;
  /** Release shared resources (connections). Clients still open keep working until closed. */
  close(): Promise<void>;
}

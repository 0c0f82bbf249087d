/**
 * The exchange factory contract: mints user and agent clients for one exchange, and describes
 * itself so that a worker thread can build a factory for the same exchange.
 */
import type { Transferable } from "node:worker_threads";
import type { Agent } from "../agent/agent.ts";
import type { Interceptors } from "../interceptors/interceptors.ts";
import type { AgentClientOptions, AgentExchangeClient, RequestHandler, UserClientOptions, UserExchangeClient } from "./exchange-client.ts";

import type { PoolBackend } from "../pool/pool-backend.ts";
import type { DeadLetterStore } from "./dead-letters.ts";
import type { EventBus } from "./events.ts";
import type { JsonCallOptions, JsonCallService } from "./json-calls.ts";
import type { ExchangeStats } from "./exchange-stats.ts";
import type { ResultStore } from "./result-store.ts";
import type { Logger } from "../util/logger.ts";
import type { AgentRegistration } from "./transport.ts";
import type { StateStore } from "../state/state-store.ts";
import type { ReminderStore } from "../state/reminder-store.ts";


/** Options of `createUserClient`. */
export interface CreateUserClientOptions extends UserClientOptions {
  /** Display name of the user. */
  name?: string;
}

/**
 * A structured-clonable description of a factory, with the objects to transfer alongside it. It
 * names the module that rebuilds the factory, so a worker needs to know no kinds of exchange: the
 * worker imports `module` and calls its export {@link WORKER_FACTORY_EXPORT} (a
 * {@link RebuildWorkerFactory}) with `data`.
 */
export interface WorkerFactoryDescriptor {
  /** URL of the module that rebuilds the factory (as a rule `import.meta.url` of the factory's own module). */
  readonly module: string;
  /** What the rebuild function gets (structured-clonable; objects in `transfer` may be inside). */
  readonly data: unknown;
  readonly transfer: readonly Transferable[];
}

/** The name of the function a {@link WorkerFactoryDescriptor}'s module exports to rebuild the factory. */
export const WORKER_FACTORY_EXPORT = "rebuildWorkerFactory";

/**
 * What a worker factory module exports as {@link WORKER_FACTORY_EXPORT}: the factory, in a worker
 * thread, for the exchange `data` describes.
 */
export type RebuildWorkerFactory = (data: unknown, logger: Logger) => ExchangeFactory;

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
  /**
   * The storage and queues of host pools on this exchange, for `HostPoolExecutor` and runtime
   * hosts (optional: an exchange without it cannot serve host pools).
   */
  poolBackend?(): Promise<PoolBackend>;
  /**
   * The messages this exchange set aside (optional: an exchange without it keeps none an operator
   * can reach), for the `academy dlq` command and other operator tools.
   */
  deadLetters?(): Promise<DeadLetterStore>;
  /**
   * The events of this exchange (optional): what agents' `@subscribe` handlers read and
   * `agentContext.publish` writes. An agent with subscriptions cannot run on an exchange without it.
   */
  events?(): Promise<EventBus>;
  /**
   * Serve JSON calls to agents of `options.types` from any client of the exchange (optional; the
   * NATS exchange serves a NATS micro service per type: docs/PROTOCOL.md, *JSON entry point*).
   */
  serveJsonCalls?(options: JsonCallOptions): Promise<JsonCallService>;
  /**
   * Queue statistics of this exchange (optional): mailbox depths and deliveries, dead letters; for
   * the metrics of runtime hosts and for `academy dashboard`.
   */
  stats?(): Promise<ExchangeStats>;
  /**
   * The durable state records of agents on this exchange (optional: agents that declare a
   * `durableState` cannot run on an exchange without it). docs/STATE.md.
   */
  stateStore?(): Promise<StateStore>;
  /**
   * The reminders of agents on this exchange (optional: agents cannot set reminders on an
   * exchange without it, and no scheduler fires any). docs/STATE.md.
   */
  reminderStore?(): Promise<ReminderStore>;
  /**
   * Where the responses of completed actions are recorded for effectively-once execution
   * (docs/PROTOCOL.md section 10.10), opened (and on NATS provisioned) on first use; undefined when
   * the exchange has it turned off (`resultWindowMs: 0`). An engine reads it before it starts
   * taking requests. Optional: an exchange without it gives at-least-once execution only.
   * @throws {ExchangeNotFoundError} on NATS without provisioning, when the results bucket is missing.
   * @throws {ExchangeUnavailableError} when the exchange cannot be reached.
   */
  resultStore?(): Promise<ResultStore | undefined>;
  /** Describe this factory for a worker thread (see {@link WorkerFactoryDescriptor}). */
  forWorker(): WorkerFactoryDescriptor;
  /** Release shared resources (connections). Clients still open keep working until closed. */
  close(): Promise<void>;
}

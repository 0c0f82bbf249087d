/**
 * The in-process exchange's factory.
 */
import type { Agent } from "../../agent/agent.ts";
import { resolveInterceptors } from "../../interceptors/interceptors.ts";
import type { InterceptorOptions, Interceptors } from "../../interceptors/interceptors.ts";
import { UserId } from "../../identifiers.ts";
import { silentLogger } from "../../util/logger.ts";
import type { Logger } from "../../util/logger.ts";
import { UserExchangeClient } from "../exchange-client.ts";
import type { AgentClientOptions, AgentExchangeClient, RequestHandler } from "../exchange-client.ts";
import type { CreateUserClientOptions, ExchangeFactory, WorkerFactoryDescriptor } from "../exchange-factory.ts";
import type { AgentRegistration } from "../transport.ts";
import { LocalExchange } from "./local-exchange.ts";
import type { LocalExchangeOptions } from "./local-exchange.ts";
import { PORT_FACTORY_MODULE, serveLocalExchange } from "./local-exchange-port.ts";
import type { LocalPortDescriptorData } from "./local-exchange-port.ts";
import { LocalTransport, openAgentClient } from "./local-transport.ts";
import { LocalEvents } from "./local-events.ts";
import type { EventBus } from "../events.ts";
import type { DeadLetterStore } from "../dead-letters.ts";
import { LocalStateStore } from "./local-state-store.ts";
import type { StateStore } from "../../state/state-store.ts";
import { LocalReminderStore } from "./local-reminder-store.ts";
import type { ReminderStore } from "../../state/reminder-store.ts";
import { CodecResultStore } from "../result-store.ts";
import type { ResultStore } from "../result-store.ts";
import { tableResultBytes } from "./local-results.ts";

/** Options of {@link LocalExchangeFactory}. */
export interface LocalExchangeFactoryOptions extends LocalExchangeOptions {
  /** @defaultValue silent */
  logger?: Logger;
  /**
   * Caller-side and agent-side interceptors (README, *Interceptors*). They do not reach agents
   * run in worker threads (functions cannot be sent there).
   * @defaultValue none
   */
  interceptors?: InterceptorOptions;
  /**
   * Deadlines: a call's `timeoutMs` travels with it as a deadline that agents honour and pass on
   * to the calls they make (README, *Deadlines*). Their interceptors run before `interceptors`.
   * @defaultValue true
   */
  deadlines?: boolean;
  /**
   * Tracing: calls, actions and event handlers make OpenTelemetry spans, and calls carry their
   * trace context to the agents (README, *Tracing*). Nothing is recorded until the application
   * installs an OpenTelemetry SDK. Their interceptors run first.
   * @defaultValue true
   */
  tracing?: boolean;
}

/**
 * Factory for the in-process exchange: the embedded default, and the fast path for unit tests.
 * Agents in worker threads reach it through a message port (see `forWorker`).
 */
export class LocalExchangeFactory implements ExchangeFactory {
  readonly exchange: LocalExchange;
  readonly interceptors: Interceptors;
  readonly #events: LocalEvents;
  readonly #logger: Logger;
  readonly #deadlines: boolean;
  readonly #tracing: boolean;
  readonly #custom: boolean;
  /** Ports serving worker threads; each leaves the set when its worker's end closes. */
  readonly #ports = new Set<{ close(): void }>();
  readonly #results: ResultStore | undefined;

  /** @throws {InvalidConfigError} for invalid interceptor lists, `deadlines` or `tracing`. */
  constructor(options: LocalExchangeFactoryOptions = {}) {
    this.exchange = new LocalExchange(options);
    this.#events = new LocalEvents(this.exchange.maxPayload);
    this.interceptors = resolveInterceptors(options.interceptors, { deadlines: options.deadlines, tracing: options.tracing });
    this.#deadlines = options.deadlines ?? true;
    this.#tracing = options.tracing ?? true;
    this.#custom = options.interceptors !== undefined;
    this.#logger = options.logger ?? silentLogger;
    const table = this.exchange.results;
    this.#results = table === undefined ? undefined : new CodecResultStore(tableResultBytes(table));
  }

  async resultStore(): Promise<ResultStore | undefined> {
    return this.#results;
  }

  async createUserClient(options: CreateUserClientOptions = {}): Promise<UserExchangeClient> {
    const userId = UserId.create(options.name);
    this.exchange.registerUser(userId);
    return UserExchangeClient.open(new LocalTransport(this.exchange, userId, this.#logger), { logger: this.#logger, ...options }, this);
  }

  async createAgentClient<A extends Agent>(
    registration: AgentRegistration<A>,
    handler: RequestHandler,
    options: AgentClientOptions = {},
  ): Promise<AgentExchangeClient> {
    return openAgentClient(this.exchange, registration, handler, { logger: this.#logger, ...options }, this);
  }

  /**
   * In-process events (docs/EVENTS.md): publish/subscribe in memory. Agents in worker threads get
   * none (their factory has no `events`).
   */
  async events(): Promise<EventBus> {
    return this.#events;
  }

  /** The events this exchange set aside (kept in memory while the process runs). */
  async deadLetters(): Promise<DeadLetterStore> {
    return this.#events.letters;
  }

  /** Agents' durable state, in memory (docs/STATE.md). */
  async stateStore(): Promise<StateStore> {
    return new LocalStateStore(this.exchange.stateRecords);
  }

  /** Reminders, in memory, fired into the in-process mailboxes (docs/STATE.md). */
  async reminderStore(): Promise<ReminderStore> {
    return new LocalReminderStore(this.exchange.reminders, this.exchange.reminders);
  }

  forWorker(): WorkerFactoryDescriptor {
    const served = serveLocalExchange(this.exchange, () => this.#ports.delete(served));
    this.#ports.add(served);
    const { port } = served;
    // Interceptors are functions: they cannot reach a worker, whose factory has only the built-in ones.
    if (this.#custom) this.#logger.warn("custom interceptors do not reach agents in worker threads");
    const data: LocalPortDescriptorData = {
      port,
      maxPayload: this.exchange.maxPayload,
      deadlines: this.#deadlines,
      tracing: this.#tracing,
      resultWindowMs: this.exchange.results?.windowMs ?? 0,
    };
    return { module: PORT_FACTORY_MODULE, data, transfer: [port] };
  }

  async close(): Promise<void> {
    for (const served of [...this.#ports]) served.close();
  }
}

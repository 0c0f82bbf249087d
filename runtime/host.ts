/**
 * A runtime host: a long-running process that joins a pool, takes agent launch requests from the
 * pool's work queue (at most `capacity` agents at a time), runs the agents, and hands them on.
 *
 * Life of a launch (see docs/HOSTS.md):
 * - the host fetches a launch request, checks it (malformed, unknown type, bad arguments: rejected,
 *   dead-lettered, the agent's mailbox terminated), then claims the agent's placement by
 *   compare-and-set (queued at this generation → running here), acknowledges the request and
 *   starts the agent. A duplicate or stale request loses the claim and is dropped, so an agent
 *   never starts twice (`host-intake.ts`; the rules are `src/pool/placement.ts`);
 * - when the agent stops, the host records it completed; when a run fails it records `retrying`,
 *   waits out the backoff and queues the agent again for any host, up to `maxRetries`; the last
 *   failure is final (the engine terminates the mailbox per `terminateOnError`) (`host-agents.ts`);
 * - every host heartbeats its record in the hosts bucket and watches the others
 *   (`host-liveness.ts`). A host silent for its `ttlMs` is reaped (removed by compare-and-set, so by
 *   one host) and the reaper queues its agents again under the same ids; requests sent to them
 *   wait in their mailboxes (`host-reaper.ts`);
 * - `drain()` (SIGTERM in the CLI) stops taking launches, stops each agent without terminating its
 *   mailbox (running actions finish) and queues it again for the other hosts (here).
 *
 * This file is the façade: start, drain, and the wiring of the parts; the state they share is
 * `host-core.ts`, the options `host-options.ts`.
 */
import { Registry } from "prom-client";
import { agentTypeName } from "../src/agent/agent-type.ts";
import type { AgentClass } from "../src/agent/agent-type.ts";
import { InvalidConfigError } from "../src/errors.ts";
import type { ExchangeFactory } from "../src/exchange/exchange-factory.ts";
import type { JsonCallService } from "../src/exchange/json-calls.ts";
import { NatsExchangeFactory } from "../src/index.ts";
import type { NatsExchangeOptions } from "../src/index.ts";
import { loadAgentClasses } from "../src/manager/agent-modules.ts";
import type { PoolBackend } from "../src/pool/pool-backend.ts";
import { deferred } from "../src/util/deferred.ts";
import { silentLogger } from "../src/util/logger.ts";
import { HostAgents } from "./host-agents.ts";
import { HostCore, HostState } from "./host-core.ts";
import { HostIntake } from "./host-intake.ts";
import { HostMetrics } from "./host-metrics.ts";
import { HostLiveness } from "./host-liveness.ts";
import { resolveSettings } from "./host-options.ts";
import type { RuntimeHostOptions } from "./host-options.ts";
import { Peers } from "./host-peers.ts";
import { HostReaper } from "./host-reaper.ts";
import { HostRouting } from "./host-routing.ts";
import { libraryVersion } from "./version.ts";
import { ReminderScheduler } from "../src/state/reminder-scheduler.ts";

/** A runtime host serving one pool (see the module's description). */
export class RuntimeHost {
  readonly pool: string;
  readonly name: string;
  readonly capacity: number;
  readonly heartbeatMs: number;
  readonly hostTtlMs: number;
  readonly sweepIntervalMs: number;
  /** Agent classes this host can run, by type name. */
  readonly classes: ReadonlyMap<string, AgentClass>;
  readonly #core: HostCore;
  /** Whether the host made its exchange factory (and so closes it). */
  readonly #ownsFactory: boolean;
  readonly #agents: HostAgents;
  readonly #intake: HostIntake;
  readonly #reaper: HostReaper;
  readonly #liveness: HostLiveness;
  readonly #routing: HostRouting;
  #jsonCalls: JsonCallService | undefined;
  readonly #stopped = deferred<void>();
  #draining: Promise<void> | undefined;
  /** Fires the exchange's reminders while the host serves (docs/STATE.md section 6). */
  #reminders: ReminderScheduler | undefined;

  private constructor(core: HostCore, ownsFactory: boolean) {
    const { settings } = core;
    this.pool = settings.pool;
    this.name = settings.name;
    this.capacity = settings.capacity;
    this.heartbeatMs = settings.heartbeatMs;
    this.hostTtlMs = settings.hostTtlMs;
    this.sweepIntervalMs = settings.sweepIntervalMs;
    this.classes = settings.classes;
    this.#core = core;
    this.#ownsFactory = ownsFactory;
    const peers = new Peers();
    this.#agents = new HostAgents(core, () => this.#liveness.admission());
    this.#intake = new HostIntake(core, this.#agents);
    this.#reaper = new HostReaper(core, peers);
    this.#liveness = new HostLiveness(core, peers, this.#agents, this.#reaper);
    this.#routing = new HostRouting(core);
  }

  /**
   * Load the agent modules, connect, register in the hosts bucket and start serving the pool.
   * @throws {InvalidConfigError} for bad options (also when no agent class is found, or the
   *   exchange does not serve host pools).
   * @throws {ExecutorError} / {AgentDefinitionError} when a module cannot be loaded.
   * @throws {ExchangeUnavailableError} / {UnsupportedServerError} when NATS cannot be used.
   */
  static async start(options: RuntimeHostOptions): Promise<RuntimeHost> {
    const classes = await loadAgentClasses(options.modules ?? []);
    for (const cls of options.classes ?? []) classes.set(agentTypeName(cls), cls);
    if (classes.size === 0) {
      throw new InvalidConfigError("A host needs at least one agent class: give --module (modules exporting Agent subclasses)", {
        option: "modules",
      });
    }
    const settings = resolveSettings(options, classes);
    const logger = (options.logger ?? silentLogger).child({ pool: settings.pool });
    const exchange = options.exchange ?? {};
    const owned = !isExchangeFactory(exchange);
    const factory = isExchangeFactory(exchange) ? exchange : new NatsExchangeFactory({ ...exchange, logger: exchange.logger ?? logger });
    const metrics = new HostMetrics(options.metrics ?? new Registry(), libraryVersion());
    let host: RuntimeHost | undefined;
    try {
      host = new RuntimeHost(new HostCore(settings, await poolBackendOf(factory), factory, logger, metrics), owned);
      await host.#serve();
    } catch (error) {
      if (host !== undefined) await host.#shutdownConnection();
      else if (owned) await factory.close().catch(() => undefined);
      throw error;
    }
    return host;
  }

  get hostId(): string {
    return this.#core.hostId;
  }

  get state(): HostState {
    return this.#core.state;
  }

  /** Agents running here. */
  get load(): number {
    return this.#core.load;
  }

  /**
   * The Prometheus registry holding the host's metrics (`RuntimeHostOptions.metrics`, else its
   * own): serve `await host.metrics.metrics()` with content type `host.metrics.contentType`.
   */
  get metrics(): Registry {
    return this.#core.metrics.registry;
  }

  /** Uids of the agents this host runs (or holds in retry backoff). */
  agentIds(): string[] {
    return [...this.#core.agents.keys()];
  }

  /** Whether the host is connected and has heartbeated within its time to live. */
  get healthy(): boolean {
    const { state, backend } = this.#core;
    return state !== HostState.Stopped && !backend.isClosed() && Date.now() - this.#liveness.lastHeartbeat < this.hostTtlMs;
  }

  /** Resolves when the host has stopped (drained, or closed). */
  get stopped(): Promise<void> {
    return this.#stopped.promise;
  }

  /**
   * Stop gracefully: take no more launches, stop every agent without terminating its mailbox
   * (running actions finish; queued requests stay in the mailbox), queue each again for the other
   * hosts of the pool, leave the pool and disconnect. Idempotent.
   */
  drain(): Promise<void> {
    this.#draining ??= this.#drain();
    return this.#draining;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.drain();
  }

  async #serve(): Promise<void> {
    const core = this.#core;
    const queue = await core.backend.launchQueue(this.pool);
    await this.#liveness.join();
    core.state = HostState.Serving;
    await this.#liveness.start();
    this.#reaper.start();
    this.#intake.start(queue);
    await this.#routing.start();
    if (core.settings.jsonCalls === true) {
      if (core.factory.serveJsonCalls === undefined) throw new InvalidConfigError("jsonCalls needs an exchange that serves JSON calls (ExchangeFactory.serveJsonCalls)", { option: "jsonCalls" });
      this.#jsonCalls = await core.factory.serveJsonCalls({ types: [...this.classes.keys()], version: semverOf(libraryVersion()) });
    }
    await this.#startReminders();
    await this.#measure();
    core.logger.info({ capacity: this.capacity, types: [...this.classes.keys()], version: libraryVersion() }, "host ready");
  }

  /** Fire reminders, if the exchange keeps them. */
  async #startReminders(): Promise<void> {
    const core = this.#core;
    if (core.factory.reminderStore === undefined) return;
    try {
      this.#reminders = await ReminderScheduler.start(await core.factory.reminderStore(), { logger: core.logger });
    } catch (error) {
      core.logger.warn({ err: error }, "could not start firing reminders");
    }
  }

  /** Let the metrics read this host when scraped. */
  async #measure(): Promise<void> {
    const core = this.#core;
    const liveness = this.#liveness;
    const stats = await core.factory.stats?.().catch((error: unknown) => {
      core.logger.warn({ err: error }, "no exchange statistics: mailbox and dead-letter metrics are left out");
      return undefined;
    });
    core.metrics.attach({
      get hostId() {
        return core.hostId;
      },
      pool: this.pool,
      capacity: this.capacity,
      load: () => core.load,
      lastHeartbeat: () => liveness.lastHeartbeat,
      agents: () => [...core.agents.values()].map((a) => ({ uid: a.placement.uid, type: a.placement.type })),
      stats,
      logger: core.logger,
    });
  }

  async #drain(): Promise<void> {
    const core = this.#core;
    if (core.state === HostState.Stopped) return;
    const agents = core.agents.size;
    core.logger.info({ agents }, "draining: handing agents back to the pool");
    core.state = HostState.Draining;
    await this.#routing.stop();
    await this.#jsonCalls?.stop();
    await this.#intake.stop();
    // Tell managers and peers at once that this host takes nothing new.
    await this.#liveness.announce();
    await this.#agents.stop("requeue");
    core.state = HostState.Stopped;
    this.#reaper.stop();
    await this.#liveness.leave();
    await this.#shutdownConnection();
    core.logger.info({ agents }, "host drained and stopped");
    this.#stopped.resolve();
  }

  async #shutdownConnection(): Promise<void> {
    await this.#routing.stop();
    await this.#jsonCalls?.stop().catch(() => undefined);
    await this.#reminders?.close();
    this.#core.metrics.detach();
    this.#liveness.stopWatching();
    this.#reaper.stop();
    if (this.#ownsFactory) await this.#core.factory.close().catch(() => undefined);
  }
}

/** The library's version as the semantic version micro services report ("0.0.0" when unknown). */
function semverOf(version: string): string {
  return /^\d+\.\d+\.\d+/.test(version) ? version : "0.0.0";
}

/** Whether the host was given a factory, not options to make one. */
function isExchangeFactory(exchange: ExchangeFactory | NatsExchangeOptions): exchange is ExchangeFactory {
  return typeof (exchange as Partial<ExchangeFactory>).createAgentClient === "function";
}

/**
 * The pool backend of the host's exchange.
 * @throws {InvalidConfigError} if the exchange does not serve host pools.
 */
function poolBackendOf(factory: ExchangeFactory): Promise<PoolBackend> {
  if (factory.poolBackend === undefined) {
    throw new InvalidConfigError(
      "A runtime host needs an exchange that serves host pools (ExchangeFactory.poolBackend), such as a NatsExchangeFactory",
      { option: "exchange" },
    );
  }
  return factory.poolBackend();
}

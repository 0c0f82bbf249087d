/**
 * The NATS JetStream exchange factory. One connection per factory (opened on first use and
 * shared by all its clients); in a worker thread the factory is rebuilt from its options.
 */
import { connect } from "@nats-io/transport-node";
import type { ConnectionOptions, NatsConnection } from "@nats-io/nats-core";
import type { Agent } from "../../agent/agent.ts";
import { AuthenticationError, ClientClosedError, ExchangeUnavailableError, InvalidConfigError } from "../../errors.ts";
import { UserId } from "../../identifiers.ts";
import { redactUrls } from "../../util/redact.ts";
import { resolveInterceptors } from "../../interceptors/interceptors.ts";
import type { InterceptorOptions, Interceptors } from "../../interceptors/interceptors.ts";
import { silentLogger } from "../../util/logger.ts";
import type { Logger } from "../../util/logger.ts";
import { AgentExchangeClient, UserExchangeClient } from "../exchange-client.ts";
import type { AgentClientOptions, RequestHandler } from "../exchange-client.ts";

import type { CreateUserClientOptions, ExchangeFactory, RebuildWorkerFactory, WorkerFactoryDescriptor } from "../exchange-factory.ts";
import type { AgentRegistration } from "../transport.ts";
import type { PoolBackend } from "../../pool/pool-backend.ts";

import { isAuthenticationError, resolveAuth, splitUrlCredentials } from "./nats-auth.ts";
import type { NatsAuthOptions, ResolvedAuth } from "./nats-auth.ts";
import { NatsExchange } from "./nats-exchange.ts";
import type { NatsSettings, NatsSiteSettings } from "./nats-exchange.ts";
import { checkDomain, checkSite, natsLayout } from "./nats-layout.ts";
import { NatsPoolBackend } from "./nats-pool-backend.ts";
import { NatsDeadLetters } from "./nats-dead-letters.ts";
import { NatsExchangeStats } from "./nats-exchange-stats.ts";
import { NatsEvents } from "./nats-events.ts";
import { serveJsonCalls } from "./nats-json-service.ts";
import type { JsonCallOptions, JsonCallService } from "../json-calls.ts";
import type { EventBus } from "../events.ts";
import type { ExchangeStats } from "../exchange-stats.ts";
import type { DeadLetterStore } from "../dead-letters.ts";
import { NatsTransport } from "./nats-transport.ts";
import { NatsStateStore } from "./nats-state-store.ts";
import type { StateStore } from "../../state/state-store.ts";
import { NatsReminderStore } from "./nats-reminder-store.ts";
import type { ReminderStore } from "../../state/reminder-store.ts";
import { DEFAULT_RESULT_WINDOW_MS, checkResultWindow } from "../result-store.ts";
import type { ResultStore } from "../result-store.ts";


/**
 * Options of {@link NatsExchangeFactory}. The credentials ({@link NatsAuthOptions}: `user` and
 * `password`, `token`, `nkeySeedFile`, `credsFile`, `tls`) are plain strings and paths, read when
 * the factory is created; unlike an authenticator in `connectionOptions`, they reach worker-thread
 * agents (each worker reads the files again), and they take precedence over the same settings in
 * `connectionOptions`.
 */
export interface NatsExchangeOptions extends NatsAuthOptions {
  /**
   * Server URL(s). A URL may carry a user and password (`nats://alice:secret@host:4222`) or a
   * token; this library never logs or prints them (see `redactUrls`).
   * @defaultValue "nats://127.0.0.1:4222"
   */
  servers?: string | string[];
  /**
   * Further nats.js connection options (name, reconnect policy, ...). Must be structured-clonable
   * to be used by worker-thread agents: give credentials with the options above, not as an
   * `authenticator` function.
   * @defaultValue reconnect forever, every 250 ms
   */
  connectionOptions?: Omit<ConnectionOptions, "servers">;
  /**
   * Create the streams and buckets when they are missing. `false` uses them as they are and fails
   * with `ExchangeNotFoundError` (naming the prefix) when one is missing: for tools that only
   * read or operate an existing exchange, where a mistyped prefix must not create a new one.
   * @defaultValue true
   */
  provision?: boolean;
  /**
   * Use this connection instead of opening one. It is not closed by the factory, and the factory
   * cannot be shared with worker threads.
   */
  connection?: NatsConnection;
  /**
   * Prefix of every stream, bucket and subject; deployments with different prefixes share an
   * account without interfering. `[A-Za-z0-9_-]`, 1-48 characters.
   * @defaultValue "academy"
   */
  prefix?: string;
  /**
   * Replicas of the streams and buckets this factory creates (1, 3 or 5). Existing ones are kept as
   * they are (a difference is logged).
   * @defaultValue 3 when the server is in a cluster of three or more servers, else 1 (decided when
   * the factory connects, and logged)
   */
  replicas?: number;
  /** @defaultValue "file" */
  storage?: "file" | "memory";
  /**
   * How long a delivered message may stay unacknowledged before redelivery, in ms. Messages being
   * handled are kept alive every third of it, so it bounds only how soon a dead reader's messages
   * come back (a restarted reader gets them at once).
   * @defaultValue 30_000
   */
  ackWaitMs?: number;
  /**
   * Deliveries of one request before it is dead-lettered and answered with `DeliveryLimitError`:
   * it bounds requests an agent keeps handing back (failing to respond, naks). It does not bound
   * requests that crash the agent's process: a restarted reader recreates the consumer so that
   * in-flight requests return at once, which restarts their count; crash loops are bounded by the
   * agent's retries (`maxRetries`).
   * @defaultValue 5
   */
  maxDeliveries?: number;
  /**
   * Most unacknowledged messages per mailbox (requests queued or running in the agent).
   * @defaultValue 1000
   */
  maxAckPending?: number;
  /**
   * Window in which a re-sent message (same id) is stored only once, in ms.
   * @defaultValue 120_000
   */
  duplicateWindowMs?: number;
  /**
   * How long sends and registry operations retry while the server is unreachable (restarting,
   * electing a leader) before failing with `ExchangeUnavailableError`, in ms.
   * @defaultValue 20_000
   */
  retryWindowMs?: number;
  /**
   * Timeout of one JetStream request or publish attempt, in ms.
   * @defaultValue 5_000
   */
  requestTimeoutMs?: number;
  /**
   * A mailbox's consumer is removed after this long with no reader, in ms (it is recreated when
   * the agent runs again; no message is lost).
   * @defaultValue 3_600_000
   */
  consumerInactiveMs?: number;
  /**
   * How long dead-lettered messages are kept, in ms.
   * @defaultValue 7 days
   */
  deadLetterMaxAgeMs?: number;
  /**
   * Effectively-once execution: how long the response to each completed action request is kept
   * (in the KV bucket `<prefix>_results`, whose max age it is), so that a redelivery of the request
   * (after a crash of the agent, its host or the server, or a response that could not be
   * published) is answered from it instead of running the action again (docs/PROTOCOL.md section
   * 10.10), in ms. 0 turns it off for the agents this factory runs (at-least-once execution only).
   * The bucket's max age is set when it is created; an existing bucket keeps its own.
   * @defaultValue 600_000 (10 minutes, `DEFAULT_RESULT_WINDOW_MS`)
   */
  resultWindowMs?: number;
  /**
   * How responses reach a caller. `"mailbox"`: stored in the caller's JetStream mailbox like any
   * message, so a response outlives a caller's disconnection. `"core"`: published on a core NATS
   * subject the caller subscribes to; faster (one JetStream hop per call instead of two, see
   * docs/BENCHMARKS.md), but a response sent while the caller's connection is down is lost (the
   * call then ends by its `timeoutMs`). Requests are stored in JetStream either way, so no request
   * is lost. Set per factory: it applies to the requests its clients make.
   * @defaultValue "mailbox"
   */
  replies?: "mailbox" | "core";
  /**
   * The JetStream domain this factory's site lives in (a site is a prefix on its own domain; see
   * docs/EDGE.md). When set, the factory checks on connecting that the server serves JetStream in
   * this domain and fails with `ForeignSiteError`, creating nothing, if it does not; ids it mints
   * carry the site (its prefix), so they stay valid when passed to other sites. Required with
   * `sites`.
   * @defaultValue none: the server's JetStream, whatever its domain (single-site behaviour)
   */
  domain?: string;
  /**
   * Other sites this factory reaches: calls and launches to their agents are stored in a local
   * outbox and forwarded when the link is up; their registries are read from local mirrors. Each
   * site is named by its prefix and lives in its own JetStream domain. Every process of a site that
   * lists another site relays that site's messages into its own mailboxes.
   * @defaultValue none
   */
  sites?: ReadonlyArray<NatsSiteOptions>;
  /**
   * How long messages to another site are kept in the outbox (and in the receiving site's inbox)
   * in ms: the longest outage after which nothing sent during it is lost (docs/EDGE.md).
   * @defaultValue 86_400_000 (24 h)
   */
  outboxMaxAgeMs?: number;
  /**
   * Most bytes kept in each outbox and inbox; past it the oldest messages are dropped.
   * @defaultValue 1_073_741_824 (1 GiB)
   */
  outboxMaxBytes?: number;
  /**
   * Whether this process relays what the other sites of `sites` send to this one into its
   * mailboxes and launch stream. The relays of a site share one consumer, so any number may run;
   * turn it off in short-lived processes (a listing, a script), which would otherwise hold a
   * message while they exit. Worker-thread factories never relay (their parent process does).
   * @defaultValue true
   */
  relay?: boolean;
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
   * Tracing: calls, actions and event handlers make OpenTelemetry spans (`messaging.system:
   * nats`), and calls carry their trace context to the agents in the message headers (README,
   * *Tracing*). Nothing is recorded until the application installs an OpenTelemetry SDK. Their
   * interceptors run first. A plain boolean, so worker-thread agents get it too.
   * @defaultValue true
   */
  tracing?: boolean;
  /** @defaultValue silent */
  logger?: Logger;
}

/** A site another site reaches (see `NatsExchangeOptions.sites`). */
export interface NatsSiteOptions {
  /** The site's name: its prefix. */
  name: string;
  /** The JetStream domain its servers serve. */
  domain: string;
}

const DEFAULTS: NatsSettings = Object.freeze({
  prefix: "academy",
  replicas: undefined,
  storage: "file",
  ackWaitMs: 30_000,
  maxDeliveries: 5,
  maxAckPending: 1000,
  duplicateWindowMs: 120_000,
  retryWindowMs: 20_000,
  requestTimeoutMs: 5_000,
  consumerInactiveMs: 3_600_000,
  deadLetterMaxAgeMs: 7 * 24 * 3_600_000,
  resultWindowMs: DEFAULT_RESULT_WINDOW_MS,
  replies: "mailbox",
  domain: undefined,
  sites: [],
  outboxMaxAgeMs: 24 * 3_600_000,
  outboxMaxBytes: 1024 * 1024 * 1024,
  relay: true,
});

function resolveSettings(options: NatsExchangeOptions): NatsSettings {
  const settings = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof NatsSettings)[]) {
    const value = options[key];
    if (value === undefined) continue;
    if (key === "prefix") {
      natsLayout(value as string);
      settings.prefix = value as string;
    } else if (key === "storage") {
      if (value !== "file" && value !== "memory") throw new InvalidConfigError(`storage must be "file" or "memory"`, { option: key });
      settings.storage = value;
    } else if (key === "replies") {
      if (value !== "mailbox" && value !== "core") throw new InvalidConfigError(`replies must be "mailbox" or "core"`, { option: key });
      settings.replies = value;
    } else if (key === "domain") {
      settings.domain = checkDomain(value as string);
    } else if (key === "sites") {
      settings.sites = resolveSites(value as ReadonlyArray<NatsSiteOptions>);
    } else if (key === "resultWindowMs") {
      settings.resultWindowMs = checkResultWindow(value);
    } else if (key === "relay") {
      if (typeof value !== "boolean") throw new InvalidConfigError(`relay must be a boolean (got ${String(value)})`, { option: key });
      settings.relay = value;
    } else {
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
        throw new InvalidConfigError(`${key} must be a positive integer (got ${String(value)})`, { option: key });
      }
      (settings as Record<string, unknown>)[key] = value;
    }
  }
  if (settings.sites.length > 0) {
    if (settings.domain === undefined) {
      throw new InvalidConfigError("sites needs domain: the JetStream domain of this factory's own site", { option: "domain" });
    }
    for (const site of settings.sites) {
      if (site.name === settings.prefix || site.domain === settings.domain) {
        throw new InvalidConfigError(`Site ${site.name} (domain ${site.domain}) is this factory's own site or domain`, { option: "sites" });
      }
    }
  }
  if (settings.replicas !== undefined && ![1, 3, 5].includes(settings.replicas)) {
    throw new InvalidConfigError(`replicas must be 1, 3 or 5 (got ${settings.replicas})`, { option: "replicas" });
  }
  return Object.freeze(settings);
}

function resolveSites(value: ReadonlyArray<NatsSiteOptions>): readonly NatsSiteSettings[] {
  if (!Array.isArray(value)) throw new InvalidConfigError("sites must be an array of { name, domain }", { option: "sites" });
  const sites = value.map((site: NatsSiteOptions) => Object.freeze({ name: checkSite(site?.name), domain: checkDomain(site?.domain, "sites") }));
  for (const [i, site] of sites.entries()) {
    if (sites.findIndex((s) => s.name === site.name || s.domain === site.domain) !== i) {
      throw new InvalidConfigError(`sites lists ${site.name} or its domain ${site.domain} twice`, { option: "sites" });
    }
  }
  return Object.freeze(sites);
}

/**
 * Mints clients of the NATS JetStream exchange. Mailboxes are JetStream subjects, registration and
 * the type index live in KV buckets, delivery is at-least-once (see docs/NATS-LAYOUT.md).
 */
export class NatsExchangeFactory implements ExchangeFactory {
  readonly settings: NatsSettings;
  readonly interceptors: Interceptors;
  readonly #options: NatsExchangeOptions;
  readonly #logger: Logger;
  readonly #auth: ResolvedAuth;
  /** The server URLs, without credentials. */
  readonly #servers: string[];
  #context: Promise<NatsExchange> | undefined;
  #closing: Promise<void> | undefined;
  #events: { ctx: NatsExchange; bus: NatsEvents } | undefined;

  /**
   * @throws {InvalidConfigError} for invalid options: also several ways to authenticate at once, or
   *   a credentials or TLS file that cannot be read or is malformed (`option` names it).
   */
  constructor(options: NatsExchangeOptions = {}) {
    this.#options = options;
    this.settings = resolveSettings(options);
    this.interceptors = resolveInterceptors(options.interceptors, { deadlines: options.deadlines, tracing: options.tracing, messagingSystem: "nats" });
    this.#logger = options.logger ?? silentLogger;
    const servers = options.servers ?? "nats://127.0.0.1:4222";
    const fromUrls = splitUrlCredentials(typeof servers === "string" ? [servers] : servers);
    this.#servers = fromUrls.servers;
    const explicit = (["user", "token", "nkeySeedFile", "credsFile"] as const).some((key) => options[key] !== undefined);
    this.#auth = resolveAuth(explicit ? options : { ...options, ...fromUrls.auth });
  }

  async createUserClient(options: CreateUserClientOptions = {}): Promise<UserExchangeClient> {
    const ctx = await this.#getContext();
    const userId = UserId.create(options.name, ctx.site);
    ctx.view.apply(await ctx.registry.registerUser(userId));
    const transport = new NatsTransport(ctx, userId, this.#logger);
    return UserExchangeClient.open(transport, { logger: this.#logger, ...options }, this);
  }

  async resultStore(): Promise<ResultStore | undefined> {
    const ctx = await this.#getContext();
    return ctx.results();
  }

  async createAgentClient<A extends Agent>(
    registration: AgentRegistration<A>,
    handler: RequestHandler,
    options: AgentClientOptions = {},
  ): Promise<AgentExchangeClient> {
    const ctx = await this.#getContext();
    // The transport's listen() checks that the mailbox is active.
    const transport = new NatsTransport(ctx, registration.agentId, this.#logger);
    return AgentExchangeClient.open(transport, handler, { logger: this.#logger, ...options }, this);
  }

  /**
   * Options for a worker thread to build its own factory (and connection) to the same exchange.
   * @throws {InvalidConfigError} when built on a caller's connection or with options that cannot be cloned.
   */
  forWorker(): WorkerFactoryDescriptor {
    if (this.#options.connection !== undefined) {
      throw new InvalidConfigError("A factory built on an existing connection cannot be shared with worker threads", {
        option: "connection",
      });
    }
    // Interceptors are functions: they cannot reach a worker, whose factory has only the built-in
    // ones (deadlines, tracing: plain options, cloned below).
    if (this.#options.interceptors !== undefined) this.#logger.warn("custom interceptors do not reach agents in worker threads");
    // The parent process relays for its site; its workers need not.
    const data = { ...this.#options, logger: undefined, interceptors: undefined, relay: false };
    try {
      structuredClone(data);
    } catch (error) {
      throw new InvalidConfigError("connectionOptions must be structured-clonable to reach worker threads", {
        option: "connectionOptions",
        cause: error,
      });
    }
    return { module: import.meta.url, data, transfer: [] };
  }

  /**
   * Host pools on this exchange's connection: the launch stream, pool consumers, and the hosts and
   * placements buckets (docs/NATS-LAYOUT.md section 14), provisioned on first use (unless
   * `provision` is false: then a pool that never had a host reads as empty).
   */
  async poolBackend(): Promise<PoolBackend> {
    return NatsPoolBackend.for(await this.#getContext());
  }

  /**
   * Agents' durable state: the KV bucket `<prefix>_state` (docs/STATE.md, docs/NATS-LAYOUT.md
   * section 16), provisioned on first use.
   */
  async stateStore(): Promise<StateStore> {
    return NatsStateStore.for(await this.#getContext());
  }

  /**
   * Reminders: the KV bucket `<prefix>_reminders`, fired into the mailbox stream (docs/STATE.md,
   * docs/NATS-LAYOUT.md section 16), provisioned on first use.
   */
  async reminderStore(): Promise<ReminderStore> {
    return NatsReminderStore.for(await this.#getContext());
  }

  /** The dead-letter stream of this exchange (docs/NATS-LAYOUT.md), on the factory's connection. */
  async deadLetters(): Promise<DeadLetterStore> {
    return new NatsDeadLetters(await this.#getContext());
  }

  /**
   * Events on this exchange's connection (docs/EVENTS.md): core subscriptions, durable consumers
   * on the users' streams, publishing, keyed routes.
   */
  async events(): Promise<EventBus> {
    const ctx = await this.#getContext();
    if (this.#events?.ctx !== ctx) this.#events = { ctx, bus: new NatsEvents(ctx) };
    return this.#events.bus;
  }

  /**
   * Serve JSON calls to agents of `options.types` from any NATS client: one NATS micro service per
   * type (listed by `$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`) whose endpoint
   * `<prefix>.json.<type>.<agent uid or key>` takes `{"action": "...", "args": [...]}`, calls the
   * action through the agent's mailbox and replies `{"result": ...}` or `{"error": {...}}`
   * (docs/PROTOCOL.md, *JSON entry point*). Any number of processes may serve the same types
   * (a queue group shares the calls).
   * @throws {InvalidConfigError} for no types, a bad version or timeout.
   */
  async serveJsonCalls(options: JsonCallOptions): Promise<JsonCallService> {
    const ctx = await this.#getContext();
    const client = await this.createUserClient({ name: "json-calls" });
    try {
      return serveJsonCalls(ctx, client, options);
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  /**
   * Queue statistics from the exchange's streams and consumers (mailbox depths and deliveries,
   * dead letters), on the factory's connection. Each call is one or a few server requests.
   */
  async stats(): Promise<ExchangeStats> {
    return new NatsExchangeStats(await this.#getContext());
  }

  /**
   * The factory's shared connection state, opened on first use. Internal (tests and the NATS
   * exchange's own modules): not part of the public API.
   * @internal
   */
  context(): Promise<NatsExchange> {
    return this.#getContext();
  }

  /**
   * Set up the link to another site now, or check that it is set up (docs/EDGE.md). A link is
   * set up in the background from the factory's first use and tried again every 2 s until the
   * site answers; once set up it works through outages.
   * @throws {UnknownSiteError} if `site` is not one of the option `sites`.
   * @throws {SiteUnreachableError} if the link was never set up and the site does not answer now.
   */
  async linkSite(site: string): Promise<void> {
    const ctx = await this.#getContext();
    await ctx.link(site).ready();
  }

  /** Close the connection (if the factory opened it). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const pending = this.#context;
    if (pending === undefined) return;
    const ctx = await pending.catch(() => undefined);
    await ctx?.close();
    if (ctx !== undefined && this.#options.connection === undefined) await ctx.nc.close();
  }

  #getContext(): Promise<NatsExchange> {
    if (this.#closing !== undefined) return Promise.reject(new ClientClosedError("The exchange factory is closed"));
    if (this.#context === undefined) {
      this.#context = this.#open();
      this.#context.catch(() => {
        this.#context = undefined;
      });
    }
    return this.#context;
  }

  async #open(): Promise<NatsExchange> {
    let nc = this.#options.connection;
    const owned = nc === undefined;
    if (nc === undefined) {
      const servers = this.#servers;
      try {
        nc = await connect({
          name: "academy-nats",
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          // An Error per request only to keep the caller's stack for timeouts costs about a tenth of
          // a round trip's CPU; our errors name the operation instead (see docs/BENCHMARKS.md).
          noAsyncTraces: true,
          ...this.#options.connectionOptions,
          ...this.#auth,
          servers,
        });
      } catch (error) {
        const where = redactUrls(String(servers));
        const reason = redactUrls((error as Error)?.message ?? String(error));
        if (isAuthenticationError(error)) {
          throw new AuthenticationError(`NATS at ${where} refused the credentials: ${reason}`, { cause: error });
        }
        throw new ExchangeUnavailableError(`Could not connect to NATS at ${where}: ${reason}`, { cause: error });
      }
    }
    try {
      return await NatsExchange.open(nc, this.settings, this.#logger, { provision: this.#options.provision ?? true });
    } catch (error) {
      if (owned) await nc.close().catch(() => undefined);
      throw error;
    }
  }
}

/** Rebuilds, in a worker thread, a factory described by {@link NatsExchangeFactory.forWorker}: from its options. */
export const rebuildWorkerFactory: RebuildWorkerFactory = (data, logger) =>
  new NatsExchangeFactory({ ...(data as NatsExchangeOptions), logger });

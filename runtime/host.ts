/**
 * A runtime host: a long-running process that joins a pool, takes agent launch requests from the
 * pool's work queue (at most `capacity` agents at a time), runs the agents, and hands them on.
 *
 * Life of a launch (see docs/HOSTS.md):
 * - the host fetches a launch request, checks it (malformed, unknown type, bad arguments: rejected,
 *   dead-lettered, the agent's mailbox terminated), then claims the agent's placement by
 *   compare-and-set (queued at this generation → running here), acknowledges the request and
 *   starts the agent. A duplicate or stale request loses the claim and is dropped, so an agent
 *   never starts twice;
 * - when the agent stops, the host records it completed; when a run fails it records `retrying`,
 *   waits out the backoff and queues the agent again for any host, up to `maxRetries`; the last
 *   failure is final (the runtime terminates the mailbox per `terminateOnError`);
 * - every host heartbeats its record in the hosts bucket and watches the others. A host silent for
 *   its `ttlMs` is reaped (removed by compare-and-set, so by one host) and the reaper queues its
 *   agents again under the same ids; requests sent to them wait in their mailboxes;
 * - `drain()` (SIGTERM in the CLI) stops taking launches, stops each agent without terminating its
 *   mailbox (running actions finish) and queues it again for the other hosts.
 */
import { MailboxStatus, mailboxError, terminatedError } from "../src/exchange/mailbox-status.ts";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { agentTypeName } from "../src/agent/agent-type.ts";
import type { AgentClass } from "../src/agent/agent-type.ts";
import { AgentEngine } from "../src/engine/agent-engine.ts";
import {
  AcademyError,
  ClientClosedError,
  ExchangeUnavailableError,
  HostFencedError,
  InvalidConfigError,
  MalformedMessageError,
} from "../src/errors.ts";
import type { ExchangeFactory } from "../src/exchange/exchange-factory.ts";
import { NatsExchangeFactory } from "../src/index.ts";
import type { NatsExchangeOptions } from "../src/index.ts";
import { checkPool } from "../src/pool/pool-name.ts";
import { AgentId, EntityRole } from "../src/identifiers.ts";
import { loadAgentClasses } from "../src/manager/agent-modules.ts";
import { buildFromArgs, runConfig } from "../src/manager/executor.ts";
import { unknownType } from "../src/manager/host-pool-executor.ts";
import type { HostEntry, LaunchBatch, LaunchDelivery, LaunchQueue, PoolBackend } from "../src/pool/pool-backend.ts";
import { PlacementState, claim, complete, fail, isFinal, placementFailure, reject } from "../src/pool/placement.ts";
import { POOL_RECORD_VERSION, decodeLaunchRequest } from "../src/pool/records.ts";
import type { HostRecord, LaunchRequest, Placement } from "../src/pool/records.ts";
import { requeuePlacement, transitionPlacement } from "../src/pool/transition-placement.ts";
import { decodeValue } from "../src/protocol/codec.ts";
import { agentRetryPolicy, backoffDelayMs, retriesLeft } from "../src/util/backoff.ts";
import { deferred } from "../src/util/deferred.ts";
import { silentLogger } from "../src/util/logger.ts";
import type { Logger } from "../src/util/logger.ts";
import { libraryVersion } from "./version.ts";

/** Options of {@link RuntimeHost.start}. */
export interface RuntimeHostOptions {
  /** The pool to join (`[A-Za-z0-9_-]`, 1-32 characters). */
  pool: string;
  /** Modules exporting the agent classes this host runs (paths, `file:` URLs, package names). */
  modules?: ReadonlyArray<string | URL>;
  /** Agent classes to run besides those of `modules` (for hosts embedded in a program). */
  classes?: ReadonlyArray<AgentClass>;
  /**
   * Most agents this host runs at once; further launches wait in the stream for another host or
   * a free slot.
   * @defaultValue 100
   */
  capacity?: number;
  /**
   * The exchange: a factory that serves host pools (`ExchangeFactory.poolBackend`, such as a
   * `NatsExchangeFactory`; not closed by the host), or options of a NATS exchange to make one.
   */
  exchange?: ExchangeFactory | NatsExchangeOptions;
  /**
   * Display name, shown by `academy hosts`; the host id is made from it.
   * @defaultValue the machine's host name
   */
  name?: string;
  /**
   * Interval of heartbeats (and of checks for silent hosts), in ms.
   * @defaultValue 2_000
   */
  heartbeatMs?: number;
  /**
   * A host silent this long is reaped and its agents restarted on other hosts, in ms. A host that
   * cannot heartbeat this long stops its agents itself (their mailboxes kept), since others are
   * about to restart them. Failover takes up to this plus one heartbeat plus the agents' startup.
   * @defaultValue 6_000
   */
  hostTtlMs?: number;
  /**
   * Interval of the orphan sweep (placements whose host is gone, launches lost between two
   * writes), done by one host of the pool, in ms.
   * @defaultValue 30_000
   */
  sweepIntervalMs?: number;
  /** @defaultValue silent */
  logger?: Logger;
}

/** Life of a host. */
export const HostState = {
  Starting: "starting",
  Serving: "serving",
  Draining: "draining",
  Stopped: "stopped",
} as const;
export type HostState = (typeof HostState)[keyof typeof HostState];

/** An agent this host owns: running, or waiting out a retry backoff. */
interface HostedAgent {
  placement: Placement;
  runtime: AgentEngine | undefined;
  /** Why the host itself stopped it: hand it back to the pool, or drop it (fenced: others own it). */
  handover: "requeue" | "drop" | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  /** Ends a retry backoff early. */
  wake?: (() => void) | undefined;
  /** Settles when the agent's run and its placement update are over. */
  finished: Promise<void>;
}

const ID_SAFE = /[^A-Za-z0-9_-]+/g;
/** A queued placement older than this with no launch request in the stream is published again. */
const LOST_LAUNCH_AFTER_MS = 60_000;
const FETCH_BATCH = 64;
const FETCH_EXPIRES_MS = 2_000;

function positive(value: number | undefined, fallback: number, option: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new InvalidConfigError(`${option} must be a positive integer (got ${v})`, { option });
  return v;
}

export class RuntimeHost {
  readonly pool: string;
  readonly name: string;
  readonly capacity: number;
  readonly heartbeatMs: number;
  readonly hostTtlMs: number;
  readonly sweepIntervalMs: number;
  /** Agent classes this host can run, by type name. */
  readonly classes: ReadonlyMap<string, AgentClass>;
  readonly #factory: ExchangeFactory;
  readonly #ownsFactory: boolean;
  #logger: Logger;
  readonly #baseLogger: Logger;
  readonly #agents = new Map<string, HostedAgent>();
  /** Other hosts, as last seen (local clock), for reaping. */
  readonly #peers = new Map<string, { entry: HostEntry; seenAt: number }>();
  readonly #stopped = deferred<void>();
  #hostId: string;
  #store!: PoolBackend;
  #revision = 0;
  #lastHeartbeat = 0;
  #startedAt = Date.now();
  #state: HostState = HostState.Starting;
  /** Launches being claimed plus agents running: what counts against capacity. */
  #reserved = 0;
  #slotFreed = deferred<void>();
  #batch: LaunchBatch | undefined;
  #pulling: Promise<void> | undefined;
  #timers: NodeJS.Timeout[] = [];
  #stopWatch: (() => void) | undefined;
  #heartbeating: Promise<void> | undefined;
  #draining: Promise<void> | undefined;
  #sweeping = false;
  /** Placements of the pool, while this host is the one that sweeps. */
  #sweepPlacements: Map<string, Placement> | undefined;
  #stopSweepWatch: (() => void) | undefined;
  /** Launch requests being checked and claimed (a drain waits for them). */
  readonly #claims = new Set<Promise<void>>();
  /** Peers being reaped now. */
  readonly #reaping = new Set<string>();
  /** Aborted when the host stops: ends the heartbeat loop. */
  readonly #stopping = new AbortController();

  private constructor(options: RuntimeHostOptions, classes: Map<string, AgentClass>) {
    this.pool = checkPool(options.pool);
    this.capacity = positive(options.capacity, 100, "capacity");
    this.heartbeatMs = positive(options.heartbeatMs, 2_000, "heartbeatMs");
    this.hostTtlMs = positive(options.hostTtlMs, 6_000, "hostTtlMs");
    this.sweepIntervalMs = positive(options.sweepIntervalMs, 30_000, "sweepIntervalMs");
    if (this.hostTtlMs < 2 * this.heartbeatMs) {
      throw new InvalidConfigError(`hostTtlMs (${this.hostTtlMs}) must be at least twice heartbeatMs (${this.heartbeatMs})`, {
        option: "hostTtlMs",
      });
    }
    this.name = options.name ?? hostname();
    this.classes = classes;
    this.#hostId = newHostId(this.name);
    const exchange = options.exchange ?? {};
    this.#ownsFactory = !isExchangeFactory(exchange);
    this.#baseLogger = (options.logger ?? silentLogger).child({ pool: this.pool });
    this.#logger = this.#baseLogger.child({ hostId: this.#hostId });
    this.#factory = isExchangeFactory(exchange)
      ? exchange
      : new NatsExchangeFactory({ ...exchange, logger: exchange.logger ?? this.#baseLogger });
  }

  /**
   * Load the agent modules, connect, register in the hosts bucket and start serving the pool.
   * @throws {InvalidConfigError} for bad options (also when no agent class is found).
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
    const host = new RuntimeHost(options, classes);
    try {
      await host.#start();
    } catch (error) {
      await host.#shutdownConnection();
      throw error;
    }
    return host;
  }

  get hostId(): string {
    return this.#hostId;
  }

  get state(): HostState {
    return this.#state;
  }

  /** Agents running here. */
  get load(): number {
    let running = 0;
    for (const agent of this.#agents.values()) if (agent.runtime !== undefined) running++;
    return running;
  }

  /** Uids of the agents this host runs (or holds in retry backoff). */
  agentIds(): string[] {
    return [...this.#agents.keys()];
  }

  /** Whether the host is connected and has heartbeated within its time to live. */
  get healthy(): boolean {
    return this.#state !== HostState.Stopped && this.#store?.isClosed() === false && Date.now() - this.#lastHeartbeat < this.hostTtlMs;
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

  async #start(): Promise<void> {
    if (this.#factory.poolBackend === undefined) {
      throw new InvalidConfigError("A runtime host needs an exchange that serves host pools (ExchangeFactory.poolBackend), such as a NatsExchangeFactory", {
        option: "exchange",
      });
    }
    this.#store = await this.#factory.poolBackend();
    const consumer = await this.#store.launchQueue(this.pool);
    this.#startedAt = Date.now();
    this.#revision = await this.#store.createHost(this.#record());
    this.#lastHeartbeat = Date.now();
    this.#stopWatch = await this.#store.watchHosts(
      (entry) => this.#onPeer(entry),
      (hostId) => this.#peers.delete(hostId),
    );
    this.#state = HostState.Serving;
    this.#heartbeating = this.#heartbeatLoop();
    this.#timers.push(
      setInterval(() => void this.#reapSilentPeers(), Math.max(250, Math.floor(this.heartbeatMs / 2))),
      setInterval(() => void this.#sweep(), this.sweepIntervalMs),
    );
    this.#pulling = this.#pullLoop(consumer);
    this.#logger.info(
      { capacity: this.capacity, types: [...this.classes.keys()], version: libraryVersion() },
      "host ready",
    );
    // Placements orphaned while no host of the pool was up (the whole pool restarted).
    setTimeout(() => void this.#sweep(), this.hostTtlMs + this.heartbeatMs).unref();
  }

  #record(): HostRecord {
    return {
      v: POOL_RECORD_VERSION,
      hostId: this.#hostId,
      name: this.name,
      pool: this.pool,
      hostname: hostname(),
      pid: process.pid,
      capacity: this.capacity,
      load: this.load,
      types: [...this.classes.keys()],
      startedAt: this.#startedAt,
      heartbeatAt: Date.now(),
      heartbeatMs: this.heartbeatMs,
      ttlMs: this.hostTtlMs,
      draining: this.#state === HostState.Draining,
      version: libraryVersion(),
    };
  }

  // --- taking launches ---

  async #pullLoop(consumer: LaunchQueue): Promise<void> {
    while (this.#state === HostState.Serving) {
      const free = this.capacity - this.#reserved;
      if (free <= 0) {
        await this.#slotFreed.promise;
        continue;
      }
      try {
        this.#batch = await consumer.fetch({ max: Math.min(free, FETCH_BATCH), expiresMs: FETCH_EXPIRES_MS });
        for await (const m of this.#batch) {
          if (this.#state !== HostState.Serving) {
            m.nak();
            continue;
          }
          this.#reserved++;
          void this.#onLaunch(m);
        }
      } catch (error) {
        if (this.#state !== HostState.Serving) break;
        this.#logger.warn({ err: error }, "could not fetch launch requests; retrying");
        await sleep(500);
      }
    }
  }

  #release(): void {
    this.#reserved--;
    const freed = this.#slotFreed;
    this.#slotFreed = deferred<void>();
    freed.resolve();
  }

  #onLaunch(m: LaunchDelivery): Promise<void> {
    const claim = this.#onLaunchClaim(m);
    this.#claims.add(claim);
    return claim.finally(() => this.#claims.delete(claim));
  }

  async #onLaunchClaim(m: LaunchDelivery): Promise<void> {
    let started = false;
    try {
      started = await this.#takeLaunch(m);
    } catch (error) {
      if (error instanceof ExchangeUnavailableError || error instanceof ClientClosedError || !(error instanceof AcademyError)) {
        // NATS trouble while claiming: let the request come back (to this host or another).
        this.#logger.warn({ err: error, subject: m.subject }, "could not take launch request; it will be redelivered");
        m.nak(1_000);
      } else {
        // A typed error (a placement too large to store, say) will not go away by retrying.
        await this.#reject(m, tryDecode(m.data), error).catch((rejectError: unknown) => {
          this.#logger.warn({ err: rejectError, subject: m.subject }, "could not reject launch request; it will be redelivered");
          m.nak(1_000);
        });
      }
    } finally {
      if (!started) this.#release();
    }
  }

  /** Check and claim a launch request; true if an agent started here (keeping its slot). */
  async #takeLaunch(m: LaunchDelivery): Promise<boolean> {
    let request: LaunchRequest;
    try {
      request = decodeLaunchRequest(m.data);
      if (request.pool !== this.pool) {
        throw new MalformedMessageError(`Launch request for pool '${request.pool}' arrived on pool '${this.pool}'`);
      }
    } catch (error) {
      await this.#reject(m, undefined, error as Error);
      return false;
    }
    const log = { agentId: request.uid, agentType: request.type, gen: request.gen };
    const agentClass = this.classes.get(request.type);
    if (agentClass === undefined) {
      if (await this.#peerRuns(request.type)) {
        // A heterogeneous pool: another host loads this type; let it have the request.
        m.nak(250);
        return false;
      }
      await this.#reject(m, request, unknownType(request.type, this.pool, `this host's modules export ${[...this.classes.keys()].join(", ")}`));
      return false;
    }
    let args: unknown;
    try {
      args = decodeValue(request.args);
    } catch (error) {
      await this.#reject(m, request, new MalformedMessageError(`Launch arguments are not CBOR: ${(error as Error).message}`));
      return false;
    }
    if (!Array.isArray(args)) {
      await this.#reject(m, request, new MalformedMessageError("Launch arguments must encode an array"));
      return false;
    }

    const status = await this.#store.mailboxStatus(request.uid);
    if (status === MailboxStatus.Missing) {
      await this.#reject(m, request, mailboxError(status, request.uid)!);
      return false;
    }
    if (status === MailboxStatus.Terminated) {
      // Never restart an agent whose mailbox is gone.
      await transitionPlacement(this.#store, this.pool, request.uid, reject(request, placementFailure(terminatedError(request.uid, EntityRole.Agent))));
      m.ack();
      this.#logger.info(log, "launch dropped: the agent's mailbox is terminated");
      return false;
    }

    const claimed = await this.#claim(request);
    m.ack();
    if (claimed === undefined) {
      this.#logger.debug(log, "launch request is a duplicate or stale; dropped");
      return false;
    }
    this.#run(claimed, agentClass);
    return true;
  }

  /**
   * Placement: queued at this generation → running here (or created so, for a request published
   * without a placement). Undefined if another host has it.
   */
  async #claim(request: LaunchRequest): Promise<Placement | undefined> {
    const claimed = await transitionPlacement(this.#store, this.pool, request.uid, claim(request, this.#hostId));
    return claimed.ok ? claimed.placement : undefined;
  }

  /**
   * Reject a launch request: log the typed error, dead-letter the request, and (when it names an
   * agent) record the failure and terminate the agent's mailbox so its callers are not left waiting.
   */
  async #reject(m: LaunchDelivery, request: LaunchRequest | undefined, error: Error): Promise<void> {
    this.#logger.error(
      { err: error, agentId: request?.uid, agentType: request?.type, subject: m.subject, seq: m.seq },
      "launch request rejected",
    );
    await m.deadLetter(error);
    if (request !== undefined) {
      const failed = await transitionPlacement(this.#store, this.pool, request.uid, reject(request, placementFailure(error)));
      if (failed.ok && (await this.#store.mailboxStatus(request.uid)) === MailboxStatus.Active) {
        await this.#store.terminateMailbox(new AgentId(request.uid, request.name));
      }
    }
    m.ack();
  }

  // --- running agents ---

  #run(placement: Placement, agentClass: AgentClass): void {
    const policy = agentRetryPolicy(placement);
    const last = !retriesLeft(policy, placement.attempt);
    const config = runConfig(placement.config, policy, placement.attempt);
    const runtime = new AgentEngine(buildFromArgs(agentClass, placement.args), {
      exchangeFactory: this.#factory,
      registration: { agentId: new AgentId(placement.uid, placement.name), agentType: { name: placement.type, chain: placement.chain } },
      config,
      logger: this.#logger,
    });
    const hosted: HostedAgent = { placement, runtime, handover: undefined, retryTimer: undefined, finished: Promise.resolve() };
    this.#agents.set(placement.uid, hosted);
    this.#logger.info({ agentId: placement.uid, agentType: placement.type, gen: placement.gen, attempt: placement.attempt }, "agent starting");
    hosted.finished = runtime.run().then(
      () => this.#afterRun(hosted, undefined),
      (error: unknown) => this.#afterRun(hosted, { error, retryable: runtime.retryable && !last }),
    );
  }

  async #afterRun(hosted: HostedAgent, failure: { error: unknown; retryable: boolean } | undefined): Promise<void> {
    const { placement } = hosted;
    const log = { agentId: placement.uid, agentType: placement.type, gen: placement.gen };
    hosted.runtime = undefined;
    this.#release();
    try {
      if (hosted.handover === "drop") return;
      if (hosted.handover === "requeue") {
        await this.#requeue(placement, this.#hostId);
        this.#logger.info(log, "agent handed back to the pool");
        return;
      }
      const holder = { host: this.#hostId, gen: placement.gen };
      if (failure === undefined) {
        await transitionPlacement(this.#store, this.pool, placement.uid, complete(holder));
        this.#logger.info(log, "agent completed");
        return;
      }
      const ended = await transitionPlacement(this.#store, this.pool, placement.uid, fail(holder, placementFailure(failure.error), failure.retryable));
      if (ended.ok && ended.placement.state === PlacementState.Retrying) {
        const delayMs = backoffDelayMs(agentRetryPolicy(placement), placement.attempt);
        this.#logger.warn({ ...log, err: failure.error, attempt: placement.attempt + 1, retryInMs: delayMs }, "agent failed; will restart it on the pool");
        hosted.placement = ended.placement;
        await new Promise<void>((resolve) => {
          hosted.retryTimer = setTimeout(resolve, delayMs);
          hosted.wake = resolve;
        });
        if (hosted.handover !== "drop") await this.#requeue(hosted.placement, this.#hostId);
      } else if (ended.ok || !failure.retryable) {
        this.#logger.error({ ...log, err: failure.error }, "agent failed for good");
      }
    } catch (error) {
      // The placement stays as it was; the sweep of the pool will find and requeue it.
      this.#logger.error({ ...log, err: error }, "could not record the agent's end");
    } finally {
      if (this.#agents.get(placement.uid) === hosted) this.#agents.delete(placement.uid);
    }
  }

  /**
   * Queue an agent again for any host of the pool: its placement, held by `host` at this
   * generation, becomes queued at the next generation, then the launch request is published.
   * @returns whether this call requeued it (false if someone else changed it first).
   */
  #requeue(placement: Placement, host: string): Promise<boolean> {
    return requeuePlacement(this.#store, placement, { host, gen: placement.gen });
  }

  /** Stop agents (their mailboxes kept); `handover` says what happens to each afterwards. */
  async #stopAgents(handover: "requeue" | "drop", which: (agent: HostedAgent) => boolean = () => true): Promise<void> {
    const hosted = [...this.#agents.values()].filter(which);
    for (const agent of hosted) {
      agent.handover = handover;
      agent.runtime?.requestShutdown({ expected: true, terminate: false, cancelActions: false });
      clearTimeout(agent.retryTimer);
      agent.wake?.();
    }
    await Promise.all(hosted.map((agent) => agent.finished));
  }

  // --- liveness ---

  async #heartbeatLoop(): Promise<void> {
    const { signal } = this.#stopping;
    while (!signal.aborted) {
      await sleep(this.heartbeatMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      await this.#heartbeat();
    }
  }

  async #heartbeat(): Promise<void> {
    try {
      const revision = await this.#store.updateHost(this.#record(), this.#revision);
      if (revision === undefined) {
        await this.#fence("another host reaped this one (its heartbeats were late)");
        return;
      }
      this.#revision = revision;
      this.#lastHeartbeat = Date.now();
    } catch (error) {
      if (this.#state === HostState.Stopped) return;
      const silentMs = Date.now() - this.#lastHeartbeat;
      this.#logger.warn({ err: error, silentMs }, "heartbeat failed");
      if (silentMs >= this.hostTtlMs && this.#state === HostState.Serving) {
        await this.#fence(`no heartbeat got through for ${silentMs} ms`);
      }
    }
  }

  /**
   * This host lost its place: other hosts restart (or are about to restart) its agents. Stop them
   * without touching their placements or mailboxes, then rejoin the pool under a new id.
   */
  async #fence(reason: string): Promise<void> {
    const oldId = this.#hostId;
    const fencedRevision = this.#revision;
    const error = new HostFencedError(`Host ${oldId} left the pool: ${reason}`, { hostId: oldId });
    this.#logger.error({ err: error, agents: this.#agents.size }, "host fenced; stopping its agents and rejoining the pool");
    // Launches claimed from now on are claimed under the new id, and their agents keep running.
    this.#hostId = newHostId(this.name);
    this.#logger = this.#baseLogger.child({ hostId: this.#hostId });
    const stopping = this.#stopAgents("drop", (agent) => agent.placement.host === oldId);
    while (this.#state === HostState.Serving) {
      try {
        this.#revision = await this.#store.createHost(this.#record());
        this.#lastHeartbeat = Date.now();
        this.#logger.info({ previousHostId: oldId }, "host rejoined the pool");
        break;
      } catch (rejoinError) {
        if (rejoinError instanceof ClientClosedError) break;
        this.#logger.warn({ err: rejoinError }, "could not rejoin the pool; retrying");
        await sleep(this.heartbeatMs);
      }
    }
    await stopping;
    // Nobody may be left to reap the old record (a lone host that lost NATS for a while): reap it
    // here, now that its agents have stopped, and queue them again.
    try {
      if (await this.#store.deleteHost(oldId, fencedRevision)) {
        const requeued = await this.#requeueOrphans((p) => p.host === oldId);
        this.#logger.info({ previousHostId: oldId, agents: requeued }, "agents of the fenced host queued again");
      }
    } catch (reapError) {
      this.#logger.warn({ err: reapError, previousHostId: oldId }, "could not reap the fenced host's old record");
    }
  }

  #onPeer(entry: HostEntry): void {
    if (entry.value.hostId === this.#hostId) return;
    const known = this.#peers.get(entry.value.hostId);
    if (known === undefined || known.entry.revision !== entry.revision) {
      this.#peers.set(entry.value.hostId, { entry, seenAt: Date.now() });
    }
  }

  /** Whether another live host of the pool can run `type`. */
  async #peerRuns(type: string): Promise<boolean> {
    const hosts = await this.#store.listHosts(this.pool);
    return hosts.some((h) => h.value.hostId !== this.#hostId && !h.value.draining && h.value.types.includes(type));
  }

  /** Reap hosts of this pool not heard from for their time to live, and requeue their agents. */
  async #reapSilentPeers(): Promise<void> {
    if (this.#state !== HostState.Serving) return;
    const now = Date.now();
    for (const [hostId, { entry, seenAt }] of this.#peers) {
      if (entry.value.pool !== this.pool || now - seenAt < entry.value.ttlMs || this.#reaping.has(hostId)) continue;
      this.#reaping.add(hostId);
      void this.#reap(hostId, entry.revision, now - seenAt).finally(() => this.#reaping.delete(hostId));
    }
  }

  /**
   * Remove a silent host's record if it is still at `revision` (so one host reaps it, and not one
   * that heartbeated meanwhile), then queue its agents again. On NATS trouble the peer stays
   * listed, and the next check tries again.
   */
  async #reap(hostId: string, revision: number, silentMs: number): Promise<void> {
    try {
      const reaped = await this.#store.deleteHost(hostId, revision);
      if (this.#peers.get(hostId)?.entry.revision === revision) this.#peers.delete(hostId);
      if (!reaped) return; // it heartbeated after all, or another host reaped it
      this.#logger.warn({ deadHost: hostId, silentMs }, "reaped a silent host; restarting its agents");
      const requeued = await this.#requeueOrphans((p) => p.host === hostId);
      this.#logger.info({ deadHost: hostId, agents: requeued }, "agents of the reaped host queued again");
    } catch (error) {
      this.#logger.warn({ err: error, deadHost: hostId }, "could not reap host; trying again");
    }
  }

  /**
   * Requeue the placements among `placements` (default: the pool's, read now) held by a host
   * matching `orphaned`; returns how many.
   */
  async #requeueOrphans(orphaned: (placement: Placement) => boolean, placements?: readonly Placement[]): Promise<number> {
    const candidates = (placements ?? (await this.#store.listPlacements(this.pool))).filter(
      (p) => p.host !== undefined && !isFinal(p.state) && orphaned(p),
    );
    let requeued = 0;
    for (let i = 0; i < candidates.length; i += 32) {
      const results = await Promise.all(candidates.slice(i, i + 32).map((p) => this.#requeue(p, p.host!)));
      requeued += results.filter(Boolean).length;
    }
    return requeued;
  }

  /**
   * The safety net, run by one host of the pool (the live host with the smallest id): requeue
   * placements held by hosts that no longer exist (a reaper died midway, the whole pool restarted),
   * and publish again launch requests lost between a placement write and its publish.
   */
  async #sweep(): Promise<void> {
    if (this.#state !== HostState.Serving || this.#sweeping) return;
    const pool = [...this.#peers.values()].filter((p) => p.entry.value.pool === this.pool).map((p) => p.entry.value.hostId);
    if (pool.some((id) => id < this.#hostId)) {
      this.#dropSweepView();
      return;
    }
    this.#sweeping = true;
    try {
      const now = Date.now();
      const placements = [...(await this.#sweepView()).values()];
      const gone = new Set<string>();
      for (const host of new Set(placements.map((p) => p.host))) {
        if (host === undefined || host === this.#hostId || this.#peers.has(host)) continue;
        if ((await this.#store.getHost(host)) === undefined) gone.add(host);
      }
      const requeued = await this.#requeueOrphans((p) => gone.has(p.host!) && now - p.updatedAt > this.hostTtlMs, placements);
      let republished = 0;
      for (const p of placements) {
        if (p.state !== PlacementState.Queued || now - p.updatedAt < LOST_LAUNCH_AFTER_MS) continue;
        if (await this.#store.launchPending(this.pool, p.uid)) continue;
        await this.#store.publishLaunch(p);
        republished++;
      }
      if (requeued + republished > 0) this.#logger.warn({ requeued, republished }, "sweep restarted orphaned agents");
    } catch (error) {
      this.#logger.warn({ err: error }, "placement sweep failed");
    } finally {
      this.#sweeping = false;
    }
  }

  /**
   * The pool's placements, kept by a watch while this host sweeps: a sweep then reads memory, not
   * the whole bucket (at 10,000 agents, decoding it every interval was most of an idle host's CPU).
   */
  async #sweepView(): Promise<ReadonlyMap<string, Placement>> {
    if (this.#sweepPlacements === undefined) {
      const view = new Map<string, Placement>();
      this.#stopSweepWatch = await this.#store.watchPlacements(this.pool, (placement) => view.set(placement.uid, placement), { current: true });
      this.#sweepPlacements = view;
    }
    return this.#sweepPlacements;
  }

  /** Another host sweeps now: let the view go. */
  #dropSweepView(): void {
    this.#stopSweepWatch?.();
    this.#stopSweepWatch = undefined;
    this.#sweepPlacements = undefined;
  }

  // --- stopping ---

  async #drain(): Promise<void> {
    if (this.#state === HostState.Stopped) return;
    const agents = this.#agents.size;
    this.#logger.info({ agents }, "draining: handing agents back to the pool");
    this.#state = HostState.Draining;
    this.#batch?.stop();
    this.#slotFreed.resolve();
    await this.#pulling;
    await Promise.allSettled([...this.#claims]);
    // Tell managers and peers at once that this host takes nothing new.
    await this.#store.updateHost(this.#record(), this.#revision).then(
      (revision) => {
        if (revision !== undefined) this.#revision = revision;
      },
      () => undefined,
    );
    await this.#stopAgents("requeue");
    this.#state = HostState.Stopped;
    this.#stopping.abort();
    for (const timer of this.#timers) clearInterval(timer);
    await this.#heartbeating;
    await this.#store.deleteHost(this.#hostId, this.#revision).catch((error: unknown) => {
      this.#logger.warn({ err: error }, "could not remove this host's record (it will be reaped)");
    });
    await this.#shutdownConnection();
    this.#logger.info({ agents }, "host drained and stopped");
    this.#stopped.resolve();
  }

  async #shutdownConnection(): Promise<void> {
    this.#stopWatch?.();
    this.#dropSweepView();
    if (this.#ownsFactory) await this.#factory.close().catch(() => undefined);
  }
}

/** Whether the host was given a factory, not options to make one. */
function isExchangeFactory(exchange: ExchangeFactory | NatsExchangeOptions): exchange is ExchangeFactory {
  return typeof (exchange as Partial<ExchangeFactory>).createAgentClient === "function";
}

/** The launch request in `bytes`, if it is one (for rejecting it with its agent named). */
function tryDecode(bytes: Uint8Array): LaunchRequest | undefined {
  try {
    return decodeLaunchRequest(bytes);
  } catch {
    return undefined;
  }
}

function newHostId(name: string): string {
  const base = name.replace(ID_SAFE, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "host";
  return `${base}-${randomBytes(4).toString("hex")}`;
}

/**
 * What the parts of a runtime host share: its settings, its identity (which changes when it is
 * fenced), its state, the agents it holds, its capacity, and the pool backend. The parts (intake,
 * agents, liveness, reaper; see `host.ts`) each keep their own state and get this object.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { agentTypeInfo } from "../src/agent/agent-type.ts";
import type { AgentClass } from "../src/agent/agent-type.ts";
import type { AgentEngine } from "../src/engine/agent-engine.ts";
import type { ExchangeFactory } from "../src/exchange/exchange-factory.ts";
import type { PoolBackend } from "../src/pool/pool-backend.ts";
import { POOL_RECORD_VERSION } from "../src/pool/records.ts";
import type { HostRecord, Placement } from "../src/pool/records.ts";
import { deferred } from "../src/util/deferred.ts";
import type { Logger } from "../src/util/logger.ts";
import type { HostMetrics } from "./host-metrics.ts";
import { libraryVersion } from "./version.ts";

/** Life of a host. */
export const HostState = {
  Starting: "starting",
  Serving: "serving",
  Draining: "draining",
  Stopped: "stopped",
} as const;
export type HostState = (typeof HostState)[keyof typeof HostState];

/** A host's resolved options. */
export interface HostSettings {
  readonly pool: string;
  readonly name: string;
  readonly capacity: number;
  readonly heartbeatMs: number;
  readonly hostTtlMs: number;
  /** Write heartbeats from a thread of their own (host-heartbeat-thread.ts). */
  readonly heartbeatThread: boolean;
  readonly sweepIntervalMs: number;
  /** Agent classes this host can run, by type name. */
  readonly classes: ReadonlyMap<string, AgentClass>;
  /** Whether the host serves JSON calls to its types. */
  readonly jsonCalls?: boolean;
}

/** An agent this host holds: running, or waiting out a retry backoff. */
export interface HostedAgent {
  placement: Placement;
  /** The engine running it; none once its run has ended. */
  engine: AgentEngine | undefined;
  /** Why the host itself stopped it: hand it back to the pool, or drop it (fenced: others own it). */
  handover: "requeue" | "drop" | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  /** Ends a retry backoff early. */
  wake?: (() => void) | undefined;
  /** Settles when the agent's run and its placement update are over. */
  finished: Promise<void>;
}

/** Capacity: launches being claimed plus agents running count against it. */
export class Slots {
  readonly capacity: number;
  #reserved = 0;
  #freed = deferred<void>();

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Slots neither reserved nor in use. */
  get free(): number {
    return this.capacity - this.#reserved;
  }

  reserve(): void {
    this.#reserved++;
  }

  /** Give a slot back, and wake whoever waits for one. */
  release(): void {
    this.#reserved--;
    const freed = this.#freed;
    this.#freed = deferred<void>();
    freed.resolve();
  }

  /** Resolves when a slot is released (or {@link wake} is called). */
  whenFreed(): Promise<void> {
    return this.#freed.promise;
  }

  /** Wake whoever waits for a slot, without releasing one (the host stops taking launches). */
  wake(): void {
    this.#freed.resolve();
  }
}

const ID_SAFE = /[^A-Za-z0-9_-]+/g;

/** A new host id: the display name made subject-safe, plus 8 random hex digits. */
export function newHostId(name: string): string {
  const base = name.replace(ID_SAFE, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "host";
  return `${base}-${randomBytes(4).toString("hex")}`;
}

/** The state the parts of one host share. */
export class HostCore {
  readonly settings: HostSettings;
  readonly backend: PoolBackend;
  /** The exchange the agents run on. */
  readonly factory: ExchangeFactory;
  readonly agents = new Map<string, HostedAgent>();
  readonly slots: Slots;
  /** The host's metrics (and the interceptor that counts its agents' actions). */
  readonly metrics: HostMetrics;
  state: HostState = HostState.Starting;
  startedAt = Date.now();
  readonly #baseLogger: Logger;
  #hostId: string;
  #logger: Logger;

  constructor(settings: HostSettings, backend: PoolBackend, factory: ExchangeFactory, logger: Logger, metrics: HostMetrics) {
    this.settings = settings;
    this.backend = backend;
    this.factory = factory;
    this.metrics = metrics;
    this.slots = new Slots(settings.capacity);
    this.#baseLogger = logger;
    this.#hostId = newHostId(settings.name);
    this.#logger = logger.child({ hostId: this.#hostId });
  }

  /** This host's id in the pool: claims and host records are made under it. */
  get hostId(): string {
    return this.#hostId;
  }

  /** The host's logger, bound to its current id. */
  get logger(): Logger {
    return this.#logger;
  }

  /** Agents running here (not those waiting out a retry backoff). */
  get load(): number {
    let running = 0;
    for (const agent of this.agents.values()) if (agent.engine !== undefined) running++;
    return running;
  }

  /**
   * Take a new id (after fencing: the old one is another host's to reap). Launches claimed from
   * now on are claimed under it.
   * @returns the old id.
   */
  renew(): string {
    const old = this.#hostId;
    this.#hostId = newHostId(this.settings.name);
    this.#logger = this.#baseLogger.child({ hostId: this.#hostId });
    return old;
  }

  /** This host's record, as of now (PROTOCOL.md 13.6). */
  record(): HostRecord {
    const { settings } = this;
    return {
      v: POOL_RECORD_VERSION,
      hostId: this.#hostId,
      name: settings.name,
      pool: settings.pool,
      hostname: hostname(),
      pid: process.pid,
      capacity: settings.capacity,
      load: this.load,
      types: [...settings.classes.keys()],
      chains: Object.fromEntries([...settings.classes].map(([name, cls]) => [name, agentTypeInfo(cls).chain])),
      startedAt: this.startedAt,
      heartbeatAt: Date.now(),
      heartbeatMs: settings.heartbeatMs,
      ttlMs: settings.hostTtlMs,
      draining: this.state === HostState.Draining,
      version: libraryVersion(),
      stats: { actions: this.metrics.agent.handled, failed: this.metrics.agent.failed },
    };
  }
}

/**
 * Sweeping and reaping: every host reaps the hosts of its pool that have been silent for their
 * time to live and queues their agents again; one host of the pool (the smallest id it knows)
 * also sweeps, from a watch-fed view of the pool's placements, for agents orphaned by hosts that
 * are gone and launch requests lost between two writes. docs/HOSTS.md 5.1 and 5.4.
 */
import { isFinal, PlacementState } from "../src/pool/placement.ts";
import type { StopWatch } from "../src/pool/pool-backend.ts";
import type { Placement } from "../src/pool/records.ts";
import { requeuePlacement } from "../src/pool/transition-placement.ts";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import { TraceAttribute, inSpan } from "../src/interceptors/tracing.ts";
import { HostState } from "./host-core.ts";
import type { HostCore } from "./host-core.ts";
import type { Peers } from "./host-peers.ts";

/** A queued placement older than this with no launch request in the stream is published again. */
const LOST_LAUNCH_AFTER_MS = 60_000;
/** Placements requeued at once. */
const REQUEUE_BATCH = 32;

/** The reaping and sweeping of one host. */
export class HostReaper {
  readonly #core: HostCore;
  readonly #peers: Peers;
  /** Peers being reaped now. */
  readonly #reaping = new Set<string>();
  #timers: NodeJS.Timeout[] = [];
  #sweeping = false;
  /** Placements of the pool, while this host is the one that sweeps. */
  #view: Map<string, Placement> | undefined;
  #stopView: StopWatch | undefined;

  constructor(core: HostCore, peers: Peers) {
    this.#core = core;
    this.#peers = peers;
  }

  /** Check for silent peers every half heartbeat (at least every 250 ms), and sweep every `sweepIntervalMs`. */
  start(): void {
    const { heartbeatMs, hostTtlMs, sweepIntervalMs } = this.#core.settings;
    this.#timers.push(
      setInterval(() => void this.#reapSilentPeers(), Math.max(250, Math.floor(heartbeatMs / 2))),
      setInterval(() => void this.#sweep(), sweepIntervalMs),
    );
    // Placements orphaned while no host of the pool was up (the whole pool restarted).
    setTimeout(() => void this.#sweep(), hostTtlMs + heartbeatMs).unref();
  }

  /** Stop checking and sweeping, and let the sweep's view go. */
  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#dropView();
  }

  /**
   * Requeue the placements among `placements` (default: the pool's, read now) held by a host
   * matching `orphaned`.
   * @returns how many were requeued.
   */
  async requeueOrphans(orphaned: (placement: Placement) => boolean, placements?: readonly Placement[]): Promise<number> {
    const { backend, settings } = this.#core;
    const candidates = (placements ?? (await backend.listPlacements(settings.pool))).filter(
      (p) => p.host !== undefined && !isFinal(p.state) && orphaned(p),
    );
    let requeued = 0;
    for (let i = 0; i < candidates.length; i += REQUEUE_BATCH) {
      const batch = candidates.slice(i, i + REQUEUE_BATCH);
      const results = await Promise.all(batch.map((p) => requeuePlacement(backend, p, { host: p.host!, gen: p.gen })));
      requeued += results.filter(Boolean).length;
    }
    return requeued;
  }

  /** Reap hosts of this pool not heard from for their time to live, and requeue their agents. */
  #reapSilentPeers(): void {
    if (this.#core.state !== HostState.Serving) return;
    for (const { entry, silentMs } of this.#peers.silent(this.#core.settings.pool, Date.now())) {
      const hostId = entry.value.hostId;
      if (this.#reaping.has(hostId)) continue;
      this.#reaping.add(hostId);
      void this.#reap(hostId, entry.revision, silentMs).finally(() => this.#reaping.delete(hostId));
    }
  }

  /**
   * Remove a silent host's record if it is still at `revision` (so one host reaps it, and not one
   * that heartbeated meanwhile), then queue its agents again. On NATS trouble the peer stays
   * listed, and the next check tries again.
   */
  async #reap(hostId: string, revision: number, silentMs: number): Promise<void> {
    const { backend, logger, metrics, settings } = this.#core;
    try {
      const reaped = await backend.deleteHost(hostId, revision);
      this.#peers.forget(hostId, revision);
      if (!reaped) return; // it heartbeated after all, or another host reaped it
      logger.warn({ deadHost: hostId, silentMs }, "reaped a silent host; restarting its agents");
      // A span of its own (a root): what a failover did, for whoever looks at traces.
      const attributes = { [TraceAttribute.HostId]: hostId, [TraceAttribute.Pool]: settings.pool, "academy.host.silent_ms": silentMs };
      const requeued = await inSpan(`reap ${hostId}`, { attributes }, async (span) => {
        const count = await this.requeueOrphans((p) => p.host === hostId);
        span?.setAttribute("academy.agents.requeued", count);
        return count;
      }, ROOT_CONTEXT);
      metrics.failover(requeued);
      logger.info({ deadHost: hostId, agents: requeued }, "agents of the reaped host queued again");
    } catch (error) {
      logger.warn({ err: error, deadHost: hostId }, "could not reap host; trying again");
    }
  }

  /**
   * The safety net, run by one host of the pool (the live host with the smallest id): requeue
   * placements held by hosts that no longer exist (a reaper died midway, the whole pool restarted),
   * and publish again launch requests lost between a placement write and its publish.
   */
  async #sweep(): Promise<void> {
    const core = this.#core;
    if (core.state !== HostState.Serving || this.#sweeping) return;
    if (this.#peers.idsIn(core.settings.pool).some((id) => id < core.hostId)) {
      this.#dropView();
      return;
    }
    this.#sweeping = true;
    try {
      const now = Date.now();
      const placements = [...(await this.#sweepView()).values()];
      const gone = await this.#goneHosts(placements);
      const requeued = await this.requeueOrphans((p) => gone.has(p.host!) && now - p.updatedAt > core.settings.hostTtlMs, placements);
      const republished = await this.#republishLost(placements, now);
      if (requeued + republished > 0) core.logger.warn({ requeued, republished }, "sweep restarted orphaned agents");
    } catch (error) {
      core.logger.warn({ err: error }, "placement sweep failed");
    } finally {
      this.#sweeping = false;
    }
  }

  /** The hosts that hold some of `placements` and have no record any more. */
  async #goneHosts(placements: readonly Placement[]): Promise<Set<string>> {
    const gone = new Set<string>();
    for (const host of new Set(placements.map((p) => p.host))) {
      if (host === undefined || host === this.#core.hostId || this.#peers.has(host)) continue;
      if ((await this.#core.backend.getHost(host)) === undefined) gone.add(host);
    }
    return gone;
  }

  /** Publish again the launch request of each queued placement that has waited long with none in the stream. */
  async #republishLost(placements: readonly Placement[], now: number): Promise<number> {
    const { backend, settings } = this.#core;
    let republished = 0;
    for (const p of placements) {
      if (p.state !== PlacementState.Queued || now - p.updatedAt < LOST_LAUNCH_AFTER_MS) continue;
      if (await backend.launchPending(settings.pool, p.uid)) continue;
      await backend.publishLaunch(p);
      republished++;
    }
    return republished;
  }

  /**
   * The pool's placements, kept by a watch while this host sweeps: a sweep then reads memory, not
   * the whole bucket (at 10,000 agents, decoding it every interval was most of an idle host's CPU).
   */
  async #sweepView(): Promise<ReadonlyMap<string, Placement>> {
    if (this.#view === undefined) {
      const view = new Map<string, Placement>();
      this.#stopView = await this.#core.backend.watchPlacements(this.#core.settings.pool, (p) => view.set(p.uid, p), { current: true });
      this.#view = view;
    }
    return this.#view;
  }

  /** Another host sweeps now (or this one stops): let the view go. */
  #dropView(): void {
    this.#stopView?.();
    this.#stopView = undefined;
    this.#view = undefined;
  }
}

/**
 * Liveness and fencing: a host writes its record when it joins the pool and rewrites it at every
 * heartbeat (compare-and-set on the revision it last wrote), and follows every host record to
 * know its peers. A host that finds its record changed or gone, or cannot heartbeat for its time
 * to live, is fenced: it stops the agents it held, rejoins under a new id, and reaps its own old
 * record if nobody else did. docs/HOSTS.md 5.1 and 5.3.
 *
 * A host runs its agents' actions only while it holds a lease: peers reap a host whose record has
 * not changed for its ttl, measured from when they saw the change, so a host whose last heartbeat
 * was sent less than a ttl ago (less a margin) cannot have been reaped. A host whose event loop or
 * connection stalled past that holds its agents' actions until a heartbeat gets through (then it
 * runs them) or it finds itself fenced (then it leaves them in their mailboxes for the agents' new
 * runs): a revived host never runs a request that another host's run of the same agent may get.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ClientClosedError, HostFencedError } from "../src/errors.ts";
import type { StopWatch } from "../src/pool/pool-backend.ts";
import type { HostAgents } from "./host-agents.ts";
import { HostState } from "./host-core.ts";
import type { HostCore } from "./host-core.ts";
import type { Peers } from "./host-peers.ts";
import type { HostReaper } from "./host-reaper.ts";
import { HeartbeatThread } from "./host-heartbeat-thread.ts";

/** The heartbeat and host record of one host. */
export class HostLiveness {
  readonly #core: HostCore;
  readonly #peers: Peers;
  readonly #agents: HostAgents;
  readonly #reaper: HostReaper;
  /** The revision of this host's record that it last wrote. */
  #revision = 0;
  #lastHeartbeat = 0;
  /** Actions held while the lease is in doubt: told true when a heartbeat gets through, false when fenced. */
  #held: Array<(admitted: boolean) => void> = [];
  #heartbeating: Promise<void> | undefined;
  /** The heartbeat thread, when heartbeats are written off the event loop. */
  #thread: HeartbeatThread | undefined;
  #stopWatch: StopWatch | undefined;
  /** Aborted when the host leaves: ends the heartbeat loop. */
  readonly #leaving = new AbortController();
  /** Aborted when the heartbeat thread takes over: ends the heartbeat loop. */
  readonly #handedOver = new AbortController();

  constructor(core: HostCore, peers: Peers, agents: HostAgents, reaper: HostReaper) {
    this.#core = core;
    this.#peers = peers;
    this.#agents = agents;
    this.#reaper = reaper;
  }

  /** When a heartbeat last got through (ms since the epoch). */
  get lastHeartbeat(): number {
    return this.#lastHeartbeat;
  }

  /**
   * Whether an action of one of this host's agents may run now: true while the host's lease holds
   * (its last heartbeat was sent less than `ttl - heartbeat / 2` ago), else a promise of the answer:
   * true once a heartbeat gets through, false if the host is fenced or leaves (the request stays in
   * its mailbox).
   */
  admission(): true | Promise<boolean> {
    const { hostTtlMs, heartbeatMs } = this.#core.settings;
    if (Date.now() < this.#lastHeartbeat + hostTtlMs - heartbeatMs / 2) return true;
    if (this.#core.state === HostState.Stopped) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => this.#held.push(resolve));
  }

  /** A heartbeat sent at `sentAt` got through: the lease runs from then. */
  #renewed(sentAt: number): void {
    this.#lastHeartbeat = sentAt;
    this.#release(true);
  }

  #release(admitted: boolean): void {
    if (this.#held.length === 0) return;
    const held = this.#held;
    this.#held = [];
    for (const resolve of held) resolve(admitted);
  }

  /** Write this host's record and start following the others'. */
  async join(): Promise<void> {
    const { backend } = this.#core;
    const sentAt = Date.now();
    this.#core.startedAt = sentAt;
    this.#revision = await backend.createHost(this.#core.record());
    this.#renewed(sentAt);
    this.#stopWatch = await backend.watchHosts(
      (entry) => this.#peers.observe(entry, this.#core.hostId),
      (hostId) => this.#peers.remove(hostId),
    );
  }

  /** Whether heartbeats are written by a thread of their own (else by the event loop). */
  get threaded(): boolean {
    return this.#thread !== undefined;
  }

  /**
   * Heartbeat every `heartbeatMs` until the host leaves: from a thread of its own if the settings
   * ask for it and it starts, else from the event loop. The event loop heartbeats while the thread
   * starts (loading its modules and connecting can take longer than a ttl on a loaded machine),
   * then hands the record over to it.
   */
  async start(): Promise<void> {
    const core = this.#core;
    this.#heartbeating = this.#heartbeatLoop(AbortSignal.any([this.#leaving.signal, this.#handedOver.signal]));
    if (!core.settings.heartbeatThread) return;
    const thread = await this.#startThread();
    if (thread === undefined) return;
    this.#handedOver.abort();
    await this.#heartbeating; // the write under way, if any
    this.#heartbeating = undefined;
    if (this.#leaving.signal.aborted) {
      await thread.stop();
      return;
    }
    if (!thread.alive) {
      core.logger.error("heartbeat thread exited; heartbeating from the event loop");
      this.#heartbeating = this.#heartbeatLoop(this.#leaving.signal);
      return;
    }
    this.#thread = thread;
    thread.resume(this.#revision);
  }

  async #startThread(): Promise<HeartbeatThread | undefined> {
    const core = this.#core;
    try {
      return await HeartbeatThread.start(core.factory.forWorker(), core.settings, () => core.record(), {
        beat: (revision, at) => {
          this.#revision = revision;
          this.#renewed(at);
        },
        failed: (message, silentMs) => core.logger.warn({ err: message, silentMs }, "heartbeat failed"),
        lost: (reason, message) => {
          if (core.state !== HostState.Serving) return;
          if (message !== undefined) core.logger.warn({ err: message }, "heartbeat failed");
          void this.#fence(reason).catch((error: unknown) => core.logger.error({ err: error }, "fencing failed"));
        },
        exited: (code) => {
          if (this.#thread === undefined) return; // not handed over yet: start() sees it
          this.#thread = undefined;
          if (this.#leaving.signal.aborted) return;
          core.logger.error({ code }, "heartbeat thread exited; heartbeating from the event loop");
          this.#heartbeating = this.#heartbeatLoop(this.#leaving.signal);
        },
      });
    } catch (error) {
      core.logger.warn({ err: error }, "no heartbeat thread; heartbeating from the event loop");
      return undefined;
    }
  }

  /** Rewrite the record now (a draining host tells managers and peers at once); best effort. */
  async announce(): Promise<void> {
    const write = this.#thread?.write() ?? this.#core.backend.updateHost(this.#core.record(), this.#revision);
    await write.then(
      (revision) => {
        if (revision !== undefined) this.#revision = revision;
      },
      () => undefined,
    );
  }

  /** Stop heartbeating and remove this host's record (if that fails, the record is reaped). */
  async leave(): Promise<void> {
    this.#leaving.abort();
    this.#release(false);
    const thread = this.#thread;
    this.#thread = undefined;
    if (thread !== undefined) this.#revision = (await thread.stop()) ?? this.#revision;
    await this.#heartbeating;
    await this.#core.backend.deleteHost(this.#core.hostId, this.#revision).catch((error: unknown) => {
      this.#core.logger.warn({ err: error }, "could not remove this host's record (it will be reaped)");
    });
  }

  /** Stop following the other hosts' records. */
  stopWatching(): void {
    this.#stopWatch?.();
  }

  async #heartbeatLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.#core.settings.heartbeatMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      await this.#heartbeat();
    }
  }

  async #heartbeat(): Promise<void> {
    const core = this.#core;
    const sentAt = Date.now();
    try {
      const revision = await core.backend.updateHost(core.record(), this.#revision);
      if (revision === undefined) {
        await this.#fence("another host reaped this one (its heartbeats were late)");
        return;
      }
      this.#revision = revision;
      this.#renewed(sentAt);
    } catch (error) {
      if (core.state === HostState.Stopped) return;
      const silentMs = Date.now() - this.#lastHeartbeat;
      core.logger.warn({ err: error, silentMs }, "heartbeat failed");
      if (silentMs >= core.settings.hostTtlMs && core.state === HostState.Serving) {
        await this.#fence(`no heartbeat got through for ${silentMs} ms`);
      }
    }
  }

  /**
   * This host lost its place: other hosts restart (or are about to restart) its agents. Stop them
   * without touching their placements or mailboxes, then rejoin the pool under a new id.
   */
  async #fence(reason: string): Promise<void> {
    const core = this.#core;
    const fencedRevision = this.#revision;
    const error = new HostFencedError(`Host ${core.hostId} left the pool: ${reason}`, { hostId: core.hostId });
    core.logger.error({ err: error, agents: core.agents.size }, "host fenced; stopping its agents and rejoining the pool");
    core.metrics.fenced();
    this.#release(false);
    // Launches claimed from now on are claimed under the new id, and their agents keep running.
    const oldId = core.renew();
    const stopping = this.#agents.stop("drop", (agent) => agent.placement.host === oldId);
    await this.#rejoin(oldId);
    await stopping;
    await this.#reapOwnRecord(oldId, fencedRevision);
  }

  /** Create this host's record under its new id, trying again every heartbeat while it serves. */
  async #rejoin(previousHostId: string): Promise<void> {
    const core = this.#core;
    while (core.state === HostState.Serving) {
      const sentAt = Date.now();
      try {
        this.#revision = await core.backend.createHost(core.record());
        this.#renewed(sentAt);
        this.#thread?.resume(this.#revision);
        core.logger.info({ previousHostId }, "host rejoined the pool");
        return;
      } catch (rejoinError) {
        if (rejoinError instanceof ClientClosedError) return;
        core.logger.warn({ err: rejoinError }, "could not rejoin the pool; retrying");
        await sleep(core.settings.heartbeatMs);
      }
    }
  }

  /**
   * Nobody may be left to reap a fenced host's old record (a lone host that lost NATS for a
   * while): reap it here, once its agents have stopped, and queue them again.
   */
  async #reapOwnRecord(oldId: string, revision: number): Promise<void> {
    const core = this.#core;
    try {
      if (await core.backend.deleteHost(oldId, revision)) {
        const requeued = await this.#reaper.requeueOrphans((p) => p.host === oldId);
        core.metrics.requeuedAfterFencing(requeued);
        core.logger.info({ previousHostId: oldId, agents: requeued }, "agents of the fenced host queued again");
      }
    } catch (reapError) {
      core.logger.warn({ err: reapError, previousHostId: oldId }, "could not reap the fenced host's old record");
    }
  }
}

/**
 * What host pools need from the system they run on, as one interface: the launch queue of each
 * pool, the placements and host records, and the few registry reads hosts and listings make.
 * `HostPoolExecutor`, runtime hosts and the `academy` listings use only this; an exchange offers
 * it through `ExchangeFactory.poolBackend` (the NATS exchange does: `nats-pool-backend.ts`, with
 * the layout of docs/NATS-LAYOUT.md section 14).
 */
import type { MailboxStatus } from "../exchange/mailbox-status.ts";
import type { AgentId, EntityRole } from "../identifiers.ts";
import type { AgentTypeInfo } from "../agent/agent-type.ts";
import type { HostRecord, LaunchRequest, Placement } from "./records.ts";

/** A record with the revision it was read or written at (the compare-and-set token). */
export interface Versioned<T> {
  readonly value: T;
  readonly revision: number;
}

/** A host record, with its revision and the backend's time of that revision. */
export interface HostEntry extends Versioned<HostRecord> {
  /** When the backend stored this revision (the last heartbeat), on the backend's clock. */
  readonly written: Date;
}

/** One launch request taken from a pool's queue; it stays in the queue until acknowledged. */
export interface LaunchDelivery {
  /** The request as published (decode with `decodeLaunchRequest`). */
  readonly data: Uint8Array;
  /** Where it was published (for logs). */
  readonly subject: string;
  /** Its position in the queue (for logs). */
  readonly seq: number;
  /** Done with it: remove it from the queue. */
  ack(): void;
  /** Hand it back, for this or another host to take again after `delayMs`. */
  nak(delayMs?: number): void;
  /** Remove it from the queue without handling it. */
  term(): void;
  /** Still handling it: do not hand it to another host yet. */
  working(): void;
  /**
   * Keep a copy of it, unchanged, with `error` as the reason, where rejected launches of its
   * pool are kept (not acknowledged: call {@link ack} once this settles).
   * @throws {ExchangeUnavailableError} if the copy cannot be written within the retry window.
   */
  deadLetter(error: Error): Promise<void>;
}

/** Launch requests handed out by one fetch; iterate them, or `stop` the fetch early. */
export interface LaunchBatch extends AsyncIterable<LaunchDelivery> {
  stop(): void;
}

/** The queue the hosts of one pool share: each request goes to one host at a time. */
export interface LaunchQueue {
  /** Up to `max` requests, as they arrive, until `expiresMs` passes. */
  fetch(options: { readonly max: number; readonly expiresMs: number }): Promise<LaunchBatch>;
}

/** A mailbox's registry record, as `academy agents` lists it. */
export interface MailboxEntry {
  readonly uid: string;
  readonly role: EntityRole;
  readonly name?: string | undefined;
  /** Agents: the type name. */
  readonly type?: string | undefined;
  readonly status: MailboxStatus;
  /** Registration time, ms since the epoch. */
  readonly registeredAt: number;
  /** Termination time, ms since the epoch (terminated mailboxes). */
  readonly terminatedAt?: number | undefined;
  /** The record's revision (the compare-and-set token of {@link PoolBackend.deleteMailbox}). */
  readonly revision: number;
}

/** Stops a watch. */
export type StopWatch = () => void;

/**
 * The storage and queues of host pools. Every write that can race is a create-if-absent or a
 * compare-and-set on a revision; read-and-retry loops are the caller's (`transitionPlacement`).
 * Methods retry through transient outages and then throw `ExchangeUnavailableError`.
 */
export interface PoolBackend {
  /**
   * The site whose pools these are (docs/EDGE.md), when the exchange has a site identity: the
   * ids of agents run on them carry it. Undefined on a single-site exchange.
   */
  readonly site: string | undefined;

  // --- launches ---

  /**
   * Put a launch request in its pool's queue, stored once per agent and generation.
   * @param encoded - `encodeLaunchRequest(request)`, when the caller has it already (not encoded again).
   */
  publishLaunch(request: LaunchRequest, encoded?: Uint8Array): Promise<void>;
  /**
   * Put a launch request in the queue of `request.pool` on another site (docs/EDGE.md): stored
   * here in the outbox to that site and forwarded when its uplink allows, however long that takes.
   * That site registers the agent (uid, name, type and ancestry from the request) and queues the
   * request for its hosts; the placement is written there only.
   * @throws {UnknownSiteError} if the backend's exchange does not reach `site`.
   * @throws {SiteUnreachableError} if the link to `site` was never set up and it does not answer.
   */
  publishRemoteLaunch(site: string, request: LaunchRequest): Promise<void>;
  /**
   * Call `listener` with the uid of every mailbox of another site seen terminated from now on
   * (read from the local mirror of that site's registry), until stopped.
   */
  onRemoteMailboxTerminated(site: string, listener: (uid: string) => void): StopWatch;
  /** Whether a launch request for agent `uid` is waiting in `pool`'s queue. */
  launchPending(pool: string, uid: string): Promise<boolean>;
  /**
   * The queue of `pool`, created if missing.
   * @throws {InvalidConfigError} if the pool's queue exists with another configuration.
   */
  launchQueue(pool: string): Promise<LaunchQueue>;
  /**
   * Check a record of `size` bytes can be stored.
   * @param what - what it is, for the error message.
   * @throws {PayloadTooLargeError} if it cannot.
   */
  checkSize(size: number, what: string): void;

  // --- placements (key: pool and uid) ---

  /** The placement of agent `uid` on `pool`, with its revision; undefined if there is none. */
  getPlacement(pool: string, uid: string): Promise<Versioned<Placement> | undefined>;
  /**
   * Create a placement; undefined if one exists already.
   * @throws {PayloadTooLargeError} if it is too large to store.
   */
  createPlacement(placement: Placement): Promise<Versioned<Placement> | undefined>;
  /** Replace a placement if it is still at `revision`; the new revision, or undefined if it changed. */
  compareAndSetPlacement(placement: Placement, revision: number): Promise<number | undefined>;
  /** Remove a placement if it is still at `revision`; false if it changed or is gone. */
  deletePlacement(pool: string, uid: string, revision: number): Promise<boolean>;
  /** Every placement of `pool` (of every pool without one), latest values. */
  listPlacements(pool?: string): Promise<Placement[]>;
  /** The placements of agent `uid`, on every pool. */
  placementsOf(uid: string): Promise<Placement[]>;
  /**
   * Call `onChange` for every placement of `pool` (of every pool when undefined) written from now
   * on (with `current`: first for the latest value of each existing one), until stopped; a failed
   * watch resumes where it stopped. Resolves once the watch is in place.
   */
  watchPlacements(pool: string | undefined, onChange: (placement: Placement) => void, options?: { readonly current?: boolean }): Promise<StopWatch>;

  // --- host records (key: host id) ---

  /** Create a host record; its revision. Throws if the id is taken. */
  createHost(record: HostRecord): Promise<number>;
  /** Rewrite a host record if still at `revision`; the new revision, or undefined if it changed or is gone. */
  updateHost(record: HostRecord, revision: number): Promise<number | undefined>;
  /** Remove a host record (if still at `revision`, when given); false if it had changed. */
  deleteHost(hostId: string, revision?: number): Promise<boolean>;
  /** A host's record; undefined if it has none (it left, or was reaped). */
  getHost(hostId: string): Promise<HostEntry | undefined>;
  /** Every host record (of `pool`, if given). */
  listHosts(pool?: string): Promise<HostEntry[]>;
  /**
   * Follow the host records: `onPut` for each (the current ones first), `onRemove` when one is
   * removed, until stopped. Resolves once the watch is in place.
   */
  watchHosts(onPut: (entry: HostEntry) => void, onRemove: (hostId: string) => void): Promise<StopWatch>;

  // --- the registry, as hosts and listings use it ---

  /** A mailbox's status, read now from the registry (no cache). */
  mailboxStatus(uid: string): Promise<MailboxStatus>;
  /**
   * Register an agent mailbox under an id chosen by the caller (keyed routing: the id is derived
   * from the type and key), unless a record exists already (create-if-absent, so routers racing
   * register it once).
   * @returns whether this call registered it.
   */
  registerAgentAs(id: AgentId, type: AgentTypeInfo): Promise<boolean>;
  /** Terminate an agent's mailbox (its waiting requests are answered with `MailboxTerminatedError`). */
  terminateMailbox(id: AgentId): Promise<void>;
  /** Call `listener` with the uid of every mailbox terminated from now on, until stopped. */
  onMailboxTerminated(listener: (uid: string) => void): StopWatch;
  /** Every mailbox record. */
  listMailboxes(): Promise<MailboxEntry[]>;
  /**
   * Follow the registry: `onPut` for every mailbox record (the current ones first, then each
   * write), `onRemove` when a record is removed (garbage collection), until stopped. Resolves once
   * the watch is in place.
   */
  watchMailboxes(onPut: (entry: MailboxEntry) => void, onRemove: (uid: string) => void): Promise<StopWatch>;
  /**
   * Remove a mailbox's record if it is still at `revision` (garbage collection of terminated
   * mailboxes: afterwards the mailbox reads as `missing`); false if it changed or is gone.
   */
  deleteMailbox(uid: string, revision: number): Promise<boolean>;

  /** Whether the backend's connection is closed for good. */
  isClosed(): boolean;
}

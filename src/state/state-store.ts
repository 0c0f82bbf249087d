/**
 * The storage of agents' durable state, implemented by each exchange (`ExchangeFactory.stateStore()`):
 * in memory by the in-process exchange, a KV bucket (`<prefix>_state`) on NATS. One record per
 * agent; every write but the first is a compare-and-set on the revision the writer last read,
 * which is what fences a stale run off (docs/STATE.md, *Fencing*).
 */
import type { VersionedBytes } from "./state-record.ts";

/** The durable state records of one exchange. */
export interface StateStore {
  /** Largest record the store takes, in bytes. */
  readonly maxRecordBytes: number;
  /**
   * The record of agent `uid` with its revision, or undefined when it has none.
   * @throws {ExchangeUnavailableError} when the exchange cannot be reached within its retry window.
   */
  get(uid: string): Promise<VersionedBytes | undefined>;
  /**
   * Create the record of agent `uid` if it has none.
   * @returns the new revision.
   * @throws {StateConflictError} if a record exists.
   * @throws {StateTooLargeError} for a record over `maxRecordBytes`.
   */
  create(uid: string, bytes: Uint8Array): Promise<number>;
  /**
   * Replace the record of agent `uid` if it is still at `revision`.
   * @returns the new revision.
   * @throws {StateConflictError} if it changed (or was deleted) since.
   * @throws {StateTooLargeError} for a record over `maxRecordBytes`.
   */
  update(uid: string, bytes: Uint8Array, revision: number): Promise<number>;
  /**
   * Delete the record of agent `uid`: only if it is still at `revision` when given.
   * @returns false when it was not at `revision` (nothing deleted); true otherwise.
   */
  delete(uid: string, revision?: number): Promise<boolean>;
}

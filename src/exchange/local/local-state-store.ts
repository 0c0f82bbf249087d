/**
 * Agents' durable state in process: the same records, revisions and compare-and-set rules as the
 * NATS bucket (`nats-state-store.ts`), in a map. The maps live with the `LocalExchange`, so agents
 * in worker threads reach them through the exchange's port.
 */
import { StateConflictError, StateTooLargeError } from "../../errors.ts";
import type { VersionedBytes } from "../../state/state-record.ts";
import type { StateStore } from "../../state/state-store.ts";

/** The synchronous record map behind {@link LocalStateStore} (one per `LocalExchange`). */
export class MemoryStateRecords {
  readonly maxRecordBytes: number;
  readonly #records = new Map<string, VersionedBytes>();
  #revision = 0;

  constructor(maxRecordBytes: number) {
    this.maxRecordBytes = maxRecordBytes;
  }

  get(uid: string): VersionedBytes | undefined {
    return this.#records.get(uid);
  }

  create(uid: string, bytes: Uint8Array): number {
    if (this.#records.has(uid)) throw new StateConflictError(`The state of agent ${uid} exists already`, { agentId: uid, expectedRevision: 0 });
    return this.#put(uid, bytes);
  }

  update(uid: string, bytes: Uint8Array, revision: number): number {
    const current = this.#records.get(uid);
    if (current === undefined || current.revision !== revision) {
      throw new StateConflictError(`The state of agent ${uid} changed since revision ${revision}: another run of the agent owns it`, {
        agentId: uid,
        expectedRevision: revision,
      });
    }
    return this.#put(uid, bytes);
  }

  delete(uid: string, revision?: number): boolean {
    const current = this.#records.get(uid);
    if (current === undefined) return true;
    if (revision !== undefined && current.revision !== revision) return false;
    this.#records.delete(uid);
    return true;
  }

  #put(uid: string, bytes: Uint8Array): number {
    if (bytes.byteLength > this.maxRecordBytes) {
      throw new StateTooLargeError(`The state record of agent ${uid} is ${bytes.byteLength} bytes; the store takes at most ${this.maxRecordBytes}`, {
        agentId: uid,
        size: bytes.byteLength,
        limit: this.maxRecordBytes,
      });
    }
    // A copy: the caller's buffer may be reused, as on NATS where the bytes leave the process.
    const revision = ++this.#revision;
    this.#records.set(uid, { bytes: Uint8Array.from(bytes), revision });
    return revision;
  }
}

/** The operations of {@link MemoryStateRecords}, local or across a worker's port. */
export interface StateRecordsApi {
  readonly maxRecordBytes: number;
  get(uid: string): VersionedBytes | undefined | Promise<VersionedBytes | undefined>;
  create(uid: string, bytes: Uint8Array): number | Promise<number>;
  update(uid: string, bytes: Uint8Array, revision: number): number | Promise<number>;
  delete(uid: string, revision?: number): boolean | Promise<boolean>;
}

/** {@link StateStore} over the in-process records. */
export class LocalStateStore implements StateStore {
  readonly #records: StateRecordsApi;

  constructor(records: StateRecordsApi) {
    this.#records = records;
  }

  get maxRecordBytes(): number {
    return this.#records.maxRecordBytes;
  }

  async get(uid: string): Promise<VersionedBytes | undefined> {
    return this.#records.get(uid);
  }

  async create(uid: string, bytes: Uint8Array): Promise<number> {
    return this.#records.create(uid, bytes);
  }

  async update(uid: string, bytes: Uint8Array, revision: number): Promise<number> {
    return this.#records.update(uid, bytes, revision);
  }

  async delete(uid: string, revision?: number): Promise<boolean> {
    return this.#records.delete(uid, revision);
  }
}

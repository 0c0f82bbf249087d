/**
 * Agents' durable state on NATS (`StateStore`): the KV bucket `<prefix>_state`, one key per agent
 * uid, history 1. Creates and updates are the KV's compare-and-set (`create`, `update` with the
 * expected revision); a lost race is a `StateConflictError`. Provisioned on first use (processes
 * whose agents keep no state never create it). docs/NATS-LAYOUT.md section 16.
 */
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { ExchangeNotFoundError, StateConflictError, StateTooLargeError } from "../../errors.ts";
import type { VersionedBytes } from "../../state/state-record.ts";
import type { StateStore } from "../../state/state-store.ts";
import { kvBucketOptions, openBucket } from "./nats-exchange.ts";
import type { NatsExchange } from "./nats-exchange.ts";
import { isWrongLastSequence } from "./nats-errors.ts";
import { HEADER_ALLOWANCE } from "./nats-launch-queue.ts";

const stores = new WeakMap<NatsExchange, Promise<NatsStateStore>>();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** The state bucket of one NATS exchange connection. */
export class NatsStateStore implements StateStore {
  readonly maxRecordBytes: number;
  readonly #ctx: NatsExchange;
  readonly #kv: KV | undefined;

  private constructor(ctx: NatsExchange, kv: KV | undefined) {
    this.#ctx = ctx;
    this.#kv = kv;
    this.maxRecordBytes = ctx.maxPayload - HEADER_ALLOWANCE;
  }

  /** The store of an exchange connection, its bucket provisioned on first use. */
  static for(ctx: NatsExchange): Promise<NatsStateStore> {
    let store = stores.get(ctx);
    if (store === undefined) {
      store = NatsStateStore.#open(ctx);
      stores.set(ctx, store);
      store.catch(() => stores.delete(ctx));
    }
    return store;
  }

  static async #open(ctx: NatsExchange): Promise<NatsStateStore> {
    const kvm = new Kvm(ctx.js);
    const kv = await ctx
      .retry("provision state bucket", () => openBucket(kvm, ctx.jsm, ctx.layout.stateBucket, kvBucketOptions(ctx.settings), ctx.provisioning))
      .catch((error: unknown) => {
        // Read-only tools on a prefix whose agents never kept state: an empty store.
        if (error instanceof ExchangeNotFoundError && !ctx.provisioning.provision) return undefined;
        throw error;
      });
    return new NatsStateStore(ctx, kv);
  }

  get #bucket(): KV {
    if (this.#kv === undefined) throw new ExchangeNotFoundError(`No state bucket ${this.#ctx.layout.stateBucket} under prefix ${this.#ctx.settings.prefix}`, { prefix: this.#ctx.settings.prefix });
    return this.#kv;
  }

  async get(uid: string): Promise<VersionedBytes | undefined> {
    if (this.#kv === undefined) return undefined;
    const kv = this.#kv;
    const entry = await this.#ctx.retry("read agent state", () => kv.get(uid));
    if (entry === null || entry.operation !== "PUT") return undefined;
    return { bytes: entry.value, revision: entry.revision };
  }

  async create(uid: string, bytes: Uint8Array): Promise<number> {
    this.#checkSize(uid, bytes);
    const kv = this.#bucket;
    return this.#compareAndSet(uid, bytes, 0, () => kv.create(uid, bytes));
  }

  async update(uid: string, bytes: Uint8Array, revision: number): Promise<number> {
    this.#checkSize(uid, bytes);
    const kv = this.#bucket;
    return this.#compareAndSet(uid, bytes, revision, () => kv.update(uid, bytes, revision));
  }

  async delete(uid: string, revision?: number): Promise<boolean> {
    if (this.#kv === undefined) return true;
    const kv = this.#kv;
    try {
      await this.#ctx.retry("delete agent state", () => kv.purge(uid, revision === undefined ? undefined : { previousSeq: revision }));
      return true;
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw error;
    }
  }

  #checkSize(uid: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.maxRecordBytes) {
      throw new StateTooLargeError(`The state record of agent ${uid} is ${bytes.byteLength} bytes; the server takes at most ${this.maxRecordBytes}`, {
        agentId: uid,
        size: bytes.byteLength,
        limit: this.maxRecordBytes,
      });
    }
  }

  /**
   * One compare-and-set write, retried through transient failures. A retry that finds the key moved
   * on may be finding its own earlier attempt, which the server stored although its answer was
   * lost: when the stored record is these very bytes, the write succeeded.
   */
  async #compareAndSet(uid: string, bytes: Uint8Array, revision: number, write: () => Promise<number>): Promise<number> {
    let attempts = 0;
    try {
      return await this.#ctx.retry("write agent state", () => {
        attempts++;
        return write();
      });
    } catch (error) {
      if (!isWrongLastSequence(error)) throw error;
      if (attempts > 1) {
        const current = await this.get(uid);
        if (current !== undefined && current.revision > revision && sameBytes(current.bytes, bytes)) return current.revision;
      }
      throw new StateConflictError(`The state of agent ${uid} changed since revision ${revision}: another run of the agent owns it`, {
        agentId: uid,
        expectedRevision: revision,
        cause: error,
      });
    }
  }
}

/**
 * The type index's member lists on NATS (layout 2, `type-members.ts`), in their own bucket
 * (`<p>_type_lists`, never mirrored by other sites): compare-and-set edits coalesced per key, the
 * cold read of a type's members checked against the registry in one request, and the migration
 * from the per-uid keys of layout 1.
 *
 * Edits of one list made by this process while a compare-and-set of that list is in flight are
 * applied together by the next one, so that launching many agents of a type costs one write per
 * shard at a time, not one per agent racing the others.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { isWrongLastSequence } from "./nats-errors.ts";
import {
  LAYOUT_READY_KEY,
  MEMBER_LAYOUT_VERSION,
  TYPE_CATALOG_KEY,
  applyMemberEdits,
  decodeCatalog,
  decodeMembers,
  encodeCatalog,
  encodeMembers,
  isCurrentMember,
  memberListKey,
  memberListKeys,
  memberShard,
} from "./type-members.ts";
import type { MemberEdit, RegistryStreamState, TypeMember } from "./type-members.ts";
import { encodeValue } from "../../protocol/codec.ts";

/**
 * Above this many removed messages in the registry stream, its list of removed sequences is not
 * requested (it grows with every termination): the caller checks members one record at a time.
 */
export const MAX_DELETED_DETAILS = 100_000;

/**
 * Above this size a member list value is decoded in a turn of the event loop of its own: a shard
 * of 10,000 agents of one type is about 28 KiB.
 */
const LARGE_LIST_BYTES = 64 * 1024;

interface QueuedEdit {
  readonly edit: MemberEdit;
  resolve(): void;
  reject(error: unknown): void;
}

/** A member of a concrete type, as a cold read finds it. */
export interface FoundMember extends TypeMember {
  readonly type: string;
}

export class TypeMemberLists {
  /** The member lists bucket. */
  readonly #lists: KV;
  readonly #jsm: JetStreamManager;
  readonly #registryStream: string;
  readonly #retry: <T>(what: string, operation: () => Promise<T>) => Promise<T>;
  /** Edits waiting for the compare-and-set in flight on their key. */
  readonly #queues = new Map<string, QueuedEdit[]>();
  /** Types this process has found in the catalog or put there (a type's ancestry does not change). */
  readonly #catalogued = new Map<string, Promise<void>>();

  /** `lists`: the member lists bucket (`NatsLayout.memberListsBucket`), never a mirror. */
  constructor(lists: KV, jsm: JetStreamManager, registryBucket: string, retry: <T>(what: string, operation: () => Promise<T>) => Promise<T>) {
    this.#lists = lists;
    this.#jsm = jsm;
    this.#registryStream = `KV_${registryBucket}`;
    this.#retry = retry;
  }

  /** Add an agent to its concrete type's list (and the type to the catalog). */
  async add(chain: readonly string[], member: TypeMember): Promise<void> {
    const type = chain[0]!;
    await Promise.all([this.#catalog(chain), this.#edit(memberListKey(type, member.uid), { kind: "add", member })]);
  }

  /** Remove an agent from its concrete type's list. */
  async remove(type: string, uid: string): Promise<void> {
    await this.#edit(memberListKey(type, uid), { kind: "remove", uid });
  }

  /** Whether the lists are complete (layout 2 is ready). */
  async ready(): Promise<boolean> {
    const entry = await this.#retry("read type index layout", () => this.#lists.get(LAYOUT_READY_KEY));
    return entry !== null && entry.operation === "PUT";
  }

  /**
   * A marker of this deployment's maintenance, kept in the lists bucket (which other sites do not
   * mirror): its value, or undefined when absent.
   */
  async marker(key: string): Promise<Uint8Array | undefined> {
    const entry = await this.#retry("read deployment marker", () => this.#lists.get(key));
    return entry !== null && entry.operation === "PUT" ? entry.value : undefined;
  }

  /** Set a marker if absent (a marker set by another process is kept). */
  async mark(key: string, value: Uint8Array): Promise<void> {
    await this.#retry("write deployment marker", async () => {
      try {
        await this.#lists.create(key, value);
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
      }
    });
  }

  /** Mark the lists complete. */
  async markReady(): Promise<void> {
    await this.#retry("mark type index layout", async () => {
      try {
        await this.#lists.create(LAYOUT_READY_KEY, encodeValue(MEMBER_LAYOUT_VERSION));
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
      }
    });
  }

  /**
   * The members of every concrete type that is `typeName` (or derives from it, with
   * `allowSubclasses`), as the lists hold them: the catalog, then each matching type's shards,
   * every key read by name at the stream's leader.
   */
  async members(typeName: string, allowSubclasses: boolean): Promise<FoundMember[]> {
    const catalog = await this.#readCatalog();
    const types: string[] = [];
    for (const [type, chain] of catalog) if (allowSubclasses ? chain.includes(typeName) : type === typeName) types.push(type);
    const keys = types.flatMap((type) => memberListKeys(type).map((key, shard) => ({ type, key, shard })));
    const values = await Promise.all(keys.map(({ key }) => this.#retry("read type members", () => this.#lists.get(key))));
    const found: FoundMember[] = [];
    for (let i = 0; i < values.length; i++) {
      const entry = values[i];
      if (entry === null || entry === undefined || entry.operation !== "PUT") continue;
      const { type, shard } = keys[i]!;
      // A value far larger than a list of this size is written by someone else and may be slow to
      // decode (up to ~0.2 s for 1 MiB of some CBOR): let other work run between two of them.
      if (entry.value.byteLength > LARGE_LIST_BYTES) await new Promise<void>((resolve) => setImmediate(resolve));
      for (const member of decodeMembers(entry.value) ?? []) {
        // A member filed under another shard than its own was not written by the library.
        if (memberShard(member.uid) === shard) found.push({ uid: member.uid, revision: member.revision, name: member.name, type });
      }
    }
    return found;
  }

  /** The catalog as stored (empty when absent or unreadable). */
  async #readCatalog(): Promise<Map<string, string[]>> {
    const entry = await this.#retry("read type catalog", () => this.#lists.get(TYPE_CATALOG_KEY));
    return (entry !== null && entry.operation === "PUT" ? decodeCatalog(entry.value) : undefined) ?? new Map();
  }

  /**
   * The registry stream's state for {@link isCurrentMember}, in one request; undefined when the
   * stream has removed too many messages to list them ({@link MAX_DELETED_DETAILS}).
   */
  async registryState(): Promise<RegistryStreamState | undefined> {
    const brief = await this.#retry("read registry state", () => this.#jsm.streams.info(this.#registryStream));
    if ((brief.state.num_deleted ?? 0) > MAX_DELETED_DETAILS) return undefined;
    const info =
      (brief.state.num_deleted ?? 0) === 0
        ? brief
        : await this.#retry("read registry state", () => this.#jsm.streams.info(this.#registryStream, { deleted_details: true }));
    return { firstSeq: info.state.first_seq, lastSeq: info.state.last_seq, deleted: new Set(info.state.deleted ?? []) };
  }

  /** Keep only members whose registry record is unchanged since they were listed. */
  static current(members: readonly FoundMember[], state: RegistryStreamState): FoundMember[] {
    return members.filter((m) => isCurrentMember(m, state));
  }

  /**
   * Put a concrete type in the catalog, once per process: read it, and add the type by
   * compare-and-set unless it is there (its ancestry is fixed: one class per type name).
   */
  #catalog(chain: readonly string[]): Promise<void> {
    const type = chain[0]!;
    let done = this.#catalogued.get(type);
    if (done === undefined) {
      done = this.#retry("catalog agent type", async () => {
        for (;;) {
          const entry = await this.#lists.get(TYPE_CATALOG_KEY);
          const catalog = (entry !== null && entry.operation === "PUT" ? decodeCatalog(entry.value) : undefined) ?? new Map<string, string[]>();
          if (catalog.has(type)) return;
          catalog.set(type, [...chain]);
          try {
            if (entry === null) await this.#lists.create(TYPE_CATALOG_KEY, encodeCatalog(catalog));
            else await this.#lists.update(TYPE_CATALOG_KEY, encodeCatalog(catalog), entry.revision);
            return;
          } catch (error) {
            if (!isWrongLastSequence(error)) throw error;
          }
        }
      });
      this.#catalogued.set(type, done);
      done.catch(() => this.#catalogued.delete(type));
    }
    return done;
  }

  /** Queue an edit of `key`; the first edit of an idle key starts the writer of that key. */
  #edit(key: string, edit: MemberEdit): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const queue = this.#queues.get(key);
      if (queue !== undefined) {
        queue.push({ edit, resolve, reject });
        return;
      }
      this.#queues.set(key, [{ edit, resolve, reject }]);
      void this.#drain(key);
    });
  }

  /** Apply the queued edits of `key`, as many at a time as have queued, until none is left. */
  async #drain(key: string): Promise<void> {
    for (;;) {
      const queue = this.#queues.get(key)!;
      if (queue.length === 0) {
        this.#queues.delete(key);
        return;
      }
      const batch = queue.splice(0);
      try {
        await this.#retry("edit type members", () => this.#commit(key, batch.map((q) => q.edit)));
        for (const q of batch) q.resolve();
      } catch (error) {
        for (const q of batch) q.reject(error);
      }
    }
  }

  /** One compare-and-set loop: read the list at the leader, edit it, write it at that revision. */
  async #commit(key: string, edits: readonly MemberEdit[]): Promise<void> {
    for (;;) {
      const entry = await this.#lists.get(key);
      // A value that is not a list (written over the key by someone else) is replaced.
      const current = entry !== null && entry.operation === "PUT" ? (decodeMembers(entry.value) ?? []) : [];
      const next = applyMemberEdits(current, edits);
      if (next === undefined) return;
      try {
        if (entry === null) await this.#lists.create(key, encodeMembers(next));
        else await this.#lists.update(key, encodeMembers(next), entry.revision);
        return;
      } catch (error) {
        if (isWrongLastSequence(error)) continue; // another writer got there first: read again
        throw error;
      }
    }
  }
}

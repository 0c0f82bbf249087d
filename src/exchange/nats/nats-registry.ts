/**
 * Mailbox registration, status and the type index, in three KV buckets:
 *
 * - registry bucket, key `<uid>`: the mailbox record (CBOR), see {@link MailboxRecord};
 * - types bucket, key `<type token>.<uid>`: one entry per type in an active agent's ancestry,
 *   value `[concrete type name, display name?]` (CBOR), what foreign clients and site mirrors
 *   read (layout 1; each key written once and removed once, so safe to mirror);
 * - member lists bucket, keys `v2.…`: the member lists of each concrete type, what a cold
 *   discover reads (layout 2, `type-members.ts`), kept by compare-and-set and never mirrored.
 *   A registry over another site's mirrors has none ({@link NatsRegistry} `lists` undefined).
 *
 * Registration writes the record, then the index; termination removes the index entries, then
 * marks the record terminated (compare-and-set), so `discover` never returns a terminated agent.
 */
import { MailboxStatus } from "../mailbox-status.ts";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { AgentTypeInfo } from "../../agent/agent-type.ts";
import { typeNameToken } from "../../agent/agent-type.ts";
import { CrossSiteOperationError } from "../../errors.ts";
import { AgentId, EntityRole } from "../../identifiers.ts";
import type { EntityId } from "../../identifiers.ts";
import { decodeValue, encodeValue } from "../../protocol/codec.ts";
import type { AgentRegistration } from "../transport.ts";

import { scanLatest, scanLatestEntries } from "./kv-scan.ts";
import { isWrongLastSequence, withNatsRetry } from "./nats-errors.ts";
import { TypeMemberLists } from "./type-member-lists.ts";
import { LEGACY_LIST_KEYS, decodeCatalog } from "./type-members.ts";
import { KvRecords } from "./kv-records.ts";
import type { RecordPublisher } from "./kv-records.ts";

/** Version of the record format (field `v`). */
export const RECORD_VERSION = 1;

/** Mailbox uids (as `natsLayout` accepts them). */
const UID = /^[A-Za-z0-9_-]{1,64}$/;
/** Registry gets in flight at once while checking index hits. */
const RECORD_GETS_AT_ONCE = 256;

/**
 * Whether a type-index value is one: a CBOR array `[concrete type name, display name?]` of text,
 * whose concrete type is `typeName` when subclasses are not wanted.
 */
function isIndexValue(bytes: Uint8Array, typeName: string, allowSubclasses: boolean): boolean {
  try {
    const value = decodeValue(bytes) as unknown;
    if (!Array.isArray(value) || value.length < 1 || value.length > 2 || typeof value[0] !== "string") return false;
    return allowSubclasses || value[0] === typeName;
  } catch {
    return false;
  }
}

/** A mailbox's registry record. */
export interface MailboxRecord {
  readonly v: number;
  readonly role: EntityRole;
  readonly uid: string;
  readonly name?: string | undefined;
  /** Agents: own type name. */
  readonly type?: string | undefined;
  /** Agents: own type name, then ancestors', ending with "Agent". */
  readonly chain?: readonly string[] | undefined;
  readonly status: typeof MailboxStatus.Active | typeof MailboxStatus.Terminated;
  /** Registration time, ms since the epoch. */
  readonly registeredAt: number;
  /** Termination time, ms since the epoch. */
  readonly terminatedAt?: number | undefined;
}

/** A record with the KV revision it was read at. */
export interface RecordEntry {
  readonly record: MailboxRecord;
  readonly revision: number;
}

/** Decode a record; undefined for anything that is not one (foreign or corrupt values). */
export function decodeRecord(bytes: Uint8Array): MailboxRecord | undefined {
  try {
    const value = decodeValue(bytes) as Partial<MailboxRecord> | null;
    if (value === null || typeof value !== "object" || typeof value.uid !== "string") return undefined;
    if (value.role !== EntityRole.Agent && value.role !== EntityRole.User) return undefined;
    if (value.status !== MailboxStatus.Active && value.status !== MailboxStatus.Terminated) return undefined;
    return value as MailboxRecord;
  } catch {
    return undefined;
  }
}

/**
 * Key of the lists bucket set once this site's registry holds no compare-and-set write as a
 * record's last one ({@link NatsRegistry.rewriteCompareAndSetRecords}); its value is the registry
 * stream's last sequence then (CBOR integer): a mirror of the registry in another site that has
 * not passed that sequence and does not move may be stuck at a write of an earlier version
 * (docs/EDGE.md 4).
 */
export const MIRROR_SAFE_KEY = "v2.registry.mirror-safe";

/** Records rewritten at once by {@link NatsRegistry.rewriteCompareAndSetRecords}. */
const REWRITE_BATCH = 256;

/** Registry operations on the registry, types and member lists buckets. */
export class NatsRegistry {
  readonly #registry: KV;
  readonly #types: KV;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  /** Stream behind the types bucket, and the subject prefix of its keys (the KV conventions). */
  readonly #typesBucket: string;
  readonly #registryBucket: string;
  readonly #typesStream: string;
  readonly #typesKeys: string;
  readonly #retryWindowMs: number;
  /** The site put on the ids this registry mints and finds (undefined: none). */
  readonly #site: string | undefined;
  /** Layout 2 of the type index: the member lists of each concrete type; undefined over mirrors. */
  readonly #members: TypeMemberLists | undefined;
  /** Record reads, registrations and index entries through the exchange's shared-inbox publisher, when given. */
  readonly #registryWrites: KvRecords | undefined;
  readonly #typesWrites: KvRecords | undefined;

  /**
   * `lists` is the member lists bucket of this site; undefined for a registry over the read-only
   * mirrors of another site's registry and types buckets (the lists are not mirrored: such a
   * registry discovers from the per-uid keys, {@link indexHits}, and never writes). `publish`
   * serves record reads and the writes of registration (records, index entries) without a nats.js
   * request each (`kv-records.ts`); without it they go through nats.js' KV.
   */
  constructor(
    registry: KV,
    types: KV,
    lists: KV | undefined,
    js: JetStreamClient,
    jsm: JetStreamManager,
    buckets: { readonly registry: string; readonly types: string },
    retryWindowMs: number,
    site?: string,
    publish?: RecordPublisher,
  ) {
    const typesBucket = buckets.types;
    this.#registryWrites = publish === undefined ? undefined : new KvRecords(registry, publish);
    this.#typesWrites = publish === undefined ? undefined : new KvRecords(types, publish);
    this.#site = site;
    this.#members = lists === undefined ? undefined : new TypeMemberLists(lists, jsm, buckets.registry, (what, operation) => this.#retry(what, operation));
    this.#registry = registry;
    this.#types = types;
    this.#js = js;
    this.#jsm = jsm;
    this.#typesBucket = typesBucket;
    this.#registryBucket = buckets.registry;
    this.#typesStream = `KV_${typesBucket}`;
    this.#typesKeys = `$KV.${typesBucket}`;
    this.#retryWindowMs = retryWindowMs;
  }

  /** The registry bucket (for maintenance: garbage collection of terminated records). */
  get bucket(): KV {
    return this.#registry;
  }

  /**
   * The member lists, for writes.
   * @throws {CrossSiteOperationError} over another site's mirrors, which only that site writes.
   */
  #lists(entityId?: string): TypeMemberLists {
    if (this.#members === undefined) {
      throw new CrossSiteOperationError(`The registry of site ${this.#site ?? "?"} here is a read-only mirror: only that site registers and terminates its agents`, {
        site: this.#site,
        entityId,
      });
    }
    return this.#members;
  }

  /** Register a user mailbox. */
  async registerUser(id: EntityId): Promise<RecordEntry> {
    const record: MailboxRecord = {
      v: RECORD_VERSION,
      role: EntityRole.User,
      uid: id.uid,
      name: id.name,
      status: MailboxStatus.Active,
      registeredAt: Date.now(),
    };
    const revision = await this.#create("register user", id.uid, encodeValue(record));
    return { record, revision };
  }

  /** Register an agent mailbox and index it under every type of its ancestry. */
  async registerAgent(type: AgentTypeInfo, name?: string): Promise<{ registration: AgentRegistration; entry: RecordEntry }> {
    const agentId = AgentId.create(name, this.#site);
    const entry = await this.registerAgentAs(agentId, type);
    return { registration: { agentId, agentType: type }, entry: entry! };
  }

  /**
   * Register an agent mailbox under an id chosen elsewhere (an agent launched from another site:
   * its launch request names it), unless a record exists already.
   * @returns the new record; undefined if the uid was registered before (left as it is).
   */
  async registerAgentAs(agentId: AgentId, type: AgentTypeInfo): Promise<RecordEntry | undefined> {
    const lists = this.#lists(agentId.uid);
    const name = agentId.name;
    const record: MailboxRecord = {
      v: RECORD_VERSION,
      role: EntityRole.Agent,
      uid: agentId.uid,
      name,
      type: type.name,
      chain: type.chain,
      status: MailboxStatus.Active,
      registeredAt: Date.now(),
    };
    let revision: number;
    try {
      revision = await this.#create("register agent", agentId.uid, encodeValue(record));
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
    const indexValue = encodeValue(name === undefined ? [type.name] : [type.name, name]);
    const chain = type.chain[0] === type.name ? type.chain : [type.name, ...type.chain];
    await Promise.all([
      ...[...new Set(type.chain)].map((t) =>
        this.#putIndex(`${typeNameToken(t)}.${agentId.uid}`, indexValue),
      ),
      lists.add(chain, { uid: agentId.uid, revision, name }),
    ]);
    return { record, revision };
  }

  /** Create a registry record (create-if-absent); its revision. */
  #create(what: string, uid: string, data: Uint8Array): Promise<number> {
    const writes = this.#registryWrites;
    return writes === undefined ? this.#retry(what, () => this.#registry.create(uid, data)) : writes.create(what, uid, data);
  }

  /** Put a layout-1 index entry. */
  async #putIndex(key: string, data: Uint8Array): Promise<void> {
    const writes = this.#typesWrites;
    await (writes === undefined ? this.#retry("index agent type", () => this.#types.put(key, data)) : writes.put("index agent type", key, data));
  }

  /**
   * The record of a mailbox, read from the bucket (not a cache) at its stream's leader, so that it
   * reflects every write acknowledged before the call (see `openBucket`).
   */
  async get(uid: string): Promise<RecordEntry | undefined> {
    const reads = this.#registryWrites;
    const entry = reads === undefined ? await this.#retry("read registry", () => this.#registry.get(uid)) : await reads.get("read registry", uid);
    if (entry === null || entry.operation !== "PUT") return undefined;
    const record = decodeRecord(entry.value);
    return record === undefined ? undefined : { record, revision: entry.revision };
  }

  /** A mailbox's status, read from the bucket at its stream's leader. */
  async status(uid: string): Promise<MailboxStatus> {
    return (await this.get(uid))?.record.status ?? MailboxStatus.Missing;
  }

  /**
   * Mark a mailbox terminated (after removing its index entries).
   * @returns the terminated record, or undefined if it was missing or already terminated.
   */
  async markTerminated(uid: string): Promise<RecordEntry | undefined> {
    const lists = this.#lists(uid);
    const current = await this.get(uid);
    if (current === undefined || current.record.status === MailboxStatus.Terminated) return undefined;
    const { record } = current;
    if (record.role === EntityRole.Agent) {
      // Purge through the stream API: the key disappears with no delete marker left behind.
      await Promise.all([
        ...[...new Set(record.chain ?? [])].map((t) =>
          this.#retry("unindex agent", () =>
            this.#jsm.streams.purge(this.#typesStream, { filter: `${this.#typesKeys}.${typeNameToken(t)}.${uid}` }),
          ),
        ),
        ...(typeof record.type === "string" && record.type !== "" ? [lists.remove(record.type, uid)] : []),
      ]);
    }
    // A plain put, not a compare-and-set on the revision read: other sites mirror this bucket,
    // and on nats-server 2.9.10 a mirror re-checks a message's expected-sequence header against
    // its own copy. A record created and terminated while a site is cut off has its creation
    // replaced at the site (one revision per key) before the mirror fetches it, so the mirror
    // would refuse the termination, and every later message, for good. A record goes from
    // active to terminated only, and only this method writes it after its creation (garbage
    // collection deletes it days later), so racing terminations write the same state; the
    // creation (`create`, expected sequence 0) passes a mirror's check.
    const terminated: MailboxRecord = { ...record, status: MailboxStatus.Terminated, terminatedAt: Date.now() };
    const writes = this.#registryWrites;
    const data = encodeValue(terminated);
    const revision = await (writes === undefined ? this.#retry("terminate", () => this.#registry.put(uid, data)) : writes.put("terminate", uid, data));
    return { record: terminated, revision };
  }

  /**
   * Rewrite as plain puts the records whose last write was a compare-and-set update: the
   * terminations of earlier versions. Other sites mirror this bucket, and on nats-server 2.9.10
   * such a write stalls a mirror for good when the write it expects (the record's creation) was
   * replaced before the mirror fetched it: every mirror made after a termination, and every one
   * that was cut off across a registration and its termination. Rewritten, the record's last write
   * carries no expectation, and the old one is gone (one revision per key). Once per deployment:
   * {@link MIRROR_SAFE_KEY} (in the lists bucket) then holds the registry stream's last sequence.
   * Mirrors made from then on do not stall; one already stalled stays so (docs/EDGE.md 4). Idempotent; racing
   * processes rewrite the same values.
   * @returns how many records were rewritten (0 when the marker was there already).
   * @throws {CrossSiteOperationError} over another site's mirrors.
   */
  async rewriteCompareAndSetRecords(): Promise<number> {
    const lists = this.#lists();
    if ((await lists.marker(MIRROR_SAFE_KEY)) !== undefined) return 0;
    const entries = await this.#retry("read registry", () => scanLatestEntries(this.#js, this.#registryBucket, ">"));
    const stale = [...entries].filter(([, entry]) => (entry.expectedSequence ?? 0) > 0);
    const writes = this.#registryWrites;
    const put = (key: string, value: Uint8Array): Promise<number> =>
      writes === undefined ? this.#retry("rewrite registry record", () => this.#registry.put(key, value)) : writes.put("rewrite registry record", key, value);
    for (let i = 0; i < stale.length; i += REWRITE_BATCH) {
      await Promise.all(stale.slice(i, i + REWRITE_BATCH).map(([key, entry]) => put(key, entry.value)));
    }
    const info = await this.#retry("read registry stream", () => this.#jsm.streams.info(`KV_${this.#registryBucket}`));
    await lists.mark(MIRROR_SAFE_KEY, encodeValue(info.state.last_seq));
    return stale.length;
  }

  /**
   * Discovery's cold path on layout 2: the members of every matching concrete type, kept only if
   * their registry record is unchanged since they were listed (one request to the registry
   * stream checks them all: a terminated or removed record no longer has its message at that
   * revision). O(matching types) keys read, whatever the number of agents.
   * @returns undefined when layout 2 cannot answer (the lists are not complete yet: a deployment
   * of an earlier version not migrated; the registry stream has removed too many messages to list
   * them; or this registry reads another site's mirrors, which have no lists): use
   * {@link indexHits} and {@link checkHits} then.
   */
  async discoverMembers(typeName: string, allowSubclasses: boolean): Promise<AgentId[] | undefined> {
    const lists = this.#members;
    if (lists === undefined) return undefined;
    const [ready, members] = await Promise.all([lists.ready(), lists.members(typeName, allowSubclasses)]);
    if (!ready) return undefined;
    const state = await lists.registryState();
    if (state === undefined) return undefined;
    return TypeMemberLists.current(members, state).map((m) => new AgentId(m.uid, m.name, this.#site));
  }

  /**
   * Make layout 2 of the type index complete (at provisioning): if its lists are not marked ready
   * in the member lists bucket, list every active agent found in the per-uid keys of layout 1
   * (checked against its registry record), then mark them ready. This also moves the lists of an
   * earlier version, kept in the types bucket, to their own bucket (they are rebuilt, not copied;
   * {@link removeLegacyMemberLists} then removes the old ones). Idempotent, and safe to run from
   * many processes at once.
   * @returns how many agents were listed (0 when the lists were ready already).
   * @throws {CrossSiteOperationError} over another site's mirrors (no lists).
   */
  async ensureMemberLayout(): Promise<number> {
    const lists = this.#lists();
    if (await lists.ready()) return 0;
    const uids = new Set<string>();
    for (const key of (await this.#retry("read type index", () => scanLatest(this.#js, this.#typesBucket, "*.*"))).keys()) {
      const uid = key.slice(key.lastIndexOf(".") + 1);
      if (UID.test(uid)) uids.add(uid);
    }
    const { records } = await this.checkHits([...uids], "Agent", true);
    const active = records.filter(({ record }) => record.role === EntityRole.Agent && record.status === MailboxStatus.Active && typeof record.type === "string");
    await Promise.all(
      active.map(({ record, revision }) => {
        const chain = record.chain !== undefined && record.chain[0] === record.type ? record.chain : [record.type!, ...(record.chain ?? [])];
        return lists.add(chain, { uid: record.uid, revision, name: typeof record.name === "string" ? record.name : undefined });
      }),
    );
    await lists.markReady();
    return active.length;
  }

  /**
   * Remove from the types bucket the member lists, catalog and marker that earlier versions kept
   * there ({@link LEGACY_LIST_KEYS}), once the lists are ready in their own bucket: nothing reads
   * them any more, and compare-and-set writes there are what stalls sites' mirrors. Removed by
   * `STREAM.PURGE` with a subject filter, as termination removes per-uid keys: a purge is not
   * mirrored, so it adds nothing a mirror could stall on (a mirror keeps its stale copies, which
   * nothing reads either). Looks at two keys first, so it costs two reads when there is nothing
   * to remove.
   * @returns whether anything was found to remove.
   */
  async removeLegacyMemberLists(): Promise<boolean> {
    const [catalog, ready] = await Promise.all(
      [LEGACY_LIST_KEYS.catalog, LEGACY_LIST_KEYS.ready].map((key) => this.#retry("read legacy type index layout", () => this.#types.get(key))),
    );
    // `v2.types` is also the per-uid key of an agent with uid "types" of a type named "v2": a
    // catalog is a map, an index value an array.
    const staleCatalog = catalog !== null && catalog !== undefined && catalog.operation === "PUT" && decodeCatalog(catalog.value) !== undefined;
    const staleReady = ready !== null && ready !== undefined && ready.operation === "PUT";
    if (!staleCatalog && !staleReady) return false;
    const filters = [LEGACY_LIST_KEYS.lists, LEGACY_LIST_KEYS.ready, ...(staleCatalog ? [LEGACY_LIST_KEYS.catalog] : [])];
    for (const key of filters) {
      await this.#retry("remove legacy type index layout", () => this.#jsm.streams.purge(this.#typesStream, { filter: `${this.#typesKeys}.${key}` }));
    }
    return true;
  }

  /**
   * The type index's hits for a type (discovery's cold path, used before the registry view has
   * caught up): the uid of every key under `<type token>.*` whose value is an index value (of the
   * type itself, without `allowSubclasses`). The index is only a hint: an entry can outlive its
   * agent (an index write landing after a termination removed the agent's entries) or be written
   * by anyone allowed to write the bucket, so hits must be checked against the registry ({@link checkHits}).
   */
  async indexHits(typeName: string, allowSubclasses: boolean): Promise<string[]> {
    return this.#retry("discover", async () => {
      const hits: string[] = [];
      for (const [key, value] of await scanLatest(this.#js, this.#typesBucket, `${typeNameToken(typeName)}.*`)) {
        const uid = key.slice(key.lastIndexOf(".") + 1);
        if (UID.test(uid) && isIndexValue(value, typeName, allowSubclasses)) hits.push(uid);
      }
      return hits;
    });
  }

  /**
   * Check index hits against the registry, the source of truth: a hit counts only if its record
   * exists, is an active agent, and has the type in its ancestry (is of the type, without
   * `allowSubclasses`). One get per hit at the stream's leader, {@link RECORD_GETS_AT_ONCE} at a
   * time.
   * @returns the agents found, and every record read (for the caller's registry view).
   */
  async checkHits(uids: readonly string[], typeName: string, allowSubclasses: boolean): Promise<{ found: AgentId[]; records: RecordEntry[] }> {
    const records: RecordEntry[] = [];
    for (let i = 0; i < uids.length; i += RECORD_GETS_AT_ONCE) {
      const batch = uids.slice(i, i + RECORD_GETS_AT_ONCE);
      const entries = await Promise.all(batch.map((uid) => this.get(uid)));
      entries.forEach((entry, j) => {
        if (entry !== undefined && entry.record.uid === batch[j]) records.push(entry);
      });
    }
    const found: AgentId[] = [];
    for (const { record } of records) {
      if (record.role !== EntityRole.Agent || record.status !== MailboxStatus.Active) continue;
      if (allowSubclasses ? !(Array.isArray(record.chain) && record.chain.includes(typeName)) : record.type !== typeName) continue;
      found.push(new AgentId(record.uid, typeof record.name === "string" ? record.name : undefined, this.#site));
    }
    return { found, records };
  }

  /** How many values the registry bucket holds (records, terminated ones included). */
  async size(): Promise<number> {
    return (await this.#retry("read registry size", () => this.#registry.status())).values;
  }

  #retry<T>(what: string, operation: () => Promise<T>): Promise<T> {
    return withNatsRetry(operation, { windowMs: this.#retryWindowMs, what });
  }
}


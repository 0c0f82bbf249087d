/**
 * Mailbox registration, status and the type index, in two KV buckets:
 *
 * - registry bucket, key `<uid>`: the mailbox record (CBOR), see {@link MailboxRecord};
 * - types bucket, key `<type token>.<uid>`: one entry per type in an active agent's ancestry,
 *   value `[concrete type name, display name?]` (CBOR).
 *
 * Registration writes the record, then the index; termination removes the index entries, then
 * marks the record terminated (compare-and-set), so `discover` never returns a terminated agent.
 */
import { MailboxStatus } from "../mailbox-status.ts";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { AgentTypeInfo } from "../../agent/agent-type.ts";
import { typeNameToken } from "../../agent/agent-type.ts";
import { AgentId, EntityRole } from "../../identifiers.ts";
import type { EntityId } from "../../identifiers.ts";
import { decodeValue, encodeValue } from "../../protocol/codec.ts";
import type { AgentRegistration } from "../transport.ts";

import { scanLatest } from "./kv-scan.ts";
import { isWrongLastSequence, withNatsRetry } from "./nats-errors.ts";

/** Version of the record format (field `v`). */
export const RECORD_VERSION = 1;

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

/** Registry operations on the two buckets. */
export class NatsRegistry {
  readonly #registry: KV;
  readonly #types: KV;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  /** Stream behind the types bucket, and the subject prefix of its keys (the KV conventions). */
  readonly #typesBucket: string;
  readonly #typesStream: string;
  readonly #typesKeys: string;
  readonly #retryWindowMs: number;
  /** The site put on the ids this registry mints and finds (undefined: none). */
  readonly #site: string | undefined;

  constructor(
    registry: KV,
    types: KV,
    js: JetStreamClient,
    jsm: JetStreamManager,
    typesBucket: string,
    retryWindowMs: number,
    site?: string,
  ) {
    this.#site = site;
    this.#registry = registry;
    this.#types = types;
    this.#js = js;
    this.#jsm = jsm;
    this.#typesBucket = typesBucket;
    this.#typesStream = `KV_${typesBucket}`;
    this.#typesKeys = `$KV.${typesBucket}`;
    this.#retryWindowMs = retryWindowMs;
  }

  /** The registry bucket (for maintenance: garbage collection of terminated records). */
  get bucket(): KV {
    return this.#registry;
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
    const revision = await this.#retry("register user", () => this.#registry.create(id.uid, encodeValue(record)));
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
      revision = await this.#retry("register agent", () => this.#registry.create(agentId.uid, encodeValue(record)));
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
    const indexValue = encodeValue(name === undefined ? [type.name] : [type.name, name]);
    await Promise.all(
      [...new Set(type.chain)].map((t) =>
        this.#retry("index agent type", () => this.#types.put(`${typeNameToken(t)}.${agentId.uid}`, indexValue)),
      ),
    );
    return { record, revision };
  }

  /** The record of a mailbox, read from the bucket (not a cache). */
  async get(uid: string): Promise<RecordEntry | undefined> {
    const entry = await this.#retry("read registry", () => this.#registry.get(uid));
    if (entry === null || entry.operation !== "PUT") return undefined;
    const record = decodeRecord(entry.value);
    return record === undefined ? undefined : { record, revision: entry.revision };
  }

  /** A mailbox's status, read from the bucket. */
  async status(uid: string): Promise<MailboxStatus> {
    return (await this.get(uid))?.record.status ?? MailboxStatus.Missing;
  }

  /**
   * Mark a mailbox terminated (after removing its index entries).
   * @returns the terminated record, or undefined if it was missing or already terminated.
   */
  async markTerminated(uid: string): Promise<RecordEntry | undefined> {
    for (;;) {
      const current = await this.get(uid);
      if (current === undefined || current.record.status === MailboxStatus.Terminated) return undefined;
      const { record } = current;
      if (record.role === EntityRole.Agent) {
        // Purge through the stream API: the key disappears with no delete marker left behind.
        await Promise.all(
          [...new Set(record.chain ?? [])].map((t) =>
            this.#retry("unindex agent", () =>
              this.#jsm.streams.purge(this.#typesStream, { filter: `${this.#typesKeys}.${typeNameToken(t)}.${uid}` }),
            ),
          ),
        );
      }
      const terminated: MailboxRecord = { ...record, status: MailboxStatus.Terminated, terminatedAt: Date.now() };
      try {
        const revision = await this.#retry("terminate", () =>
          this.#registry.update(uid, encodeValue(terminated), current.revision),
        );
        return { record: terminated, revision };
      } catch (error) {
        if (isWrongLastSequence(error)) continue; // raced: read again
        throw error;
      }
    }
  }

  /**
   * Discover by reading the type index directly (the cold path, used before the registry view
   * has caught up): last value of every key under `<type token>.*`.
   */
  async discover(typeName: string, allowSubclasses: boolean): Promise<AgentId[]> {
    return this.#retry("discover", async () => {
      const found: AgentId[] = [];
      for (const [key, value] of await scanLatest(this.#js, this.#typesBucket, `${typeNameToken(typeName)}.*`)) {
        try {
          const [concrete, name] = decodeValue(value) as [string, string | undefined];
          if (allowSubclasses || concrete === typeName) found.push(new AgentId(key.slice(key.lastIndexOf(".") + 1), name ?? undefined, this.#site));
        } catch {
          // A foreign value in our bucket: not one of our agents.
        }
      }
      return found;
    });
  }

  #retry<T>(what: string, operation: () => Promise<T>): Promise<T> {
    return withNatsRetry(operation, { windowMs: this.#retryWindowMs, what });
  }
}


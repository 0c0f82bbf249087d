/**
 * KV reads and writes of the control plane (registrations, the type index, placements) through the
 * exchange's shared-inbox publisher (`NatsExchange.publishRecord`) rather than nats.js'
 * `kv.get` / `kv.create` / `kv.update` / `kv.put`, which go through `nc.request()` and build an
 * `Error` for every request they complete. Launching 1,000 agents makes several thousand such
 * requests (docs/BENCHMARKS.md section 3). Subjects, headers and API requests are those nats.js
 * sends, so the records, their revisions and the compare-and-set rules are the same; a read is the
 * `STREAM.MSG.GET` of a bucket opened without direct gets (answered by the stream's leader).
 */
import type { PubAck } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { MsgHdrs } from "@nats-io/nats-core";
import { isNoMessageFound, isWrongLastSequence } from "./nats-errors.ts";

/**
 * Publishes `data` to `subject` with a reply subject and resolves with the JSON reply parsed (a
 * stored write's acknowledgement; an API response), rejecting with nats.js' `JetStreamApiError` for
 * an error reply; retries transient failures.
 */
export type RecordPublisher = (what: string, subject: string, data: Uint8Array, headers: MsgHdrs | undefined) => Promise<PubAck>;

/** A key's latest entry, as nats.js' `KvEntry` has it. */
export interface KvRecord {
  readonly value: Uint8Array;
  readonly revision: number;
  readonly operation: "PUT" | "DEL" | "PURGE";
}

/** The reply of `STREAM.MSG.GET` (JetStream API), the fields read here. */
interface StoredMessageReply {
  readonly message?: { readonly seq: number; readonly data?: string; readonly hdrs?: string };
}

const KV_OPERATION = /\r\nKV-Operation:\s*(DEL|PURGE)\r\n/;

/** nats.js' header for compare-and-set on a subject's last sequence (a key's revision). */
const EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence";

/**
 * What nats.js' KV bucket knows of its subjects: `subjectForKey(key, true)` is where a write of
 * `key` goes (the bucket's prefix; a JetStream domain's API prefix when there is one),
 * `subjectForKey(key)` the key's subject in the stream, `bucketName()` the stream, `jsm.prefix` the
 * JetStream API prefix. Not on nats.js' `KV` interface; the @nats-io packages are pinned to one
 * exact version, and the integration tests run these paths.
 */
interface BucketInternals {
  subjectForKey(key: string, edit?: boolean): string;
  bucketName(): string;
  readonly jsm: { readonly prefix: string };
}

function internals(kv: KV): BucketInternals {
  return kv as unknown as BucketInternals;
}

function editSubject(kv: KV, key: string): string {
  return internals(kv).subjectForKey(key, true);
}

function expecting(revision: number): MsgHdrs {
  const headers = natsHeaders();
  headers.set(EXPECTED_LAST_SUBJECT_SEQUENCE, String(revision));
  return headers;
}

/** The control-plane reads and writes of one bucket. Keys must be valid KV keys (callers build them so). */
export class KvRecords {
  readonly #kv: KV;
  readonly #publish: RecordPublisher;

  constructor(kv: KV, publish: RecordPublisher) {
    this.#kv = kv;
    this.#publish = publish;
  }

  /**
   * `kv.get`: the key's latest entry, read at the stream's leader; null if it has none.
   */
  async get(what: string, key: string): Promise<KvRecord | null> {
    const bucket = internals(this.#kv);
    const request = new TextEncoder().encode(JSON.stringify({ last_by_subj: bucket.subjectForKey(key) }));
    let reply: StoredMessageReply;
    try {
      reply = (await this.#publish(what, `${bucket.jsm.prefix}.STREAM.MSG.GET.${bucket.bucketName()}`, request, undefined)) as unknown as StoredMessageReply;
    } catch (error) {
      if (isNoMessageFound(error)) return null;
      throw error;
    }
    const message = reply.message;
    if (message === undefined) return null;
    const operation = message.hdrs === undefined ? undefined : KV_OPERATION.exec(Buffer.from(message.hdrs, "base64").toString("latin1"))?.[1];
    return {
      // A copy of its own (not a slice of a pooled buffer): records keep parts of it.
      value: message.data === undefined ? new Uint8Array(0) : new Uint8Array(Buffer.from(message.data, "base64")),
      revision: message.seq,
      operation: operation === "DEL" || operation === "PURGE" ? operation : "PUT",
    };
  }

  /** `kv.put`: the new revision. */
  async put(what: string, key: string, data: Uint8Array): Promise<number> {
    return (await this.#publish(what, editSubject(this.#kv, key), data, undefined)).seq;
  }

  /**
   * `kv.update`: write if the key is still at `revision`; the new revision.
   * @throws nats.js' `JetStreamApiError` (wrong last sequence, `isWrongLastSequence`) if it is not.
   */
  async update(what: string, key: string, data: Uint8Array, revision: number): Promise<number> {
    return (await this.#publish(what, editSubject(this.#kv, key), data, expecting(revision))).seq;
  }

  /**
   * `kv.create`: write if the key has no value; the new revision. A key whose last entry is a
   * delete or purge marker counts as absent: that (rare) case is left to nats.js' `kv.create`.
   * @throws nats.js' `JetStreamApiError` (wrong last sequence) if the key has a value.
   */
  async create(what: string, key: string, data: Uint8Array): Promise<number> {
    try {
      return await this.update(what, key, data, 0);
    } catch (error) {
      if (!isWrongLastSequence(error)) throw error;
    }
    return this.#kv.create(key, data);
  }
}

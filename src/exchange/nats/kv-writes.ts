/**
 * KV writes of the control plane (registrations, the type index, placements) published through the
 * exchange's shared-inbox publisher (`NatsExchange.publishRecord`) rather than nats.js'
 * `kv.create` / `kv.update` / `kv.put`, which go through `nc.request()` and build an `Error` for
 * every write they complete. Launching 1,000 agents makes several thousand such writes
 * (docs/BENCHMARKS.md section 3). The subjects and headers are those nats.js writes, so the
 * records, their revisions and the compare-and-set rules are the same.
 */
import type { PubAck } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { MsgHdrs } from "@nats-io/nats-core";
import { isWrongLastSequence } from "./nats-errors.ts";

/** Publishes a record and resolves with the stream's acknowledgement (retrying transient failures). */
export type RecordPublisher = (what: string, subject: string, data: Uint8Array, headers: MsgHdrs | undefined) => Promise<PubAck>;

/** nats.js' header for compare-and-set on a subject's last sequence (a key's revision). */
const EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence";

/**
 * The subject a write of `key` goes to, as nats.js makes it (`Bucket.subjectForKey(key, true)`:
 * the bucket's prefix, a JetStream domain's API prefix when there is one). Not on nats.js' `KV`
 * interface; the @nats-io packages are pinned to one exact version, whose tests cover it here.
 */
function editSubject(kv: KV, key: string): string {
  return (kv as unknown as { subjectForKey(key: string, edit: boolean): string }).subjectForKey(key, true);
}

function expecting(revision: number): MsgHdrs {
  const headers = natsHeaders();
  headers.set(EXPECTED_LAST_SUBJECT_SEQUENCE, String(revision));
  return headers;
}

/** The control-plane writes of one bucket. Keys must be valid KV keys (callers build them so). */
export class KvWriter {
  readonly #kv: KV;
  readonly #publish: RecordPublisher;

  constructor(kv: KV, publish: RecordPublisher) {
    this.#kv = kv;
    this.#publish = publish;
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

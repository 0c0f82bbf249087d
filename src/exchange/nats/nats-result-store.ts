/**
 * Result records of effectively-once execution on NATS (docs/PROTOCOL.md section 10.10,
 * docs/NATS-LAYOUT.md): the KV bucket `<prefix>_results`, one key per (agent, request tag), whose
 * max age is the result window. Reads go to the leader of the bucket's stream, so that a record
 * written by one host is seen by the next host a redelivery reaches, a lagging replica or not.
 */
import type { ResultBytes } from "../result-store.ts";

/**
 * What the results bucket needs from the exchange: a retry through transient failures, and the
 * reads and writes of one key on the message path (every action reads its record before it runs
 * and writes it after): a read at the stream's leader and a JetStream publish, both answered
 * through the connection's shared inboxes (`JetStreamLeaderReader`, `JetStreamPublisher`) rather
 * than `kv.get()` and `kv.put()`, which cost a request object, an `Error` and a timer each.
 */
export interface ResultBucketContext {
  retry<T>(what: string, operation: () => Promise<T>): Promise<T>;
  /** The value of `key` in `bucket`, read at the leader; undefined if none (or deleted). */
  readKv(bucket: string, key: string): Promise<Uint8Array | undefined>;
  /** Store `bytes` under `key` of `bucket` (a KV put), resolved with the stream's acknowledgement. */
  putKv(bucket: string, key: string, bytes: Uint8Array): Promise<void>;
}

/** The results bucket `bucket` as record bytes (keys are made by the result store, valid KV keys). */
export function natsResultBytes(ctx: ResultBucketContext, bucket: string, windowMs: number, maxRecordBytes: number): ResultBytes {
  return {
    windowMs,
    maxRecordBytes,
    get(key) {
      return ctx.retry("read result record", () => ctx.readKv(bucket, key));
    },
    async put(key, bytes) {
      await ctx.retry("record result", () => ctx.putKv(bucket, key, bytes));
    },
  };
}

/**
 * Result records of effectively-once execution on NATS (docs/PROTOCOL.md section 10.10,
 * docs/NATS-LAYOUT.md): the KV bucket `<prefix>_results`, one key per (agent, request tag), whose
 * max age is the result window. Reads go to the leader of the bucket's stream, so that a record
 * written by one host is seen by the next host a redelivery reaches, a lagging replica or not.
 */
import type { KV } from "@nats-io/kv";
import { HeaderBlock } from "./header-block.ts";
import type { PublishHeaders } from "./header-block.ts";
import type { ResultBytes } from "../result-store.ts";

/** What the results bucket needs from the exchange. */
export interface ResultBucketContext {
  /** Retry through transient failures. */
  retry<T>(what: string, operation: () => Promise<T>): Promise<T>;
  /** Store a message through the message path's publisher (retried; resolves once stored). */
  store(subject: string, data: Uint8Array, headers: PublishHeaders): Promise<unknown>;
}

/**
 * The results bucket as record bytes. `kv` reads: a handle that reads at the leader (`openBucket`),
 * or with a direct get where the bucket has one replica. Writes are plain publishes to
 * `$KV.<bucket>.<key>` through the exchange's shared-inbox publisher (what `kv.put` sends, without
 * the cost of a request per write).
 */
export function natsResultBytes(ctx: ResultBucketContext, kv: KV, bucket: string, windowMs: number, maxRecordBytes: number): ResultBytes {
  return {
    windowMs,
    maxRecordBytes,
    async get(key) {
      const entry = await ctx.retry("read result record", () => kv.get(key));
      if (entry === null || entry.operation !== "PUT") return undefined;
      return entry.value;
    },
    put(key, bytes) {
      // No fields (an empty block, as nats.js's empty headers map encodes): a retry adds the
      // re-publication mark to it. Not async (no promise of its own per record): the publish's
      // promise is the record's.
      try {
        return ctx.store(`$KV.${bucket}.${key}`, bytes, new HeaderBlock());
      } catch (error) {
        return Promise.reject(error);
      }
    },
  };
}

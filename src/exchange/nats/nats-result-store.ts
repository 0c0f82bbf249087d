/**
 * Result records of effectively-once execution on NATS (docs/PROTOCOL.md section 10.10,
 * docs/NATS-LAYOUT.md): the KV bucket `<prefix>_results`, one key per (agent, request tag), whose
 * max age is the result window. Reads go to the leader of the bucket's stream, so that a record
 * written by one host is seen by the next host a redelivery reaches, a lagging replica or not.
 */
import type { KV } from "@nats-io/kv";
import type { ResultBytes } from "../result-store.ts";

/** What the results bucket needs from the exchange: a retry through transient failures. */
export interface ResultBucketContext {
  retry<T>(what: string, operation: () => Promise<T>): Promise<T>;
}

/** The results bucket as record bytes. `kv` must be a handle that reads at the leader (`openBucket`). */
export function natsResultBytes(ctx: ResultBucketContext, kv: KV, windowMs: number, maxRecordBytes: number): ResultBytes {
  return {
    windowMs,
    maxRecordBytes,
    async get(key) {
      const entry = await ctx.retry("read result record", () => kv.get(key));
      if (entry === null || entry.operation !== "PUT") return undefined;
      return entry.value;
    },
    async put(key, bytes) {
      await ctx.retry("record result", () => kv.put(key, bytes));
    },
  };
}

/**
 * Read the latest value of every key of a KV bucket matching a filter, in one pass: an ephemeral
 * ordered push consumer with `LastPerSubject` delivery, stopped once the server has sent all it
 * had. Much faster than `keys()` followed by one `get()` per key.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import { withDeadline } from "./nats-errors.ts";

/** How long a scan may take before it fails with a (transient) `TimeoutError`. */
const SCAN_TIMEOUT_MS = 30_000;

/**
 * The latest value of every key matching `keyFilter` (KV key syntax, `*` and `>` allowed) of
 * bucket `bucket` that is not deleted, in stream order. Writes made while the scan runs may or
 * may not be included; a key is listed once, with its latest value seen.
 */
export async function scanLatest(
  js: JetStreamClient,
  bucket: string,
  keyFilter: string,
  timeoutMs = SCAN_TIMEOUT_MS,
): Promise<Map<string, Uint8Array>> {
  const entries = await scanLatestEntries(js, bucket, keyFilter, timeoutMs);
  return new Map([...entries].map(([key, entry]) => [key, entry.value]));
}

/** A key's latest value and its revision. */
export interface ScannedEntry {
  readonly value: Uint8Array;
  readonly revision: number;
  /** The expected last subject sequence the write carried (a compare-and-set); undefined: none. */
  readonly expectedSequence?: number | undefined;
}

/** {@link scanLatest}, with each value's revision. */
export async function scanLatestEntries(
  js: JetStreamClient,
  bucket: string,
  keyFilter: string,
  timeoutMs = SCAN_TIMEOUT_MS,
): Promise<Map<string, ScannedEntry>> {
  const latest = new Map<string, ScannedEntry>();
  const keyPrefix = `$KV.${bucket}.`;
  const consumer = await js.consumers.getPushConsumer(`KV_${bucket}`, {
    filter_subject: `${keyPrefix}${keyFilter}`,
    deliver_policy: DeliverPolicy.LastPerSubject,
    ack_policy: AckPolicy.None,
    flow_control: true,
    idle_heartbeat: nanos(5_000),
  } as never);
  const info = await consumer.info(true);
  if (info.num_pending === 0) return latest;
  let caughtUp!: () => void;
  const done = new Promise<void>((resolve) => {
    caughtUp = resolve;
  });
  // The consumer delivers the last message of each matching key: as many as it had pending when
  // created (counting them spares parsing every message's delivery info).
  let remaining = info.num_pending;
  const messages = await consumer.consume({
    callback: (m) => {
      const operation = m.headers?.get("KV-Operation");
      const key = m.subject.slice(keyPrefix.length);
      latest.delete(key);
      if (operation !== "DEL" && operation !== "PURGE") {
        const expected = m.headers?.get("Nats-Expected-Last-Subject-Sequence");
        latest.set(key, { value: m.data, revision: m.seq, expectedSequence: expected ? Number(expected) : undefined });
      }
      if (--remaining <= 0) caughtUp();
    },
  });
  void (async () => {
    // A heartbeat means the server has nothing more to send (as in the KV client's keys()).
    for await (const status of messages.status()) if (status.type === "heartbeat") caughtUp();
  })();
  void messages.closed().then(caughtUp, caughtUp);
  // A consumer that stops delivering (seen under heavy load) must not hang the caller: give up
  // with a transient error, so that the caller's retry starts a new scan.
  try {
    await withDeadline(done, timeoutMs);
  } finally {
    messages.stop();
  }
  return latest;
}

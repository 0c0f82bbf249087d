/**
 * Read the latest value of every key of a KV bucket matching a filter, in one pass: an ephemeral
 * ordered push consumer delivering the bucket's messages in stream order, stopped once it has
 * caught up with the bucket. Much faster than `keys()` followed by one `get()` per key.
 *
 * When it has caught up is not read from the server's pending counts: nats-server 2.9.10 gets them
 * wrong while keys are rewritten during the scan (a `LastPerSubject` consumer then delivers one
 * message several times and counts each; an `All` consumer's pending count stays above zero), and
 * a scan that trusted them returned some keys and not others (as nats.js' `keys()` does). Instead
 * the scan reads the last sequence of the filter, consumes up to it, then reads it again and
 * consumes up to the new one: a key that existed when the scan began and still exists has either
 * been delivered by the first mark, or was rewritten before it, and its new message lies before the
 * second mark.
 */
import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import { TimeoutError, nanos } from "@nats-io/nats-core";
import { isNoMessageFound, withDeadline } from "./nats-errors.ts";

/** How long a scan may take before it fails with a (transient) `TimeoutError`. */
const SCAN_TIMEOUT_MS = 30_000;

/**
 * The latest value of every key matching `keyFilter` (KV key syntax, `*` and `>` allowed) of
 * bucket `bucket` that is not deleted, in stream order. Every key that exists for the whole scan is
 * listed; a key written or deleted while the scan runs may or may not be; a key is listed once,
 * with its latest value seen.
 */
export async function scanLatest(
  js: JetStreamClient,
  bucket: string,
  keyFilter: string,
  timeoutMs = SCAN_TIMEOUT_MS,
): Promise<Map<string, Uint8Array>> {
  const latest = new Map<string, Uint8Array>();
  await scan(js, bucket, keyFilter, timeoutMs, (key, m) => {
    latest.delete(key); // in stream order: a rewritten key moves to the end
    if (m !== undefined) latest.set(key, m.data);
  });
  return latest;
}

/** A key's latest value and its revision. */
export interface ScannedEntry {
  readonly value: Uint8Array;
  readonly revision: number;
  /** When this value was written (the message's stream timestamp). */
  readonly written: Date;
  /** The expected last subject sequence the write carried (a compare-and-set); undefined: none. */
  readonly expectedSequence?: number | undefined;
}

/** {@link scanLatest}, with each value's revision and time. */
export async function scanLatestEntries(
  js: JetStreamClient,
  bucket: string,
  keyFilter: string,
  timeoutMs = SCAN_TIMEOUT_MS,
): Promise<Map<string, ScannedEntry>> {
  const latest = new Map<string, ScannedEntry>();
  await scan(js, bucket, keyFilter, timeoutMs, (key, m) => {
    latest.delete(key);
    if (m !== undefined) {
      const expected = m.headers?.get("Nats-Expected-Last-Subject-Sequence");
      latest.set(key, { value: m.data, revision: m.seq, written: m.time, expectedSequence: expected ? Number(expected) : undefined });
    }
  });
  return latest;
}

/** Read the bucket's messages matching the filter up to the second mark (see the module's description). */
async function scan(
  js: JetStreamClient,
  bucket: string,
  keyFilter: string,
  timeoutMs: number,
  onKey: (key: string, message: JsMsg | undefined) => void,
): Promise<void> {
  const stream = `KV_${bucket}`;
  const keyPrefix = `$KV.${bucket}.`;
  const filter = `${keyPrefix}${keyFilter}`;
  const jsm = await js.jetstreamManager(false);
  const lastSequence = async (): Promise<number> => {
    try {
      return (await jsm.streams.getMessage(stream, { last_by_subj: filter }))?.seq ?? 0;
    } catch (error) {
      if (isNoMessageFound(error)) return 0;
      throw error;
    }
  };
  let mark = await lastSequence();
  if (mark === 0) return;
  /** The highest stream sequence delivered (a message delivered again is skipped). */
  let delivered = 0;
  let reached: () => void = () => undefined;
  const wait = (): Promise<void> =>
    new Promise<void>((resolve) => {
      reached = resolve;
    });
  let phase = wait();
  const consumer = await js.consumers.getPushConsumer(stream, {
    filter_subject: filter,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.None,
    flow_control: true,
    idle_heartbeat: nanos(5_000),
  } as never);
  const messages = await consumer.consume({
    callback: (m) => {
      const seq = m.seq;
      if (seq <= delivered) return;
      delivered = seq;
      const operation = m.headers?.get("KV-Operation");
      onKey(m.subject.slice(keyPrefix.length), operation === "DEL" || operation === "PURGE" ? undefined : m);
      if (seq >= mark) reached();
    },
  });
  void (async () => {
    // A heartbeat means the server has nothing more to send: the mark's message expired, say.
    for await (const status of messages.status()) if (status.type === "heartbeat") reached();
  })();
  // A consumer that ends before the scan does (nats.js gave up on it) leaves the scan incomplete:
  // fail with its error, or a transient one, so that the caller's retry starts a new scan.
  let ended: unknown;
  const end = (error: unknown): void => {
    ended = error instanceof Error ? error : new TimeoutError();
    reached();
  };
  void messages.closed().then(end, end);
  const settle = async (): Promise<void> => {
    await phase;
    if (ended !== undefined) throw ended;
  };
  // A consumer that stops delivering (seen under heavy load) must not hang the caller either.
  try {
    await withDeadline(
      (async () => {
        await settle();
        mark = await lastSequence();
        if (delivered < mark) {
          phase = wait();
          await settle();
        }
      })(),
      timeoutMs,
    );
  } finally {
    messages.stop();
  }
}

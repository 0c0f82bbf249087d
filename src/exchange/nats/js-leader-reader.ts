/**
 * Reads of one KV key at its stream's leader on the message path, answered through one shared
 * inbox.
 *
 * `kv.get()` of nats.js on a handle without direct gets sends `STREAM.MSG.GET` through
 * `nc.request()`, which builds an `Error` for every request it completes and a timer per call, and
 * a key that is absent (the common case for a result record: every action looks its record up
 * before it runs) comes back as a `JetStreamApiError` built and thrown, then caught. On the
 * benchmark machine that was about 40 µs of CPU per action, a quarter of a pipelined durable call.
 * This reader sends the same request (`{"last_by_subj": …}` to
 * `$JS.API.STREAM.MSG.GET.<stream>`), matches answers on one wildcard subscription, and expires
 * waiters with one sweep timer, as `JetStreamPublisher` does for publishes. Failures carry
 * nats.js's own error types (TimeoutError, NoRespondersError, JetStreamApiError,
 * ClosedConnectionError), so retry classification is unchanged. Reading at the leader, never a
 * direct get, is what makes a write acknowledged before the call visible (NATS-LAYOUT.md 6.1).
 */
import { JetStreamApiError } from "@nats-io/jetstream";
import { ClosedConnectionError, NoRespondersError, TimeoutError, createInbox } from "@nats-io/nats-core";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { connectionInboxPrefix } from "./js-publisher.ts";

interface Waiter {
  readonly deadline: number;
  resolve(value: Uint8Array | undefined): void;
  reject(error: Error): void;
}

/** How often expired waiters are failed, in ms (timeouts are this much coarser). */
const SWEEP_INTERVAL_MS = 100;
/** JetStream's "no message found" (STREAM.MSG.GET of a subject that holds none). */
const NO_MESSAGE_FOUND = 10037;

const decoder = new TextDecoder();
const encoder = new TextEncoder();

interface MsgGetResponse {
  readonly message?: { readonly data?: string; readonly hdrs?: string };
  readonly error?: { readonly code: number; readonly err_code?: number; readonly description: string };
}

/** Whether NATS headers (as STREAM.MSG.GET returns them, base64) mark a KV delete or purge. */
function isKvRemoval(hdrs: string | undefined): boolean {
  if (hdrs === undefined || hdrs === "") return false;
  const text = Buffer.from(hdrs, "base64").toString("latin1");
  return /^KV-Operation:\s*(DEL|PURGE)\s*$/im.test(text);
}

export class JetStreamLeaderReader {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #waiters = new Map<string, Waiter>();
  #sub: Subscription | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #next = 0;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#prefix = `${createInbox(connectionInboxPrefix(nc))}.`;
    void nc.closed().then(() => this.#failAll(new ClosedConnectionError()));
  }

  /**
   * The value of KV key `key` of bucket `bucket`, read at its stream's leader; undefined when the
   * key holds nothing, or was deleted or purged.
   */
  getKv(bucket: string, key: string, timeoutMs: number): Promise<Uint8Array | undefined> {
    if (this.#nc.isClosed()) return Promise.reject(new ClosedConnectionError());
    this.#subscribe();
    const token = (this.#next++).toString(36);
    return new Promise<Uint8Array | undefined>((resolve, reject) => {
      this.#waiters.set(token, { deadline: Date.now() + timeoutMs, resolve, reject });
      this.#startSweeper();
      try {
        const request = encoder.encode(`{"last_by_subj":${JSON.stringify(`$KV.${bucket}.${key}`)}}`);
        this.#nc.publish(`$JS.API.STREAM.MSG.GET.KV_${bucket}`, request, { reply: `${this.#prefix}${token}` });
      } catch (error) {
        this.#waiters.delete(token);
        reject(error as Error);
      }
    });
  }

  #subscribe(): void {
    if (this.#sub !== undefined) return;
    this.#sub = this.#nc.subscribe(`${this.#prefix}*`, {
      callback: (error, msg) => {
        if (error !== null) return;
        const token = msg.subject.slice(this.#prefix.length);
        const waiter = this.#waiters.get(token);
        if (waiter === undefined) return; // late: already timed out (and retried)
        this.#waiters.delete(token);
        if (msg.data.length === 0 && msg.headers?.code === 503) {
          waiter.reject(new NoRespondersError("STREAM.MSG.GET"));
          return;
        }
        try {
          const response = JSON.parse(decoder.decode(msg.data)) as MsgGetResponse;
          if (response.error !== undefined) {
            if (response.error.err_code === NO_MESSAGE_FOUND) waiter.resolve(undefined);
            else waiter.reject(new JetStreamApiError({ code: response.error.code, err_code: response.error.err_code ?? 0, description: response.error.description }));
            return;
          }
          const message = response.message;
          if (message === undefined || isKvRemoval(message.hdrs)) {
            waiter.resolve(undefined);
            return;
          }
          waiter.resolve(message.data === undefined ? new Uint8Array(0) : new Uint8Array(Buffer.from(message.data, "base64")));
        } catch (parseError) {
          waiter.reject(parseError as Error);
        }
      },
    });
  }

  /** Keep the sweep timer running while anything waits. */
  #startSweeper(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = setInterval(() => this.#expire(), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  /** Fail waiters past their deadline; stop the timer once nothing waits. */
  #expire(): void {
    const now = Date.now();
    for (const [token, waiter] of this.#waiters) {
      if (waiter.deadline > now) continue;
      this.#waiters.delete(token);
      waiter.reject(new TimeoutError());
    }
    if (this.#waiters.size === 0) this.#stopSweeper();
  }

  #stopSweeper(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #failAll(error: Error): void {
    for (const waiter of this.#waiters.values()) waiter.reject(error);
    this.#waiters.clear();
    this.#stopSweeper();
  }
}

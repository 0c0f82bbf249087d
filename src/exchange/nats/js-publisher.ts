/**
 * JetStream publishes on the message path, acknowledged through one shared inbox.
 *
 * `js.publish()` of nats.js goes through `nc.request()`, which builds an `Error` for every
 * request it completes (to reject an already-settled promise) and a timer per call. On the
 * machines we measured, that `Error` alone cost 15 µs, about a tenth of the CPU of an action
 * (docs/BENCHMARKS.md). This publisher sends the same publish (subject, headers with
 * `Nats-Msg-Id`, a reply subject for the PubAck), matches acks on one wildcard subscription, and
 * expires waiters with one sweep timer. Failures carry nats.js's own error types (TimeoutError,
 * NoRespondersError, JetStreamApiError, ClosedConnectionError), so retry classification is
 * unchanged. Used for mailbox messages only; control-plane publishes keep `js.publish()`.
 */
import type { PubAck } from "@nats-io/jetstream";
import { JetStreamApiError } from "@nats-io/jetstream";
import { ClosedConnectionError, NoRespondersError, TimeoutError, createInbox } from "@nats-io/nats-core";
import type { MsgHdrs, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { PublishHeaders } from "./header-block.ts";
import { SlotTable } from "../../util/slot-table.ts";

/**
 * The connection's inbox prefix (nats.js's `inboxPrefix` connection option, default `_INBOX`).
 * Every inbox the library creates is under it, as nats.js's own are, so that a user's NATS
 * permissions can allow it to subscribe to its own inbox subjects only (docs/SECURITY.md).
 */
export function connectionInboxPrefix(nc: NatsConnection): string {
  const prefix = (nc as { options?: { inboxPrefix?: unknown } }).options?.inboxPrefix;
  return typeof prefix === "string" && prefix !== "" ? prefix : "_INBOX";
}

/**
 * What to do when a publish fails: the promise of another outcome (a retry, usually), which the
 * publish's own promise then follows. Given, it sees every failure of the publish, whatever its
 * kind (a timeout, no responders, a refusal, a closed connection, a stream's error), and the
 * publish's promise rejects only if what it returns does.
 */
export type PublishRecovery<T> = (error: Error) => Promise<T>;

/** A publish waiting for its acknowledgement. */
class Waiter {
  readonly subject: string;
  /** The last token of its acknowledgement's subject: `<slot>_<sequence>`, in base 36. */
  token = "";
  readonly deadline: number;
  /** Whether the publish resolves with its `PubAck` (else with undefined, once stored). */
  readonly wantsAck: boolean;
  readonly resolve: (value: unknown) => void;
  readonly #reject: (error: Error) => void;
  readonly #recover: PublishRecovery<unknown> | undefined;

  constructor(
    subject: string,
    deadline: number,
    wantsAck: boolean,
    resolve: (value: unknown) => void,
    reject: (error: Error) => void,
    recover: PublishRecovery<unknown> | undefined,
  ) {
    this.subject = subject;
    this.deadline = deadline;
    this.wantsAck = wantsAck;
    this.resolve = resolve;
    this.#reject = reject;
    this.#recover = recover;
  }

  /** The publish failed: recover (the promise follows the recovery's), or reject. */
  fail(error: Error): void {
    if (this.#recover === undefined) {
      this.#reject(error);
      return;
    }
    let recovered: Promise<unknown>;
    try {
      recovered = this.#recover(error);
    } catch (thrown) {
      this.#reject(thrown as Error);
      return;
    }
    this.resolve(recovered);
  }
}

/** How often expired waiters are failed, in ms (timeouts are this much coarser). */
const SWEEP_INTERVAL_MS = 100;

const decoder = new TextDecoder();

/**
 * A PubAck that is not an error begins with `{"stream"`: nats-server writes the `error` field
 * first when there is one (`{"error":...}`), and the stream name first otherwise.
 */
const OK_ACK_START = new TextEncoder().encode('{"stream"');

function isSuccessAck(data: Uint8Array): boolean {
  if (data.length < OK_ACK_START.length) return false;
  for (let i = 0; i < OK_ACK_START.length; i++) if (data[i] !== OK_ACK_START[i]) return false;
  return true;
}

/**
 * A successful PubAck read only when one of its fields is: most publishes on the message path
 * (requests, responses, result records) need to know that the message was stored, not where, so
 * they skip decoding and parsing its JSON.
 */
class StoredAck implements PubAck {
  readonly #data: Uint8Array;
  #parsed: PubAck | undefined;

  constructor(data: Uint8Array) {
    this.#data = data;
  }

  #ack(): PubAck {
    return (this.#parsed ??= JSON.parse(decoder.decode(this.#data)) as PubAck);
  }

  get stream(): string {
    return this.#ack().stream;
  }

  get seq(): number {
    return this.#ack().seq;
  }

  get domain(): string | undefined {
    return this.#ack().domain;
  }

  get duplicate(): boolean {
    return this.#ack().duplicate === true;
  }
}

export class JetStreamPublisher {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  /**
   * Publishes waiting for their acknowledgement, by slot (not a `Map`: see {@link SlotTable}). A
   * publish's token names its slot and a sequence number, so that a late acknowledgement of an
   * expired publish is not taken for the slot's next one.
   */
  readonly #waiters = new SlotTable<Waiter>();
  #sub: Subscription | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #next = 0;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#prefix = `${createInbox(connectionInboxPrefix(nc))}.`;
    void nc.closed().then(() => this.#failAll(new ClosedConnectionError()));
    void this.#watchRefusals();
  }

  /**
   * The server refuses a publish or a subscription asynchronously: fail at once the publishes it
   * concerns (to that subject, or all of them if it is the acknowledgement inbox), instead of
   * letting them time out and be retried.
   */
  async #watchRefusals(): Promise<void> {
    for await (const status of this.#nc.status()) {
      if (status.type !== "error") continue;
      const error = (status as { error?: unknown }).error;
      const refused = error instanceof Error && error.name === "PermissionViolationError" ? (error as Error & { subject?: string; operation?: string }) : undefined;
      if (refused === undefined) continue;
      const inbox = refused.operation === "subscription" && refused.subject === `${this.#prefix}*`;
      for (const [slot, waiter] of this.#waiters.entries()) {
        if (!inbox && waiter.subject !== refused.subject) continue;
        this.#waiters.take(slot);
        waiter.fail(refused);
      }
      if (inbox) {
        // Subscribe again on the next publish (the permissions may have been fixed meanwhile).
        this.#sub = undefined;
      }
    }
  }

  /**
   * Publish `data` to `subject` (headers must already hold `Nats-Msg-Id` if wanted) and resolve
   * with the stream's acknowledgement. `headers` is nats.js's map or a {@link HeaderBlock}: nats.js's
   * publish reads only its `encode()`. With `recover`, a failure is handed to it (see
   * {@link PublishRecovery}).
   */
  publish(subject: string, data: Uint8Array, headers: PublishHeaders | undefined, timeoutMs: number, recover?: PublishRecovery<PubAck>): Promise<PubAck> {
    return this.send(subject, data, headers, timeoutMs, true, recover) as Promise<PubAck>;
  }

  /**
   * {@link publish} for a caller that needs to know only that the message was stored: resolves
   * with undefined, without an acknowledgement object (the message path's requests, responses and
   * result records).
   */
  store(subject: string, data: Uint8Array, headers: PublishHeaders | undefined, timeoutMs: number, recover?: PublishRecovery<void>): Promise<void> {
    return this.send(subject, data, headers, timeoutMs, false, recover) as Promise<void>;
  }

  /**
   * {@link publish} (`wantsAck`) or {@link store}, for a caller that makes both kinds: resolves
   * with the acknowledgement, or with undefined.
   */
  send(subject: string, data: Uint8Array, headers: PublishHeaders | undefined, timeoutMs: number, wantsAck: boolean, recover?: PublishRecovery<unknown>): Promise<unknown> {
    // One promise per publish, whatever happens: a failure is handed to `recover` inside it (no
    // `.catch()` and its promise on every publish to retry the few that fail).
    return new Promise<unknown>((resolve, reject) => {
      const waiter = new Waiter(subject, Date.now() + timeoutMs, wantsAck, resolve, reject, recover);
      if (this.#nc.isClosed()) {
        waiter.fail(new ClosedConnectionError());
        return;
      }
      this.#subscribe();
      const slot = this.#waiters.add(waiter);
      const token = `${slot.toString(36)}_${(this.#next++).toString(36)}`;
      waiter.token = token;
      this.#startSweeper();
      try {
        // nats.js 3.4's publish reads only `encode()` of its headers (protocol.js), which a
        // HeaderBlock has; the type says MsgHdrs, whose interface does not even declare it.
        this.#nc.publish(subject, data, { reply: `${this.#prefix}${token}`, headers: headers as MsgHdrs | undefined });
      } catch (error) {
        this.#waiters.take(slot);
        waiter.fail(error as Error);
      }
    });
  }

  #subscribe(): void {
    if (this.#sub !== undefined) return;
    this.#sub = this.#nc.subscribe(`${this.#prefix}*`, {
      callback: (error, msg) => {
        if (error !== null) return;
        const token = msg.subject.slice(this.#prefix.length);
        // The slot is the token's leading base-36 digits (parseInt stops at the "_").
        const slot = Number.parseInt(token, 36);
        const waiter = this.#waiters.get(slot);
        if (waiter === undefined || waiter.token !== token) return; // late: already timed out (and retried), or foreign
        this.#waiters.take(slot);
        if (msg.data.length === 0 && msg.headers?.code === 503) {
          waiter.fail(new NoRespondersError(waiter.subject));
          return;
        }
        const data = msg.data;
        if (isSuccessAck(data)) {
          waiter.resolve(waiter.wantsAck ? new StoredAck(data) : undefined);
          return;
        }
        try {
          const ack = JSON.parse(decoder.decode(data)) as PubAck & { error?: { code: number; err_code?: number; description: string } };
          if (ack.error !== undefined) waiter.fail(new JetStreamApiError({ code: ack.error.code, err_code: ack.error.err_code ?? 0, description: ack.error.description }));
          else waiter.resolve(waiter.wantsAck ? { ...ack, duplicate: ack.duplicate === true } : undefined);
        } catch (parseError) {
          waiter.fail(parseError as Error);
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
    for (const [slot, waiter] of this.#waiters.entries()) {
      if (waiter.deadline > now) continue;
      this.#waiters.take(slot);
      waiter.fail(new TimeoutError());
    }
    if (this.#waiters.size === 0) this.#stopSweeper();
  }

  #stopSweeper(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #failAll(error: Error): void {
    const waiters = this.#waiters.entries();
    for (const [slot] of waiters) this.#waiters.take(slot);
    for (const [, waiter] of waiters) waiter.fail(error);
    this.#stopSweeper();
  }
}

/**
 * Reading one mailbox: its durable push consumer on the mailbox stream, delivery to the client,
 * acknowledgement deadlines kept alive while a message is being handled, and the fate of messages
 * that cannot be handled (undecodable, foreign, or delivered too often).
 */
import { MailboxStatus } from "../mailbox-status.ts";
import type { ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import { nanos, nuid } from "@nats-io/nats-core";
import { setTimeout as sleep } from "node:timers/promises";
import { DeliveryLimitError, IncompatibleProtocolError, MailboxContendedError, MalformedMessageError } from "../../errors.ts";
import type { EntityId } from "../../identifiers.ts";
import { decodeValue } from "../../protocol/codec.ts";
import type { HandleBinder } from "../../protocol/codec.ts";
import { toFailure } from "../../protocol/failure.ts";
import {
  NatsHeader,
  MessageType,
  fromEnvelope,
  isRequest,
  isValidReplySubject,
  responseRouting,
} from "../../protocol/messages.ts";
import type { Message } from "../../protocol/messages.ts";
import type { Logger } from "../../util/logger.ts";
import type { Delivery, MailboxHandler } from "../transport.ts";
import { NEW_READER, advance, mayBeDuplicate, restart } from "../duplicate-rule.ts";
import type { ReaderProgress } from "../duplicate-rule.ts";
import { parseAckReply } from "./ack-reply.ts";
import { JsApiRequests } from "./js-api-requests.ts";

import type { NatsExchange } from "./nats-exchange.ts";
import { isConsumerNotFound } from "./nats-errors.ts";
import { SlotTable } from "../../util/slot-table.ts";

/** How long a reader that finds its consumer gone waits before concluding it was not a takeover. */
const TAKEOVER_SETTLE_MS = 250;
/** Attempts to open the mailbox while other readers replace its consumer at the same moment. */
const OPEN_ATTEMPTS = 3;
/**
 * How long a message found behind the consumer must stay there before the consumer is made again:
 * long enough for an acknowledgement in flight to remove it (below the ack floor), or for a
 * delivery in flight to reach this reader (above the floor). A delivery lost with a connection or
 * a leader would otherwise come back only after the ack wait (30 s by default).
 */
const BEHIND_CONFIRM_MS = 2_000;
/** How many times one check makes the consumer again for a message that stays behind it. */
const BEHIND_REOPENS = 3;
/** How long after making the consumer again a check looks whether the message was delivered. */
const BEHIND_RECHECK_MS = 5_000;
/** How long after making its consumer a reader takes the announcement of the consumer's leader to be about that. */
const CREATION_ELECTION_MS = 1_000;


/** A mailbox being read. Created by the transport's `listen`. */
export class NatsMailbox {
  readonly #ctx: NatsExchange;
  readonly #id: EntityId;
  readonly #handler: MailboxHandler;
  readonly #context: HandleBinder;
  readonly #logger: Logger;
  /** Messages being handled, by slot (a {@link SlotTable}, not a `Set`: see there). */
  readonly #unacked = new SlotTable<JsMsg>();
  #messages: ConsumerMessages | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  #unwatch: (() => void) | undefined;
  /** Where this reader's consumer delivers (unique to this reader). */
  #deliverSubject: string | undefined;
  #stopped = false;
  #terminatedNotified = false;
  /** While this reader makes its own consumer again (`#reopen`): its deletion is not a takeover. */
  #reopening = false;
  /** The running `checkBehind`, if any. */
  #checkingBehind: Promise<void> | undefined;
  /** When this reader last made its consumer (from the request to the answer), in ms since the epoch. */
  #created: { readonly from: number; readonly to: number } | undefined;
  /**
   * How far this reader's consumer has got (duplicate-rule.ts): which deliveries may be
   * duplicates and must have their result record read. Each new consumer must catch up again.
   */
  #progress: ReaderProgress = NEW_READER;

  constructor(ctx: NatsExchange, id: EntityId, handler: MailboxHandler, context: HandleBinder, logger: Logger) {
    this.#ctx = ctx;
    this.#id = id;
    this.#handler = handler;
    this.#context = context;
    this.#logger = logger;
  }

  /** Take the mailbox over and start delivering. */
  async start(): Promise<void> {
    await this.#open();
    this.#unwatch = this.#ctx.watchMailbox(this.#ctx.layout.mailboxConsumer(this.#id.uid), {
      subject: this.#ctx.layout.mailboxSubject(this.#id.uid),
      consumerDeleted: () => void this.#checkConsumer(),
      reconnected: () => this.#checkConsumer(),
      checkBehind: (consumerElectedAt) => this.#checkBehind(consumerElectedAt),
    });
  }

  /**
   * Replace the mailbox's consumer with a push consumer delivering to a subject of this reader
   * alone, and subscribe to it. A consumer an earlier reader left behind goes: the messages it
   * held unacknowledged are delivered again at once (not after the ack wait), and that reader, if
   * it still lives, receives nothing more. Push delivery costs nothing while the mailbox is idle
   * (no pull requests, no heartbeats, no timers), which is what lets one host keep thousands of
   * agents. The consumer is kept in the server's memory (a server restart loses it; see
   * #checkConsumer).
   */
  async #open(): Promise<void> {
    const { layout, js, settings } = this.#ctx;
    const name = layout.mailboxConsumer(this.#id.uid);
    for (let attempt = 1; ; attempt++) {
      const deliverSubject = layout.deliverSubject(this.#id.uid, nuid.next());
      const config = {
        durable_name: name,
        filter_subject: layout.mailboxSubject(this.#id.uid),
        deliver_subject: deliverSubject,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(settings.ackWaitMs),
        max_deliver: -1,
        max_ack_pending: settings.maxAckPending,
        inactive_threshold: nanos(settings.consumerInactiveMs),
        // The consumer's state in server memory, not files: creating a file-stored consumer costs
        // the server about 3 ms of CPU (a directory and four files), most of a launch's server
        // work; a memory one about 0.5 ms. Nothing durable is lost: acknowledged messages leave
        // the work-queue stream, unacknowledged ones stay in it, and a consumer lost with a server
        // restart is made again by its reader (#checkConsumer on reconnect), delivering them again.
        mem_storage: true,
      };
      // Through the shared inbox (js-api-requests.ts), each retried within the retry window.
      const api = this.#api();
      const creating = Date.now();
      await api.deleteConsumer(layout.mailboxStream, name);
      const created = await api.addConsumer(layout.mailboxStream, config);
      this.#created = { from: creating, to: Date.now() };
      // Another reader replaced the consumer in between: the newest reader wins; try again.
      if (created.config.deliver_subject !== deliverSubject) {
        if (attempt >= OPEN_ATTEMPTS) {
          throw new MailboxContendedError(`Consumer ${name} was replaced by another reader ${attempt} times while this one opened it`, {
            entityId: this.#id.uid,
          });
        }
        continue;
      }
      this.#deliverSubject = deliverSubject;
      // A new consumer: it delivers again what earlier readers held (duplicate-rule.ts, rule 2),
      // all of it at or below the subject's last sequence at the stream leader, read now.
      const lastSeq = await this.#lastSequence();
      this.#progress = restart(this.#progress, lastSeq);
      // Bound to the subject just created: no further round trip to look the consumer up.
      const consumer = await js.consumers.getBoundPushConsumer({ deliver_subject: deliverSubject });
      if (this.#stopped) return;
      const messages = await consumer.consume({ callback: (m) => this.#receive(m) });
      const previous = this.#messages;
      this.#messages = messages;
      previous?.stop();
      if (this.#stopped) messages.stop();
      return;
    }
  }

  /**
   * The last stream sequence of this mailbox's subject, read at the stream leader (a
   * `STREAM.MSG.GET` through the API, not a direct get a lagging replica could answer); 0 when the
   * mailbox is empty; `Infinity` (check every delivery of this consumer) when it cannot be read.
   */
  async #lastSequence(): Promise<number> {
    const { layout } = this.#ctx;
    try {
      return await this.#api().lastSequence(layout.mailboxStream, layout.mailboxSubject(this.#id.uid));
    } catch (error) {
      this.#logger.warn({ err: error }, "could not read the mailbox's last sequence; every delivery of this consumer reads its result record");
      return Number.POSITIVE_INFINITY;
    }
  }

  /** The JetStream API requests of opening, through the exchange's shared inbox. */
  #api(): JsApiRequests {
    const ctx = this.#ctx;
    return new JsApiRequests(ctx.jsm, (what, subject, data, headers) => ctx.publishRecord(what, subject, data, headers));
  }

  /** Stop delivering; unacked messages are nak'ed so the next reader gets them at once. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unwatch?.();
    this.#setKeepAlive(false);
    const messages = this.#messages;
    this.#messages = undefined;
    for (const [slot, m] of this.#unacked.entries()) {
      this.#unacked.take(slot);
      m.nak();
    }
    if (messages !== undefined) {
      messages.stop();
      await messages.closed().catch(() => undefined);
    }
  }

  /**
   * The consumer may be gone (a deletion advisory, or a reconnect): if it is, either the mailbox
   * was terminated, or the consumer was lost (deleted by hand, or with a server's state) and is
   * made again.
   */
  async #checkConsumer(): Promise<void> {
    if (this.#stopped || this.#reopening) return;
    let deliverSubject = await this.#consumerDeliverSubject();
    if (deliverSubject === undefined && !this.#stopped) {
      // A reader taking the mailbox over deletes the consumer and makes its own a moment later.
      await sleep(TAKEOVER_SETTLE_MS);
      deliverSubject = await this.#consumerDeliverSubject();
    }
    if (this.#stopped || deliverSubject === null) return;
    if (deliverSubject !== undefined) {
      if (deliverSubject !== this.#deliverSubject) {
        this.#logger.warn("another reader took this mailbox over; this reader stops");
        await this.stop();
      }
      return;
    }
    const status = await this.#ctx.registry.status(this.#id.uid).catch(() => undefined);
    if (this.#stopped || status === undefined) return;
    if (status === MailboxStatus.Active) {
      this.#logger.warn("mailbox consumer disappeared; recreating it");
      await this.#open().catch((error: unknown) => {
        this.#logger.warn({ err: error }, "could not recreate mailbox consumer");
      });
      return;
    }
    this.#notifyTerminated();
  }

  /**
   * Look for a message the server keeps in this mailbox although its consumer is past it, and if
   * one stays there, make the consumer again (a new consumer delivers from the stream's first
   * message of the subject). After a leader change, nats-server 2.9 can leave a consumer past a
   * message it never delivered, or never delivered again after it was handed back: the message is
   * not lost from the stream, but nothing would deliver it until the mailbox's next reader. A
   * delivery lost in transit with a connection or a leader (the consumer counts it as delivered,
   * this reader never got it) would come back only after the ack wait: the same cures it. Called
   * by the exchange after leader changes and reconnects (NATS-LAYOUT.md 5.2); one check at a time.
   * The election of the consumer's first leader, which a cluster announces as it makes the
   * consumer, is not a change: a new consumer delivers from the subject's first message.
   */
  #checkBehind(consumerElectedAt?: number): Promise<void> {
    const created = this.#created;
    if (consumerElectedAt !== undefined && created !== undefined && consumerElectedAt >= created.from && consumerElectedAt <= created.to + CREATION_ELECTION_MS) {
      return Promise.resolve();
    }
    this.#checkingBehind ??= this.#checkBehindNow().finally(() => {
      this.#checkingBehind = undefined;
    });
    return this.#checkingBehind;
  }

  async #checkBehindNow(): Promise<void> {
    try {
      for (let reopened = 0; ; reopened++) {
        const found = await this.#behind();
        if (found === undefined) return;
        await sleep(BEHIND_CONFIRM_MS);
        const again = await this.#behind();
        if (again?.seq !== found.seq) return;
        const facts = { seq: again.seq, ackFloor: again.ackFloor, delivered: again.delivered };
        if (reopened >= BEHIND_REOPENS) {
          this.#logger.error(
            { ...facts, reopened },
            "a message stays in the mailbox behind its consumer although the consumer was made again; the next leader change or reader tries again",
          );
          return;
        }
        this.#logger.warn(facts, "a message stays in the mailbox behind its consumer (after a leader change); making the consumer again to deliver it");
        await this.#reopen();
        // A consumer made again delivers it at once, unless the server skips it again (a replica
        // that differs from the stream leader's, leading the new consumer): look again.
        await sleep(BEHIND_RECHECK_MS);
      }
    } catch (error) {
      this.#logger.debug({ err: error }, "could not look for messages behind the mailbox consumer");
    }
  }

  /**
   * The mailbox's first stored message if its consumer is past it and not waiting for this reader
   * to acknowledge it: at or below the consumer's ack floor, or delivered and not held by this
   * reader. The first sequence is read at the stream leader, the consumer's state at its leader.
   */
  async #behind(): Promise<{ seq: number; ackFloor: number; delivered: number } | undefined> {
    if (this.#stopped || this.#reopening) return undefined;
    const { layout, jsm } = this.#ctx;
    const seq = await this.#api().firstSequence(layout.mailboxStream, layout.mailboxSubject(this.#id.uid));
    if (seq === 0 || this.#stopped) return undefined;
    let info;
    try {
      info = await jsm.consumers.info(layout.mailboxStream, layout.mailboxConsumer(this.#id.uid));
    } catch (error) {
      if (isConsumerNotFound(error)) return undefined;
      throw error;
    }
    // Another reader's consumer, or none of this reader's yet: not this reader's to judge.
    if (info.config.deliver_subject !== this.#deliverSubject) return undefined;
    const ackFloor = info.ack_floor.stream_seq;
    const delivered = info.delivered.stream_seq;
    if (seq > delivered) return undefined;
    if (seq > ackFloor && this.#holds(seq)) return undefined;
    return { seq, ackFloor, delivered };
  }

  /** Whether this reader has the message at stream sequence `seq` delivered and not yet settled. */
  #holds(seq: number): boolean {
    for (const [, m] of this.#unacked.entries()) {
      if (parseAckReply(ackSubject(m)).streamSeq === seq) return true;
    }
    return false;
  }

  /**
   * Make this reader's consumer again (as on listen). Messages being handled are delivered again
   * by the new consumer and recognised as possible duplicates (duplicate-rule.ts, rule 2).
   */
  async #reopen(): Promise<void> {
    if (this.#stopped) return;
    this.#reopening = true;
    try {
      await this.#open();
    } finally {
      this.#reopening = false;
    }
    // A reader that took the mailbox over meanwhile was not heard while reopening: look now.
    await this.#checkConsumer();
  }

  /** The consumer's delivery subject; undefined if it does not exist, null if that is unknown. */
  async #consumerDeliverSubject(): Promise<string | undefined | null> {
    const { layout, jsm } = this.#ctx;
    try {
      // Transient failures (JetStream still recovering after a restart) are retried: a consumer
      // kept in memory is gone after a restart, and skipping the check would leave it unread.
      return await this.#ctx.retry("check mailbox consumer", async () => {
        try {
          const info = await jsm.consumers.info(layout.mailboxStream, layout.mailboxConsumer(this.#id.uid));
          return info.config.deliver_subject ?? null;
        } catch (error) {
          if (isConsumerNotFound(error)) return undefined;
          throw error;
        }
      });
    } catch (error) {
      this.#logger.debug({ err: error }, "could not check the mailbox consumer");
      return null;
    }
  }

  /** The mailbox was terminated: stop and tell the handler (once). */
  notifyTerminated(): void {
    this.#notifyTerminated();
  }

  #notifyTerminated(): void {
    if (this.#terminatedNotified) return;
    this.#terminatedNotified = true;
    void this.stop().finally(() => this.#handler.terminated());
  }

  #receive(m: JsMsg): void {
    if (this.#stopped) {
      m.nak();
      return;
    }
    // The delivery count, stream sequence and pending count, read once from the ack subject.
    const facts = parseAckReply(ackSubject(m));
    const deliveryCount = facts.deliveryCount;
    const progress = this.#progress;
    this.#progress = advance(progress, facts);
    let message: Message;
    try {
      message = this.#decode(m);
    } catch (error) {
      void this.#reject(m, error as Error);
      return;
    }
    if (isRequest(message)) {
      if (message.dest !== this.#id.uid) {
        void this.#reject(m, new MalformedMessageError(`Request addressed to ${message.dest} arrived in mailbox ${this.#id.uid}`, { subject: m.subject }), message);
        return;
      }
      if (message.replyTo?.startsWith(`${this.#ctx.layout.prefix}.`) === true) {
        const error = new MalformedMessageError(`replyTo ${message.replyTo} is inside the exchange's own subjects`, { subject: m.subject });
        void this.#reject(m, error, { ...message, replyTo: undefined });
        return;
      }
    } else if (message.dest !== undefined && message.dest !== this.#id.uid) {
      // A response is put into the mailbox of its request's src, and carries that uid as dest; the
      // stream subject it was stored under says which mailbox this is. One addressed elsewhere was
      // not sent by a responder to this mailbox's request: never let it settle a call.
      void this.#reject(m, new MalformedMessageError(`Response addressed to ${message.dest} arrived in mailbox ${this.#id.uid}`, { subject: m.subject }), message);
      return;
    }
    if (deliveryCount > this.#ctx.settings.maxDeliveries && isRequest(message)) {
      const error = new DeliveryLimitError(
        `Request delivered ${deliveryCount} times (limit ${this.#ctx.settings.maxDeliveries}); dead-lettered`,
        { deliveries: deliveryCount },
      );
      void this.#reject(m, error, message);
      return;
    }
    const slot = this.#unacked.add(m);
    this.#setKeepAlive(true);
    let settled = false;
    const delivery: Delivery = {
      message,
      deliveryCount,
      // Rules 1, 2 and 4 from the ack subject; rule 3 (a re-publication) from the headers.
      mayBeDuplicate: mayBeDuplicate(progress, facts) || maybeResent(m),
      ack: () => {
        if (settled) return;
        settled = true;
        this.#settle(slot);
        m.ack();
      },
      nak: (delayMs) => {
        if (settled) return;
        settled = true;
        this.#settle(slot);
        m.nak(delayMs);
      },
    };
    this.#handler.deliver(delivery);
  }

  #decode(m: JsMsg): Message {
    return fromEnvelope(decodeValue(m.data, this.#context));
  }

  /** The message in `slot` is settled (or given back): no longer kept alive. */
  #settle(slot: number): void {
    this.#unacked.take(slot);
  }

  /**
   * Keep ack deadlines of messages being handled from expiring (a third of the ack wait). The
   * timer runs while messages are unacknowledged and stops at its first tick with none: a mailbox
   * that handles one message after another keeps one timer rather than making and clearing one
   * per message. `stop()` clears it at once.
   */
  #setKeepAlive(on: boolean): void {
    if (on && this.#keepAlive === undefined) {
      this.#keepAlive = setInterval(() => {
        if (this.#unacked.size === 0) {
          this.#setKeepAlive(false);
          return;
        }
        for (const [, m] of this.#unacked.entries()) m.working();
      }, Math.max(100, Math.floor(this.#ctx.settings.ackWaitMs / 3)));
      this.#keepAlive.unref();
    } else if (!on && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  /**
   * A message that cannot be handled: dead-letter it; once the dead letter is stored, answer its
   * sender with the typed error when a reply address can be read (from the envelope, else the
   * headers), and remove it. A message whose dead letter cannot be stored is kept and not answered.
   */
  async #reject(m: JsMsg, error: Error, decoded?: Message): Promise<void> {
    // Keep its ack deadline alive while we dead-letter and answer it (retries can outlast it).
    const slot = this.#unacked.add(m);
    this.#setKeepAlive(true);
    try {
      await this.#rejectNow(m, error, decoded);
    } finally {
      this.#settle(slot);
    }
  }

  /**
   * In this order, so that a sender told "rejected" can always find the dead letter, and is told
   * once per stored dead letter rather than once per attempt:
   * 1. the dead letter, de-duplicated by the message's stream sequence (`NatsExchange.deadLetter`'s
   *    `dl:<seq>`), so a rejection repeated after a crash between steps 1 and 3 (the message is
   *    delivered again) is stored once within the dead-letter stream's duplicate window;
   * 2. the answer, best effort (a failure is logged: the dead letter is what is kept);
   * 3. `term`, which removes it from the mailbox.
   * If step 1 fails (after the retry window), the message is nak'ed with a delay and left unanswered:
   * the next delivery rejects it again, from step 1.
   */
  async #rejectNow(m: JsMsg, error: Error, decoded?: Message): Promise<void> {
    this.#logger.warn({ err: error, subject: m.subject, seq: m.info.streamSequence }, "rejecting mailbox message");
    try {
      // Kept as Academy-Original-Msg-Id, -Src, -Reply-To, -Tag.
      const kept = [NatsHeader.MsgId, NatsHeader.Source, NatsHeader.ReplyTo, NatsHeader.Tag].flatMap((name) => {
        const value = m.headers?.get(name);
        const short = name.replace(/^(Nats|Academy)-/, "");
        return value !== undefined && value !== "" ? [[short, value] as const] : [];
      });
      await this.#ctx.deadLetter(this.#ctx.layout.deadLetterSubject(this.#id.uid), { data: m.data, subject: m.subject, seq: m.info.streamSequence, headers: kept }, error);
    } catch (deadLetterError) {
      // Keep the message rather than lose it: it is delivered again later, rejected again, and
      // answered then, once its dead letter is stored.
      this.#logger.error({ err: deadLetterError }, "could not dead-letter a rejected message; leaving it in the mailbox");
      m.nak(this.#ctx.settings.ackWaitMs);
      return;
    }
    const address: Address | undefined =
      decoded !== undefined
        ? { tag: decoded.tag, src: decoded.src, replyTo: decoded.replyTo, request: isRequest(decoded) }
        : readAddress(m, this.#ctx.layout.prefix);
    if (address !== undefined && address.request && (address.src !== undefined || address.replyTo !== undefined)) {
      await this.#ctx
        .answer({
          ...responseRouting({ tag: address.tag, dest: this.#id.uid, src: address.src, replyTo: address.replyTo }),
          type: MessageType.ErrorResponse,
          error: toFailure(error),
        })
        .catch((answerError: unknown) => this.#logger.warn({ err: answerError }, "could not answer a rejected message"));
    }
    m.term();
  }
}

interface Address {
  readonly tag: string;
  readonly src: string | undefined;
  readonly replyTo: string | undefined;
  readonly request: boolean;
}

/** Where to answer an undecodable message: from its envelope if it is CBOR at all, else its headers. */
function readAddress(m: JsMsg, prefix: string): Address | undefined {
  let envelope: Record<string, unknown> | undefined;
  try {
    const value = decodeValue(m.data);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) envelope = value as Record<string, unknown>;
  } catch (error) {
    if (!(error instanceof MalformedMessageError || error instanceof IncompatibleProtocolError)) throw error;
  }
  const text = (key: string): string | undefined => {
    const v = envelope?.[key];
    return typeof v === "string" && v.length > 0 ? v : undefined;
  };
  const header = (key: string): string | undefined => {
    const v = m.headers?.get(key);
    return v !== undefined && v.length > 0 ? v : undefined;
  };
  const msgId = header(NatsHeader.MsgId);
  const tag = text("tag") ?? header(NatsHeader.Tag) ?? (msgId?.startsWith("r:") ? undefined : msgId);
  if (tag === undefined) return undefined;
  const type = text("type");
  const request = type !== undefined ? type.endsWith("-request") : !(msgId?.startsWith("r:") ?? false);
  const replyTo = text("replyTo") ?? header(NatsHeader.ReplyTo);
  return {
    tag,
    src: text("src") ?? header(NatsHeader.Source),
    replyTo: replyTo !== undefined && isValidReplySubject(replyTo) && !replyTo.startsWith(`${prefix}.`) ? replyTo : undefined,
    request,
  };
}

const RESENT = new TextEncoder().encode(NatsHeader.Resent);

/**
 * Whether a delivery may carry the re-publication mark (`Academy-Resent`, duplicate rule 3), read
 * from the raw bytes of its NATS header block rather than by decoding the block into a headers
 * map (which costs a string, a split and a map per message): true when the name occurs anywhere
 * in the block. That is never false for a message whose headers have the field, and true for one
 * that only mentions the name in a value, which costs only a record read. Falls back to the
 * decoded headers when the message does not have nats.js's shape.
 */
function maybeResent(m: JsMsg): boolean {
  const raw = (m as unknown as { msg?: { _rdata?: unknown; _msg?: { hdr?: unknown } } }).msg;
  const data = raw?._rdata;
  const headerLength = raw?._msg?.hdr;
  if (!(data instanceof Uint8Array) || typeof headerLength !== "number") return m.headers?.has(NatsHeader.Resent) === true;
  if (headerLength <= 0) return false;
  const last = Math.min(headerLength, data.length) - RESENT.length;
  const first = RESENT[0]!;
  outer: for (let i = 0; i <= last; i++) {
    if (data[i] !== first) continue;
    for (let j = 1; j < RESENT.length; j++) if (data[i + j] !== RESENT[j]) continue outer;
    return true;
  }
  return false;
}

/** The reply (ack) subject of a JetStream delivery: nats.js's `JsMsgImpl.reply`, not on the interface. */
function ackSubject(m: JsMsg): string | undefined {
  return (m as JsMsg & { readonly reply?: string }).reply;
}

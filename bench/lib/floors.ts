/**
 * The JetStream floors of a durable call: the least that the same durable messages cost with
 * nats.js and nats-server, with no runtime code at all (no envelope, no registry, no interceptors).
 * The exchange is judged against these, not only against bare core request/reply, which no
 * durable design can match (issue 17).
 *
 * Both floors use the exchange's connection layout: one connection for the caller and the agents,
 * as one `NatsExchangeFactory` has; one work-queue stream holding every mailbox, one subject per
 * mailbox, one durable push consumer per mailbox with explicit acks (the exchange's default
 * `ack_wait` and `max_ack_pending`); publishes with `Nats-Msg-Id` whose PubAcks come back on one
 * wildcard inbox subscription, as the exchange's publisher does.
 *
 * - **F1** (core replies): the request is stored in the agent's mailbox (its PubAck awaited
 *   together with the reply), the agent answers on the caller's core inbox, then acks.
 * - **F2** (durable replies): the same, but the reply is stored in the caller's mailbox in the
 *   same stream; the agent acks the request after the reply's PubAck, and the caller acks the reply.
 *
 * With `records: true` (F1r, F2r) the agent also stores the reply as a result record, as the
 * exchange's effectively-once execution does by default: a plain publish of the reply's bytes to
 * `$KV.<bucket>.<agent>.<tag>` of a KV bucket kept for the exchange's result window, at the same
 * time as the reply, and the request is acked only once both are stored. These are the same
 * JetStream messages as the exchange's with records (one more stored message per call than
 * F1 / F2), still with no runtime code.
 *
 * Payloads are raw bytes (the exchange's CBOR envelope is part of the runtime's budget). With
 * `sized` (F1s, F2s) the floor carries the exchange's message sizes instead: requests and replies of
 * the byte counts the exchange's envelopes have for the same payload (measured from its messages),
 * the exchange's header fields (`Nats-Msg-Id` with a request tag as long as the exchange's, and
 * `Academy-Src` on requests) and mailbox names as long as its uids. Still no runtime code: what
 * separates such a floor from F1r / F2r is what the bytes of the envelope cost nats.js and
 * nats-server; what separates the exchange from it is the runtime's own work.
 */
import type { JsMsg } from "@nats-io/jetstream";
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { ConsumerMessages } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createInbox, headers as natsHeaders, nanos } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { randomUUID } from "node:crypto";
import { newTag } from "../../src/identifiers.ts";

export const FloorKind = {
  /** Request stored, reply over core NATS. */
  F1: "F1",
  /** Request and reply stored. */
  F2: "F2",
} as const;
export type FloorKind = (typeof FloorKind)[keyof typeof FloorKind];

export interface FloorOptions {
  readonly servers: string;
  /** Stream and subject prefix, unique in the run. */
  readonly prefix: string;
  readonly kind: FloorKind;
  /** How many agent mailboxes (each with its own consumer). */
  readonly agents: number;
  /** The exchange's defaults: 30 s and 1,000. */
  readonly ackWaitMs?: number;
  readonly maxAckPending?: number;
  /** Store each reply as a result record too (F1r / F2r). @defaultValue false */
  readonly records?: boolean;
  /** Carry the exchange's message sizes (F1s / F2s, with `records`): see the module's comment. */
  readonly sized?: MessageSizes;
}

/** The sizes of the exchange's messages for one payload size, body bytes (headers not counted). */
export interface MessageSizes {
  /** The request's envelope. */
  readonly requestBytes: number;
  /** The response's envelope (and its result record, the same bytes). */
  readonly responseBytes: number;
}

/** A floor ready to be called: `call(agent, payload)` resolves with the echoed payload. */
export interface Floor {
  call(agent: number, payload: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

interface Pending {
  /** Parts still missing: the request's PubAck and the reply. */
  missing: number;
  reply: Uint8Array | undefined;
  resolve(reply: Uint8Array): void;
  reject(error: Error): void;
}

const TAG = "Bench-Tag";
const MSG_ID = "Nats-Msg-Id";
const SRC = "Academy-Src";
const REPLY_TO = "Bench-Reply-To";
/** A PubAck that is not an error starts with `{"stream"`: enough to tell success from `{"error"`. */
const OK_ACK = new TextEncoder().encode('{"stream"');

function isOkAck(data: Uint8Array): boolean {
  if (data.length < OK_ACK.length) return false;
  for (let i = 0; i < OK_ACK.length; i++) if (data[i] !== OK_ACK[i]) return false;
  return true;
}

export async function openFloor(options: FloorOptions): Promise<Floor> {
  const { prefix, kind, sized } = options;
  // Mailbox names: as long as the exchange's uids when sized.
  const callerName = sized === undefined ? "caller" : randomUUID();
  const agentNames = Array.from({ length: options.agents }, (_, i) => (sized === undefined ? `agent${i}` : randomUUID()));
  const replyBody = sized === undefined ? undefined : new Uint8Array(sized.responseBytes);
  const nc: NatsConnection = await connect({ servers: options.servers, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const stream = `${prefix}_mailboxes`;
  const mailbox = (name: string): string => `${prefix}.mbox.${name}`;
  await jsm.streams.add({
    name: stream,
    subjects: [`${prefix}.mbox.*`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: 1,
    duplicate_window: nanos(120_000),
  });
  // The exchange's results bucket: one replica, file storage, kept for the default result window.
  const recordsBucket = `${prefix}_results`;
  if (options.records === true) await new Kvm(nc).create(recordsBucket, { ttl: 600_000, history: 1, storage: StorageType.File, replicas: 1 });
  const consumers: ConsumerMessages[] = [];
  const consume = async (name: string, onMessage: (m: JsMsg) => void): Promise<void> => {
    const deliverSubject = `${prefix}.deliver.${name}`;
    await jsm.consumers.add(stream, {
      durable_name: `mbox-${name}`,
      filter_subject: mailbox(name),
      deliver_subject: deliverSubject,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(options.ackWaitMs ?? 30_000),
      max_deliver: -1,
      max_ack_pending: options.maxAckPending ?? 1000,
    });
    const consumer = await js.consumers.getBoundPushConsumer({ deliver_subject: deliverSubject });
    consumers.push(await consumer.consume({ callback: onMessage }));
  };

  // PubAcks of every publish, on one wildcard inbox: token -> what to do with the ack.
  const ackInbox = `${createInbox()}.`;
  const acks = new Map<string, (ok: boolean) => void>();
  nc.subscribe(`${ackInbox}*`, {
    callback: (_error, msg) => {
      const token = msg.subject.slice(ackInbox.length);
      const settle = acks.get(token);
      if (settle === undefined) return;
      acks.delete(token);
      settle(isOkAck(msg.data));
    },
  });
  let next = 0;
  /** Store `data` at `subject` (a mailbox, a record); `onAck` runs with the PubAck's outcome. */
  const store = (subject: string, data: Uint8Array, msgId: string | undefined, extra: Array<[string, string]>, onAck: (ok: boolean) => void): void => {
    const token = (next++).toString(36);
    acks.set(token, onAck);
    const h = natsHeaders();
    if (msgId !== undefined) h.set(MSG_ID, msgId);
    for (const [name, value] of extra) h.set(name, value);
    nc.publish(subject, data, { reply: `${ackInbox}${token}`, headers: h });
  };

  const pending = new Map<string, Pending>();
  const part = (tag: string, reply?: Uint8Array): void => {
    const p = pending.get(tag);
    if (p === undefined) return;
    if (reply !== undefined) p.reply = reply;
    if (--p.missing === 0) {
      pending.delete(tag);
      p.resolve(p.reply!);
    }
  };
  const fail = (tag: string, error: Error): void => {
    const p = pending.get(tag);
    if (p === undefined) return;
    pending.delete(tag);
    p.reject(error);
  };

  // The caller's side of replies: a core inbox (F1) or its own mailbox (F2).
  const replyInbox = `${createInbox()}.`;
  if (kind === FloorKind.F1) {
    nc.subscribe(`${replyInbox}*`, { callback: (_error, msg) => part(msg.subject.slice(replyInbox.length), msg.data) });
  } else {
    await consume(callerName, (m) => {
      const tag = sized === undefined ? (m.headers?.get(TAG) ?? "") : (m.headers?.get(MSG_ID) ?? "").slice(2);
      m.ack();
      part(tag, m.data);
    });
  }

  // The agents: echo the payload back (and store it as a record), then ack the request.
  for (let agent = 0; agent < options.agents; agent++) {
    await consume(agentNames[agent]!, (m) => {
      const tag = (sized === undefined ? m.headers?.get(TAG) : m.headers?.get(MSG_ID)) ?? "";
      const reply = replyBody ?? m.data;
      let stores = kind === FloorKind.F1 ? 0 : 1;
      let failed = false;
      const stored = (ok: boolean): void => {
        failed ||= !ok;
        if (--stores > 0) return;
        if (failed) m.nak();
        else m.ack();
      };
      if (options.records === true) {
        stores++;
        // As the exchange writes records: no message id (a record is keyed by its subject).
        store(`$KV.${recordsBucket}.${agentNames[agent]!}.${tag}`, reply, undefined, [], stored);
      }
      if (kind === FloorKind.F1) nc.publish(m.headers?.get(REPLY_TO) ?? "", reply);
      else store(mailbox(callerName), reply, `r:${tag}`, sized === undefined ? [[TAG, tag]] : [], stored);
      if (stores === 0) m.ack();
    });
  }
  await nc.flush();

  let calls = 0;
  return {
    call(agent, payload) {
      const tag = sized === undefined ? (calls++).toString(36) : newTag();
      let request = payload;
      if (sized !== undefined) {
        // The payload inside a request of the exchange's size.
        request = new Uint8Array(Math.max(sized.requestBytes, payload.byteLength));
        request.set(payload);
      }
      return new Promise<Uint8Array>((resolve, reject) => {
        pending.set(tag, { missing: 2, reply: undefined, resolve, reject });
        // Sized: the exchange's fields (the tag as the message id; the caller's mailbox, or for F1
        // the core reply subject, which the exchange carries in its envelope).
        const extra: Array<[string, string]> = sized === undefined ? [[TAG, tag]] : kind === FloorKind.F1 ? [] : [[SRC, callerName]];
        if (kind === FloorKind.F1) extra.push([REPLY_TO, `${replyInbox}${tag}`]);
        store(mailbox(agentNames[agent]!), request, sized === undefined ? `${prefix}:${tag}` : tag, extra, (ok) => {
          if (ok) part(tag);
          else fail(tag, new Error(`${kind} floor: the request was not stored`));
        });
      });
    },
    async close() {
      for (const messages of consumers) messages.stop();
      await jsm.streams.delete(stream).catch(() => undefined);
      if (options.records === true) await jsm.streams.delete(`KV_${recordsBucket}`).catch(() => undefined);
      await nc.close();
    },
  };
}

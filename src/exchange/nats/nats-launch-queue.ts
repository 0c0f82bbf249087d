/**
 * Launch requests on NATS: the work-queue stream `<p>_launches` and each pool's durable pull
 * consumer `pool-<pool>`, which the hosts of the pool share (docs/NATS-LAYOUT.md 14.2, 14.3), and
 * dead letters of rejected requests (14.6).
 */
import type { Consumer, ConsumerConfig, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import { headers as natsHeaders, nanos } from "@nats-io/nats-core";
import { InvalidConfigError } from "../../errors.ts";
import type { LaunchBatch, LaunchDelivery, LaunchQueue } from "../../pool/pool-backend.ts";
import { encodeLaunchRequest } from "../../pool/records.ts";
import type { LaunchRequest } from "../../pool/records.ts";
import type { NatsExchange } from "./nats-exchange.ts";
import { isConsumerNotFound } from "./nats-errors.ts";

/** Room left for the NATS headers of a launch request or KV write (message id, KV operation). */
export const HEADER_ALLOWANCE = 256;

/** Put a launch request on the stream, de-duplicated by agent and generation (`launch:<uid>:<gen>`). */
export async function publishLaunch(ctx: NatsExchange, request: LaunchRequest, encoded?: Uint8Array): Promise<void> {
  const subject = ctx.layout.launchSubject(request.pool, request.uid);
  const data = encoded ?? encodeLaunchRequest(request);
  ctx.checkSize(data.byteLength + HEADER_ALLOWANCE, `Launch request of agent ${request.uid}`);
  const headers = natsHeaders();
  headers.set("Nats-Msg-Id", `launch:${request.uid}:${request.gen}`);
  // Through the shared-inbox publisher: no nats.js request (and no Error built) per launch.
  await ctx.publishRecord("publish launch request", subject, data, headers);
}

/**
 * Put a launch request for a pool of another site into the outbox to that site, de-duplicated as
 * on the stream (`launch:<uid>:<gen>`); that site's relay registers the agent and stores the
 * request in its launch stream (docs/EDGE.md).
 */
export async function publishRemoteLaunch(ctx: NatsExchange, site: string, request: LaunchRequest): Promise<void> {
  const link = ctx.link(site);
  await link.ready();
  const data = encodeLaunchRequest(request);
  ctx.checkSize(data.byteLength + HEADER_ALLOWANCE, `Launch request of agent ${request.uid}`);
  const headers = natsHeaders();
  headers.set("Nats-Msg-Id", `launch:${request.uid}:${request.gen}`);
  await ctx.publishStored(ctx.layout.outboxLaunchSubject(site, request.pool, request.uid), data, headers);
}

/**
 * Whether a launch request for agent `uid` is waiting in the stream for a host to take it: its last
 * one is stored, and beyond the pool consumer's ack floor. One at or below the floor is a request
 * the consumer will never deliver: nats-server 2.9 can leave one there after a leader change
 * (NATS-LAYOUT.md 5.2, *Messages behind the consumer*), and the sweep then publishes it again.
 */
export async function launchPending(ctx: NatsExchange, pool: string, uid: string): Promise<boolean> {
  const { layout, jsm } = ctx;
  const stored = await ctx.retry("read launch stream", () =>
    jsm.streams.getMessage(layout.launchStream, { last_by_subj: layout.launchSubject(pool, uid) }),
  );
  if (stored === null) return false;
  const info = await ctx.retry("read pool consumer", async () => {
    try {
      return await jsm.consumers.info(layout.launchStream, layout.poolConsumer(pool));
    } catch (error) {
      if (isConsumerNotFound(error)) return undefined;
      throw error;
    }
  });
  // No consumer yet: the first host's delivers every stored request.
  return info === undefined || stored.seq > info.ack_floor.stream_seq;
}

/**
 * The queue of `pool`: its durable consumer, created if missing.
 * @throws {InvalidConfigError} if a consumer of that name exists with another filter.
 */
export async function openLaunchQueue(ctx: NatsExchange, pool: string): Promise<LaunchQueue> {
  const consumer = await poolConsumer(ctx, pool);
  return {
    async fetch({ max, expiresMs }) {
      return launchBatch(ctx, pool, await consumer.fetch({ max_messages: max, expires: expiresMs }));
    },
  };
}

async function poolConsumer(ctx: NatsExchange, pool: string): Promise<Consumer> {
  const { layout, jsm, js } = ctx;
  const name = layout.poolConsumer(pool);
  const config: Partial<ConsumerConfig> = {
    durable_name: name,
    filter_subject: layout.poolSubjects(pool),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    // A host acknowledges a launch as soon as it has claimed it (one KV write): a short wait is plenty.
    ack_wait: nanos(30_000),
    max_deliver: -1,
    max_ack_pending: 10_000,
    max_waiting: 4096,
  };
  await ctx.retry("provision pool consumer", async () => {
    try {
      const info = await jsm.consumers.info(layout.launchStream, name);
      if (info.config.filter_subject !== config.filter_subject) {
        throw new InvalidConfigError(
          `Consumer ${name} on ${layout.launchStream} filters ${String(info.config.filter_subject)}, not ${config.filter_subject}`,
          { option: "pool" },
        );
      }
    } catch (error) {
      if (!isConsumerNotFound(error)) throw error; // not found: create it
      await jsm.consumers.add(layout.launchStream, config);
    }
  });
  return js.consumers.get(layout.launchStream, name);
}

function launchBatch(ctx: NatsExchange, pool: string, messages: ConsumerMessages): LaunchBatch {
  return {
    stop: () => messages.stop(),
    async *[Symbol.asyncIterator]() {
      for await (const m of messages) yield launchDelivery(ctx, pool, m);
    },
  };
}

function launchDelivery(ctx: NatsExchange, pool: string, m: JsMsg): LaunchDelivery {
  const seq = m.info.streamSequence;
  return {
    data: m.data,
    subject: m.subject,
    seq,
    ack: () => m.ack(),
    nak: (delayMs) => m.nak(delayMs),
    term: () => m.term(),
    working: () => m.working(),
    async deadLetter(error) {
      // Kept as Academy-Original-Msg-Id, as for mailbox dead letters.
      const headers: Array<[string, string]> = [];
      const msgId = m.headers?.get("Nats-Msg-Id");
      if (msgId !== undefined && msgId !== "") headers.push(["Msg-Id", msgId]);
      await ctx.deadLetter(ctx.layout.poolDeadLetterSubject(pool), { data: m.data, subject: m.subject, seq, headers }, error, `dl:launch:${seq}`);
    },
  };
}

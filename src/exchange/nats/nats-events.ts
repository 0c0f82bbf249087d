/**
 * Events on NATS ({@link EventBus}, docs/EVENTS.md): core subscriptions (with a queue group for
 * `shared`), durable subscriptions as JetStream pull consumers on the user's stream (one per agent
 * and handler for `each`, one per type and handler for `shared`), publishing (core, or JetStream
 * with the PubAck), the readers of keyed routes, and the dead letters of events on
 * `<prefix>.dlq.event.<agent uid>`.
 */
import type { ConsumerConfig, ConsumerInfo, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import { AckPolicy, DeliverPolicy, ReplayPolicy } from "@nats-io/jetstream";
import { headers as natsHeaders, nanos } from "@nats-io/nats-core";
import type { Msg, MsgHdrs, Subscription } from "@nats-io/nats-core";
import { setTimeout as sleep } from "node:timers/promises";
import { randomUUID } from "node:crypto";
import { eventKey, keyedByField, keyedSubject, payloadKey, SubscriptionGroup } from "../../agent/subscriptions.ts";
import { decodeEvent } from "../../protocol/event-codec.ts";
import { DiscardPolicy, RetentionPolicy } from "@nats-io/jetstream";
import { ensureStream, storageType } from "./nats-exchange.ts";
import type { ResolvedSubscription } from "../../agent/subscriptions.ts";
import { InvalidConfigError, MalformedMessageError } from "../../errors.ts";
import type { MessageHeaders } from "../../protocol/headers.ts";
import type { EventBus, EventPublishAck, EventPublishOptions, EventSubscription, InboundEvent, KeyedRoute, RouteSession, SubscriptionOwner } from "../events.ts";
import { isConsumerExists, isConsumerNotFound, isStreamNotFound } from "./nats-errors.ts";
import type { NatsExchange } from "./nats-exchange.ts";
import { SlotTable } from "../../util/slot-table.ts";

/** Bytes kept free for the headers of a dead letter when its event fills `max_payload`. */
const DEAD_LETTER_HEADROOM = 4096;
/** How long the keyed stream keeps the events routers copy into it, in ms: 7 days. */
const KEYED_MAX_AGE_MS = 7 * 24 * 3_600_000;
/** Headers of a copied event that say where the original is. */
const Original = { Subject: "Academy-Original-Subject", Stream: "Academy-Original-Stream", Seq: "Academy-Original-Seq" } as const;
/** Wait before a reader that lost its consumer or connection reads again, in ms. */
const REREAD_MS = 1_000;

const EMPTY_HEADERS: MessageHeaders = Object.freeze({});

function headerMap(headers: MsgHdrs | undefined): MessageHeaders {
  if (headers === undefined) return EMPTY_HEADERS;
  const map: Record<string, string> = {};
  for (const key of headers.keys()) map[key] = headers.get(key);
  return map;
}

/** The "agent" a keyed route's dead letters are filed under (`<prefix>.dlq.event.<it>`): the route, as a uid-shaped token. */
function routeDeadLetterId(agentType: string, handler: string): string {
  return `route_${agentType}_${handler}`.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
}

/** The events of one NATS exchange. */
export class NatsEvents implements EventBus {
  readonly #ctx: NatsExchange;

  constructor(ctx: NatsExchange) {
    this.#ctx = ctx;
  }

  async subscribe(owner: SubscriptionOwner, sub: ResolvedSubscription, deliver: (event: InboundEvent) => Promise<void>): Promise<EventSubscription> {
    if (owner.key !== undefined && keyedByField(sub)) {
      // Keyed by a payload field: the routers copy the key's events to a subject of its own.
      await this.#ensureKeyedStream();
      const { layout } = this.#ctx;
      return this.#durable(owner, sub, layout.keyedEventSubject(owner.agentType, owner.handler, owner.key), deliver, layout.keyedStream);
    }
    const subject = owner.key === undefined ? sub.subject : keyedSubject(sub, owner.key);
    return sub.stream === undefined ? this.#core(owner, sub, subject, deliver) : this.#durable(owner, sub, subject, deliver);
  }

  /** The stream of copied keyed events, created if missing (idempotent; safe to race). */
  async #ensureKeyedStream(): Promise<void> {
    const { layout, settings, jsm, logger, provisioning } = this.#ctx;
    await this.#ctx.retry("provision keyed event stream", () =>
      ensureStream(jsm, logger, {
        name: layout.keyedStream,
        subjects: [layout.keyedSubjects],
        retention: RetentionPolicy.Limits,
        storage: storageType(settings),
        num_replicas: settings.replicas,
        max_age: nanos(KEYED_MAX_AGE_MS),
        duplicate_window: nanos(settings.duplicateWindowMs),
        discard: DiscardPolicy.Old,
      }, undefined, provisioning),
    );
  }

  async publish(subject: string, data: Uint8Array, options: EventPublishOptions = {}): Promise<EventPublishAck | undefined> {
    const headers = options.headers === undefined && options.msgId === undefined ? undefined : natsHeaders();
    for (const [name, value] of Object.entries(options.headers ?? {})) headers!.set(name, value);
    if (options.msgId !== undefined) headers!.set("Nats-Msg-Id", options.msgId);
    let size = data.byteLength;
    for (const [name, value] of Object.entries(options.headers ?? {})) size += name.length + value.length + 4;
    this.#ctx.checkSize(size, `Event on ${subject}`);
    if (options.durable !== true) {
      this.#ctx.nc.publish(subject, data, headers === undefined ? undefined : { headers });
      return undefined;
    }
    const ack = await this.#ctx.publishStored(subject, data, headers ?? natsHeaders());
    return { stream: ack.stream, sequence: ack.seq, duplicate: ack.duplicate };
  }

  async route(route: KeyedRoute, onKey: (key: string, subject: string) => Promise<void>): Promise<RouteSession> {
    const sub = route.subscription;
    const name = this.#ctx.layout.routerConsumer(route.agentType, route.handler);
    const byField = keyedByField(sub);
    // Keys from a subject token: routers only launch agents; each agent reads its key's events
    // itself, in order, and any number of routers handle the route's events in parallel. Keys from
    // a payload field: routers also copy each event to its key's subject, one event at a time
    // across all routers (max_ack_pending 1), so that copies keep the stream's order.
    const config: Partial<ConsumerConfig> = {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(30_000),
      filter_subject: sub.subject,
      max_deliver: -1,
      max_ack_pending: byField ? 1 : 1_000,
      replay_policy: ReplayPolicy.Instant,
      ...(await this.#startOf(sub.stream!, sub)),
    };
    await this.#ensureConsumer(sub.stream!, name, config, false);
    if (byField) return this.#routeByField(route, name, onKey);
    const reader = new Reader(this.#ctx, sub.stream!, name, 256, async (m) => {
      const key = eventKey(sub, m.subject);
      if (key === undefined) return m.term();
      const keepAlive = setInterval(() => m.working(), 10_000);
      try {
        await onKey(key, m.subject);
        m.ack();
      } catch (error) {
        this.#ctx.logger.warn({ err: error, subject: m.subject }, "keyed route: could not launch the key's agent; trying again");
        m.nak(REREAD_MS);
      } finally {
        clearInterval(keepAlive);
      }
    }, true);
    reader.start();
    return { stop: () => reader.stop() };
  }

  /** Route events keyed by a payload field: launch the key's agent, copy the event to its subject. */
  async #routeByField(route: KeyedRoute, name: string, onKey: (key: string, subject: string) => Promise<void>): Promise<RouteSession> {
    const sub = route.subscription as ResolvedSubscription & { key: { field: string } };
    const stream = sub.stream!;
    await this.#ensureKeyedStream();
    const { layout } = this.#ctx;
    const owner: SubscriptionOwner = { agentId: routeDeadLetterId(route.agentType, route.handler), agentType: route.agentType, handler: route.handler };
    const reader = new Reader(this.#ctx, stream, name, 1, async (m) => {
      let key: string | undefined;
      let problem: Error | undefined;
      try {
        key = payloadKey(decodeEvent(sub.codec, m.data, m.subject), sub.key.field);
        if (key === undefined) problem = new MalformedMessageError(`Event ${stream}#${m.seq} on ${m.subject} has no key in its field ${sub.key.field}`, { subject: m.subject });
      } catch (error) {
        problem = error as Error;
      }
      const keepAlive = setInterval(() => m.working(), 10_000);
      try {
        if (problem !== undefined) {
          await this.#deadLetter(owner, { subject: m.subject, data: m.data, headers: m.headers, stream, seq: m.seq }, problem, `dl:ev:${stream}:${name}:${m.seq}`);
          return m.ack();
        }
        await onKey(key!, m.subject);
        const headers = natsHeaders();
        for (const [k, v] of Object.entries(headerMap(m.headers))) if (!k.startsWith("Nats-")) headers.set(k, v);
        headers.set(Original.Subject, m.subject);
        headers.set(Original.Stream, stream);
        headers.set(Original.Seq, String(m.seq));
        // Copied once per original within the duplicate window, however often it is routed.
        headers.set("Nats-Msg-Id", `route:${stream}:${m.seq}:${name}`);
        await this.#ctx.publishStored(layout.keyedEventSubject(route.agentType, route.handler, key!), m.data, headers);
        m.ack();
      } catch (error) {
        this.#ctx.logger.warn({ err: error, subject: m.subject }, "keyed route: could not launch the key's agent or copy the event; trying again");
        m.nak(REREAD_MS);
      } finally {
        clearInterval(keepAlive);
      }
    }, false);
    reader.start();
    return { stop: () => reader.stop() };
  }

  #core(owner: SubscriptionOwner, sub: ResolvedSubscription, subject: string, deliver: (event: InboundEvent) => Promise<void>): EventSubscription {
    const queue = sub.queue ?? (sub.group === SubscriptionGroup.Shared ? this.#ctx.layout.eventQueue(owner.agentType, owner.handler) : undefined);
    const subscription: Subscription = this.#ctx.nc.subscribe(subject, queue === undefined ? {} : { queue });
    const done = (async () => {
      for await (const m of subscription) {
        await deliver(this.#coreEvent(owner, m));
      }
    })().catch((error: unknown) => this.#ctx.logger.warn({ err: error, subject }, "core subscription ended"));
    const stop = async (): Promise<void> => {
      if (!subscription.isClosed()) subscription.unsubscribe();
      await done;
    };
    return { stop, remove: stop };
  }

  #coreEvent(owner: SubscriptionOwner, m: Msg): InboundEvent {
    const time = new Date();
    return {
      subject: m.subject,
      data: m.data,
      headers: headerMap(m.headers),
      stream: undefined,
      sequence: undefined,
      time,
      deliveryCount: 1,
      maybeHandled: false,
      ack: () => undefined,
      nak: () => undefined,
      working: () => undefined,
      deadLetter: (error) => this.#deadLetter(owner, { subject: m.subject, data: m.data, headers: m.headers }, error, `dl:ev:${randomUUID()}`),
    };
  }

  async #durable(
    owner: SubscriptionOwner,
    sub: ResolvedSubscription,
    subject: string,
    deliver: (event: InboundEvent) => Promise<void>,
    copies?: string,
  ): Promise<EventSubscription> {
    // `copies`: the keyed stream the routers copy events into; the events say where their originals are.
    const stream = copies ?? sub.stream!;
    const shared = sub.group === SubscriptionGroup.Shared;
    const { layout } = this.#ctx;
    const name = shared ? layout.sharedEventConsumer(owner.agentType, owner.handler) : layout.eventConsumer(owner.agentId, owner.handler);
    const config: Partial<ConsumerConfig> = {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(sub.ackWaitMs),
      filter_subject: subject,
      max_deliver: -1,
      max_ack_pending: Math.max(1_000, sub.prefetch),
      replay_policy: ReplayPolicy.Instant,
    };
    // Events up to this sequence were delivered to a reader that stopped holding them: they may
    // have been handled.
    const suspectUpTo = await this.#ensureConsumer(stream, name, config, !shared, () => this.#startOf(stream, sub));
    // One agent's consumer is read in order: what a restart delivers again (the events after the
    // ack floor) is re-read from the floor, and redeliveries of what was handled are skipped.
    let handledUpTo = 0;
    const settle = (seq: number): void => {
      if (seq > handledUpTo) handledUpTo = seq;
    };
    const reader = new Reader(this.#ctx, stream, name, sub.prefetch, async (m) => {
      if (!shared && m.seq <= handledUpTo) return m.ack();
      const headers = headerMap(m.headers);
      const originalSeq = copies === undefined ? undefined : Number(headers[Original.Seq]);
      const copied = originalSeq !== undefined && Number.isSafeInteger(originalSeq) && headers[Original.Stream] !== undefined;
      const event: InboundEvent = {
        subject: copied ? (headers[Original.Subject] ?? m.subject) : m.subject,
        data: m.data,
        headers,
        stream: copied ? headers[Original.Stream]! : stream,
        sequence: copied ? originalSeq! : m.seq,
        time: m.time,
        deliveryCount: m.info.deliveryCount,
        maybeHandled: m.info.deliveryCount > 1 || m.seq <= suspectUpTo,
        ack: () => {
          settle(m.seq);
          m.ack();
        },
        nak: (delayMs) => m.nak(delayMs),
        working: () => m.working(),
        deadLetter: async (error) => {
          await this.#deadLetter(owner, { subject: m.subject, data: m.data, headers: m.headers, stream, seq: m.seq }, error, `dl:ev:${stream}:${name}:${m.seq}`);
          settle(m.seq);
          m.ack();
        },
      };
      await deliver(event);
    }, false);
    reader.start();
    return {
      stop: () => reader.stop(),
      remove: async () => {
        await reader.stop();
        if (shared) return;
        await this.#ctx.retry("delete event consumer", async () => {
          try {
            await this.#ctx.jsm.consumers.delete(stream, name);
          } catch (error) {
            if (!isConsumerNotFound(error) && !isStreamNotFound(error)) throw error;
          }
        });
      },
    };
  }

  /**
   * The start of a new consumer. `"new"` is resolved to the stream's next sequence now, so that a
   * consumer re-made from its configuration starts at the same place.
   */
  async #startOf(stream: string, sub: ResolvedSubscription): Promise<Partial<ConsumerConfig>> {
    const start = sub.start;
    if (start === "all") return { deliver_policy: DeliverPolicy.All };
    if (start === "new") {
      const info = await this.#ctx.retry("read event stream", () => this.#ctx.jsm.streams.info(stream));
      return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: info.state.last_seq + 1 };
    }
    if ("sequence" in start) return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start.sequence };
    return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: start.time.toISOString() };
  }

  /**
   * Create the consumer, or resume the existing one. An agent's own consumer (`ordered`) with
   * events delivered but not acknowledged (its last reader stopped or died while holding them) is
   * re-made to start after its ack floor, so that they come back at once and in order.
   * @returns the last stream sequence delivered before (0 if none): events up to it may have been handled.
   * @throws {InvalidConfigError} when the stream does not exist, or the consumer exists with another subject.
   */
  async #ensureConsumer(stream: string, name: string, config: Partial<ConsumerConfig>, ordered: boolean, startOf?: () => Promise<Partial<ConsumerConfig>>): Promise<number> {
    const { jsm } = this.#ctx;
    const info = await this.#ctx.retry("read event consumer", async (): Promise<ConsumerInfo | undefined> => {
      try {
        return await jsm.consumers.info(stream, name);
      } catch (error) {
        if (isConsumerNotFound(error)) return undefined;
        if (isStreamNotFound(error)) {
          throw new InvalidConfigError(`Stream ${stream} does not exist: create it (the subscription reads it, it does not own it)`, { option: "stream" });
        }
        throw error;
      }
    });
    if (info === undefined) {
      await this.#add(stream, { ...config, ...(await startOf?.()) }, name);
      return 0;
    }
    if (info.config.filter_subject !== config.filter_subject) {
      throw new InvalidConfigError(
        `Consumer ${name} of stream ${stream} reads ${info.config.filter_subject ?? "everything"}, not ${config.filter_subject}: the subscription's subject changed; delete the consumer (it restarts from the subscription's start)`,
        { option: "subject" },
      );
    }
    if (!ordered || info.num_ack_pending === 0) return 0;
    const floor = info.ack_floor.stream_seq;
    const from: Partial<ConsumerConfig> =
      floor === 0
        ? { deliver_policy: info.config.deliver_policy, opt_start_seq: info.config.opt_start_seq, opt_start_time: info.config.opt_start_time }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: floor + 1 };
    this.#ctx.logger.info({ stream, consumer: name, ackFloor: floor, pending: info.num_ack_pending }, "resuming event consumer from its ack floor");
    await this.#ctx.retry("re-make event consumer", async () => {
      try {
        await jsm.consumers.delete(stream, name);
      } catch (error) {
        if (!isConsumerNotFound(error)) throw error;
      }
    });
    await this.#add(stream, { ...config, ...from }, name);
    return info.delivered.stream_seq;
  }

  async #add(stream: string, config: Partial<ConsumerConfig>, name: string): Promise<void> {
    await this.#ctx.retry("create event consumer", async () => {
      try {
        await this.#ctx.jsm.consumers.add(stream, config);
      } catch (error) {
        // Another agent of a shared group (or another router) made it first: use theirs.
        if (isConsumerExists(error)) return;
        if (isStreamNotFound(error)) {
          throw new InvalidConfigError(`Stream ${stream} does not exist: create it (the subscription reads it, it does not own it)`, { option: "stream" });
        }
        throw error;
      }
    });
    this.#ctx.logger.debug({ stream, consumer: name }, "event consumer ready");
  }

  /**
   * Store an event that could not be handled on `<prefix>.dlq.event.<agent uid>`, with the reason,
   * the handler and where it came from; an event too large to be stored with those headers is
   * stored cut short (header `Academy-Dead-Truncated`: its size).
   */
  async #deadLetter(
    owner: SubscriptionOwner,
    original: { subject: string; data: Uint8Array; headers: MsgHdrs | undefined; stream?: string; seq?: number },
    error: Error,
    msgId: string,
  ): Promise<void> {
    const headers = natsHeaders();
    headers.set("Academy-Dead-Reason", (error as { code?: string }).code ?? error.name);
    headers.set("Academy-Dead-Error", error.message.replace(/[\r\n]+/g, " ").slice(0, 512));
    headers.set("Academy-Original-Subject", original.subject);
    headers.set("Academy-Event-Handler", owner.handler);
    headers.set("Academy-Event-Agent-Type", owner.agentType);
    if (original.stream !== undefined) headers.set("Academy-Original-Stream", original.stream);
    if (original.seq !== undefined) headers.set("Academy-Original-Seq", String(original.seq));
    for (const key of original.headers?.keys() ?? []) {
      if (!key.startsWith("Nats-")) headers.set(`Academy-Original-Header-${key}`, original.headers!.get(key));
    }
    let data = original.data;
    const room = this.#ctx.maxPayload - DEAD_LETTER_HEADROOM;
    if (data.byteLength > room) {
      headers.set("Academy-Dead-Truncated", String(data.byteLength));
      data = data.subarray(0, Math.max(0, room));
    }
    const subject = this.#ctx.layout.eventDeadLetterSubject(owner.agentId);
    await this.#ctx.retry("dead-letter event", () => this.#ctx.js.publish(subject, data, { headers, msgID: msgId }));
  }
}

/**
 * Reads one durable consumer with `consume()`, one message at a time, until stopped; when the
 * reading ends (consumer deleted, connection lost) it reads again. `parallel` hands messages to
 * `handle` without waiting for the previous one (keyed routers).
 */
class Reader {
  readonly #ctx: NatsExchange;
  readonly #stream: string;
  readonly #name: string;
  readonly #prefetch: number;
  readonly #handle: (m: JsMsg) => Promise<void> | void;
  readonly #parallel: boolean;
  #messages: ConsumerMessages | undefined;
  #stopped = false;
  #loop: Promise<void> = Promise.resolve();
  /** Events being handled in parallel (a {@link SlotTable}, not a `Set`: see there). */
  readonly #inFlight = new SlotTable<Promise<void>>();

  constructor(ctx: NatsExchange, stream: string, name: string, prefetch: number, handle: (m: JsMsg) => Promise<void> | void, parallel: boolean) {
    this.#ctx = ctx;
    this.#stream = stream;
    this.#name = name;
    this.#prefetch = prefetch;
    this.#handle = handle;
    this.#parallel = parallel;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#messages?.close().catch(() => undefined);
    await this.#loop;
    await Promise.all(this.#inFlight.entries().map(([, handled]) => handled));
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        const consumer = await this.#ctx.js.consumers.get(this.#stream, this.#name);
        if (this.#stopped) return;
        const messages = await consumer.consume({ max_messages: this.#prefetch });
        this.#messages = messages;
        if (this.#stopped) {
          await messages.close().catch(() => undefined);
          return;
        }
        for await (const m of messages) {
          // Stopped: what was fetched ahead goes back now (to another reader of a shared consumer).
          if (this.#stopped) {
            m.nak();
            continue;
          }
          if (this.#parallel) {
            const handled = Promise.resolve(this.#handle(m)).catch((error: unknown) => this.#ctx.logger.warn({ err: error }, "event handling failed"));
            const slot = this.#inFlight.add(handled);
            void handled.finally(() => this.#inFlight.take(slot));
            while (this.#inFlight.size >= this.#prefetch) await Promise.race(this.#inFlight.entries().map(([, running]) => running));
          } else {
            await this.#handle(m);
          }
        }
      } catch (error) {
        if (this.#stopped || this.#ctx.nc.isClosed()) return;
        this.#ctx.logger.warn({ err: error, stream: this.#stream, consumer: this.#name }, "event consumer read failed; reading again");
      }
      if (!this.#stopped && !this.#ctx.nc.isClosed()) await sleep(REREAD_MS);
      if (this.#ctx.nc.isClosed()) return;
    }
  }
}

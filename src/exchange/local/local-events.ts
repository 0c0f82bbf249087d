/**
 * Events in process ({@link EventBus}): an in-memory publish/subscribe with NATS subject
 * matching. What applies in memory applies here: `each` and `shared` groups and core queue groups,
 * codecs, handler retries, redelivery of events handed back, dead letters (kept in memory, listed
 * by `LocalExchangeFactory.deadLetters`). What needs a server does not: there are no streams, so
 * a subscription's `stream` and `start` are not used (it gets what is published while it runs),
 * and nothing outlives the process (docs/EVENTS.md).
 */
import { SubscriptionGroup, keyedByField, keyedSubject, payloadKey } from "../../agent/subscriptions.ts";
import { decodeEvent } from "../../protocol/event-codec.ts";
import type { ResolvedSubscription } from "../../agent/subscriptions.ts";
import { PayloadTooLargeError } from "../../errors.ts";
import type { MessageHeaders } from "../../protocol/headers.ts";
import { DeadLetterKind, ReplayRefusal } from "../dead-letters.ts";
import type { DeadLetter, DeadLetterFilter, DeadLetterStore, ReplayResult } from "../dead-letters.ts";
import type { EventBus, EventPublishAck, EventPublishOptions, EventSubscription, InboundEvent, SubscriptionOwner } from "../events.ts";

/** Message ids remembered for de-duplication of durable publishes. */
const DEDUPE_ENTRIES = 100_000;
const LOCAL_STREAM = "local";

/** Whether `subject` matches the NATS pattern `pattern` (`*` one token, `>` the rest). */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

interface Pending {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MessageHeaders;
  readonly sequence: number;
  readonly time: Date;
  deliveries: number;
}

/** One agent's subscription: its own queue, handled one event at a time. */
class Subscriber {
  readonly owner: SubscriptionOwner;
  readonly sub: ResolvedSubscription;
  readonly subject: string;
  readonly #bus: LocalEvents;
  readonly #deliver: (event: InboundEvent) => Promise<void>;
  readonly #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  stopped = false;

  constructor(bus: LocalEvents, owner: SubscriptionOwner, sub: ResolvedSubscription, deliver: (event: InboundEvent) => Promise<void>) {
    this.#bus = bus;
    this.owner = owner;
    this.sub = sub;
    this.subject = owner.key === undefined || keyedByField(sub) ? sub.subject : keyedSubject(sub, owner.key);
    this.#deliver = deliver;
  }

  /** The group this subscriber shares events with, if any. */
  get group(): string | undefined {
    if (this.sub.queue !== undefined) return `q:${this.sub.queue}:${this.subject}`;
    if (this.sub.group === SubscriptionGroup.Shared) return `s:${this.owner.agentType}:${this.owner.handler}`;
    return undefined;
  }

  push(event: Pending): void {
    this.#queue.push(event);
    this.#draining ??= this.#drain().finally(() => (this.#draining = undefined));
  }

  /** The events waiting in this subscriber's queue, taken out of it. */
  takeQueued(): Pending[] {
    return this.#queue.splice(0);
  }

  async idle(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  async #drain(): Promise<void> {
    for (let event = this.#queue.shift(); event !== undefined && !this.stopped; event = this.#queue.shift()) {
      event.deliveries++;
      let settled = false;
      const pending = event;
      await this.#deliver({
        subject: event.subject,
        data: event.data,
        headers: event.headers,
        stream: this.sub.stream === undefined ? undefined : LOCAL_STREAM,
        sequence: this.sub.stream === undefined ? undefined : event.sequence,
        time: event.time,
        deliveryCount: event.deliveries,
        maybeHandled: event.deliveries > 1,
        ack: () => {
          settled = true;
        },
        nak: (delayMs) => {
          if (settled || this.sub.stream === undefined) return; // core events are at-most-once
          settled = true;
          // Back to its group (or this subscriber) after the delay.
          setTimeout(() => this.#bus.redeliver(this, pending), delayMs ?? 0).unref();
        },
        working: () => undefined,
        deadLetter: async (error) => {
          this.#bus.letters.add(this.owner, pending, error);
          settled = true;
        },
      });
    }
  }
}

/** The in-process events of one local exchange. */
export class LocalEvents implements EventBus {
  readonly letters = new LocalDeadLetters();
  readonly #maxPayload: number;
  readonly #subscribers = new Set<Subscriber>();
  /** Round-robin position of each shared group. */
  readonly #turns = new Map<string, number>();
  readonly #seen = new Map<string, EventPublishAck>();
  #sequence = 0;

  constructor(maxPayload: number) {
    this.#maxPayload = maxPayload;
  }

  async subscribe(owner: SubscriptionOwner, sub: ResolvedSubscription, deliver: (event: InboundEvent) => Promise<void>): Promise<EventSubscription> {
    const subscriber = new Subscriber(this, owner, sub, deliver);
    this.#subscribers.add(subscriber);
    const stop = async (): Promise<void> => {
      subscriber.stopped = true;
      this.#subscribers.delete(subscriber);
      // Events of a durable group waiting here go to its other members.
      if (sub.stream !== undefined && subscriber.group !== undefined) for (const event of subscriber.takeQueued()) this.redeliver(subscriber, event);
      await subscriber.idle();
    };
    return { stop, remove: stop };
  }

  async publish(subject: string, data: Uint8Array, options: EventPublishOptions = {}): Promise<EventPublishAck | undefined> {
    if (data.byteLength > this.#maxPayload) {
      throw new PayloadTooLargeError(`Event on ${subject} is ${data.byteLength} bytes; the exchange takes at most ${this.#maxPayload}`, {
        size: data.byteLength,
        limit: this.#maxPayload,
      });
    }
    if (options.durable === true && options.msgId !== undefined) {
      const seen = this.#seen.get(options.msgId);
      if (seen !== undefined) return { ...seen, duplicate: true };
    }
    const event: Pending = { subject, data, headers: options.headers ?? {}, sequence: ++this.#sequence, time: new Date(), deliveries: 0 };
    const groups = new Map<string, Subscriber[]>();
    const keyOf = new Map<string, string | undefined>();
    for (const subscriber of this.#subscribers) {
      if (!subjectMatches(subscriber.subject, subject)) continue;
      const { sub, owner } = subscriber;
      if (owner.key !== undefined && keyedByField(sub)) {
        // Keyed by a payload field: only the key's agent gets it.
        const cacheKey = `${sub.codec}:${sub.key.field}`;
        if (!keyOf.has(cacheKey)) {
          let key: string | undefined;
          try {
            key = payloadKey(decodeEvent(sub.codec, data, subject), sub.key.field);
          } catch {
            key = undefined;
          }
          keyOf.set(cacheKey, key);
        }
        if (keyOf.get(cacheKey) !== owner.key) continue;
      }
      const group = subscriber.group;
      if (group === undefined) subscriber.push({ ...event });
      else groups.set(group, [...(groups.get(group) ?? []), subscriber]);
    }
    for (const [group, members] of groups) this.#turn(group, members).push({ ...event });
    if (options.durable !== true) return undefined;
    const ack: EventPublishAck = { stream: LOCAL_STREAM, sequence: event.sequence, duplicate: false };
    if (options.msgId !== undefined) {
      this.#seen.set(options.msgId, ack);
      if (this.#seen.size > DEDUPE_ENTRIES) this.#seen.delete(this.#seen.keys().next().value!);
    }
    return ack;
  }

  /** Deliver a handed-back event again: to its group's next member, or to its subscriber. */
  redeliver(from: Subscriber, event: Pending): void {
    const group = from.group;
    if (group === undefined) {
      if (!from.stopped) from.push(event);
      return;
    }
    const members = [...this.#subscribers].filter((s) => s.group === group);
    if (members.length > 0) this.#turn(group, members).push(event);
  }

  #turn(group: string, members: Subscriber[]): Subscriber {
    const turn = this.#turns.get(group) ?? 0;
    this.#turns.set(group, turn + 1);
    return members[turn % members.length]!;
  }
}

/** The dead letters of the in-process exchange: events set aside, in memory. */
export class LocalDeadLetters implements DeadLetterStore {
  readonly #letters = new Map<number, DeadLetter>();
  #next = 1;

  add(owner: SubscriptionOwner, event: { subject: string; data: Uint8Array; headers: MessageHeaders; sequence: number }, error: Error): void {
    const id = this.#next++;
    this.#letters.set(id, {
      id,
      kind: DeadLetterKind.Event,
      agent: owner.agentId,
      handler: owner.handler,
      time: new Date(),
      reason: (error as { code?: string }).code ?? error.name,
      error: error.message,
      originalSubject: event.subject,
      headers: { ...event.headers, "Academy-Event-Handler": owner.handler, "Academy-Event-Agent-Type": owner.agentType },
      data: event.data,
    });
  }

  async list(filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
    const found: DeadLetter[] = [];
    for (const letter of this.#letters.values()) {
      if (found.length >= (filter.limit ?? Number.POSITIVE_INFINITY)) break;
      if (filter.kind !== undefined && filter.kind !== letter.kind) continue;
      if (filter.mailbox !== undefined || filter.pool !== undefined) continue;
      if (filter.reason !== undefined && filter.reason !== letter.reason) continue;
      if (filter.after !== undefined && letter.id <= filter.after) continue;
      if (filter.since !== undefined && letter.time < filter.since) continue;
      if (filter.before !== undefined && letter.time >= filter.before) continue;
      found.push(letter);
    }
    return found;
  }

  async get(id: number): Promise<DeadLetter | undefined> {
    return this.#letters.get(id);
  }

  async replay(id: number): Promise<ReplayResult> {
    if (!this.#letters.has(id)) return { replayed: false, refusal: ReplayRefusal.Missing, detail: `no dead letter ${id}` };
    return { replayed: false, refusal: ReplayRefusal.Event, detail: `dead letter ${id} is an event: publish it again where wanted` };
  }

  async remove(id: number): Promise<boolean> {
    return this.#letters.delete(id);
  }
}

/**
 * The events contract: what an exchange offers the engine so that agents subscribe to subjects
 * and streams and publish events (docs/EVENTS.md). The NATS exchange implements it with core
 * subscriptions and JetStream consumers (`nats/nats-events.ts`), the in-process exchange as an
 * in-memory publish/subscribe (`local/local-events.ts`). The engine never sees NATS: it gets
 * {@link InboundEvent}s and answers each with ack, nak or a dead letter.
 */
import type { ResolvedSubscription } from "../agent/subscriptions.ts";
import type { MessageHeaders } from "../protocol/headers.ts";

/** One event delivered to a subscription. Exactly one of `ack`, `nak`, `deadLetter` settles it. */
export interface InboundEvent {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MessageHeaders;
  /** Durable: the stream and sequence (the event's identity); undefined for core events. */
  readonly stream: string | undefined;
  readonly sequence: number | undefined;
  /** When it was stored (durable) or received (core). */
  readonly time: Date;
  /** Deliveries of this event so far, this one included (1 for core events). */
  readonly deliveryCount: number;
  /**
   * Whether a handler may have completed this event before (a redelivery, or an event re-read after
   * the subscription's last reader stopped holding it): effectively-once handling looks its record
   * up only then.
   */
  readonly maybeHandled: boolean;
  /** Handled: remove it from the subscription (a no-op for core events). */
  ack(): void;
  /** Not handled: deliver it again later (durable; core events are dropped). */
  nak(delayMs?: number): void;
  /** Still being handled: keep it from being delivered again (durable). */
  working(): void;
  /**
   * Set it aside with the reason, where operators find dead letters (`academy dlq`), then remove
   * it from the subscription.
   */
  deadLetter(error: Error): Promise<void>;
}

/** Who owns a subscription: the agent, its type, and the handler. */
export interface SubscriptionOwner {
  readonly agentId: string;
  readonly agentType: string;
  readonly handler: string;
  /** Keyed agents: their key (the subscription reads only the key's subject). */
  readonly key?: string | undefined;
}

/** A subscription being delivered. */
export interface EventSubscription {
  /**
   * Stop delivering. Events fetched but not handled go back to the subscription (durable), so the
   * next run of the agent gets them. Idempotent.
   */
  stop(): Promise<void>;
  /**
   * Stop, and remove what keeps the subscription's position (the agent's durable consumer), for an
   * agent terminated for good. Shared subscriptions keep theirs: other agents of the type use it.
   */
  remove(): Promise<void>;
}

/** Options of {@link EventBus.publish}. */
export interface EventPublishOptions {
  /**
   * Store the event in the JetStream stream that captures the subject and wait for its
   * acknowledgement; else a core publish (at-most-once).
   * @defaultValue false
   */
  readonly durable?: boolean;
  /** Durable: the `Nats-Msg-Id`, so that publishing the same id again within the stream's duplicate window stores it once. */
  readonly msgId?: string;
  /** NATS headers of the event. */
  readonly headers?: MessageHeaders;
}

/** What a durable publish returns. */
export interface EventPublishAck {
  readonly stream: string;
  readonly sequence: number;
  /** The message id was seen within the duplicate window: not stored again. */
  readonly duplicate: boolean;
}

/** A keyed route: events of a subscription whose key has no running agent yet are announced here. */
export interface KeyedRoute {
  /** The agent type whose keyed subscription this is. */
  readonly agentType: string;
  readonly handler: string;
  readonly subscription: ResolvedSubscription;
}

/** A router's view of one keyed route's events: the key of each, in stream order. */
export interface RouteSession {
  /** Stop reading (what was not acknowledged goes to another router). Idempotent. */
  stop(): Promise<void>;
}

/** The events of one exchange. */
export interface EventBus {
  /**
   * Start delivering the events of a subscription to `deliver`, one at a time in order: the next
   * event waits until `deliver`'s promise settles (it must not reject: it settles the event).
   * @throws {InvalidConfigError} when the subscription cannot be set up (a durable one's stream
   *   does not exist, or does not capture the subject).
   */
  subscribe(owner: SubscriptionOwner, subscription: ResolvedSubscription, deliver: (event: InboundEvent) => Promise<void>): Promise<EventSubscription>;
  /**
   * Publish an event (bytes already encoded).
   * @returns the stream's acknowledgement for a durable publish; undefined for a core one.
   * @throws {PayloadTooLargeError} beyond the exchange's largest message.
   * @throws {ExchangeUnavailableError} when a durable publish is not acknowledged within the retry window.
   */
  publish(subject: string, data: Uint8Array, options?: EventPublishOptions): Promise<EventPublishAck | undefined>;
  /**
   * Keyed routing: read the events of `route`'s subscription (a reader shared by every router of
   * the route, so each event is read by one router) and call `onKey` with the key of each; the
   * event is acknowledged when the promise resolves, read again (by any router) when it rejects.
   * Optional: an exchange without it cannot route (the in-process one routes as it publishes).
   */
  route?(route: KeyedRoute, onKey: (key: string, subject: string) => Promise<void>): Promise<RouteSession>;
}

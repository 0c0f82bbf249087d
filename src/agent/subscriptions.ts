/**
 * Event subscriptions of agents: the `@subscribe` decorator, its options resolved once into a
 * complete form, the context a handler receives, and the ids of keyed agents. The engine starts
 * the subscriptions after startup and stops them at shutdown; the exchange supplies the events
 * (docs/EVENTS.md).
 */
import { createHash } from "node:crypto";
import { AgentDefinitionError } from "../errors.ts";
import { AgentId } from "../identifiers.ts";
import { EventCodec } from "../protocol/event-codec.ts";
import type { MessageHeaders } from "../protocol/headers.ts";
import { assertStandardDecorator, installSubscriptionResolver, recordMember } from "./decorators.ts";
import type { AgentMethodDecorator, SubscriptionSpec } from "./decorators.ts";

export { EventCodec } from "../protocol/event-codec.ts";


/** Who gets an event among the agents of one type. */
export const SubscriptionGroup = {
  /** Every agent gets every event (a consumer per agent). */
  Each: "each",
  /** Each event goes to one agent of the type, on any host (one consumer the agents share). */
  Shared: "shared",
} as const;
export type SubscriptionGroup = (typeof SubscriptionGroup)[keyof typeof SubscriptionGroup];

/**
 * Where a durable subscription starts the first time (afterwards it resumes where it left off):
 * `"new"` (events published from now on), `"all"` (everything in the stream), a stream sequence,
 * or a time.
 */
export type StartPosition = "new" | "all" | { readonly sequence: number } | { readonly time: Date };

/**
 * How keyed routing finds an event's agent: the subject token at a (0-based) position, or a field of
 * the payload.
 */
export type EventKey =
  | {
      /** Position of the key in the subject (`sensors.*.readings`: 1). The subject has `*` there. */
      readonly token: number;
    }
  | {
      /**
       * Top-level field of the (JSON or CBOR) payload holding the key, text or a number
       * (`{"account": "a7", ...}`: `"account"`). The routers copy each event to its key's subject
       * in the exchange's keyed stream, in stream order (docs/EVENTS.md 5).
       */
      readonly field: string;
    };

/** Options of {@link subscribe}. */
export interface SubscribeOptions {
  /**
   * JetStream stream the subject is stored in: the subscription is durable (at-least-once, acked
   * after the handler returns, resumes across restarts). Without it, a core NATS subscription
   * (at-most-once).
   * @defaultValue none (core)
   */
  readonly stream?: string;
  /**
   * `"each"`: every agent of the type gets every event; `"shared"`: each event goes to one of them.
   * @defaultValue "each"
   */
  readonly group?: SubscriptionGroup;
  /**
   * Core subscriptions: a NATS queue group, so that each event goes to one subscriber of the
   * group (any process, this library's or not). A `"shared"` core subscription without one uses
   * a queue group named after the agent type and handler.
   * @defaultValue none
   */
  readonly queue?: string;
  /**
   * Where a new durable subscription starts.
   * @defaultValue "new" (keyed subscriptions: "all")
   */
  readonly start?: StartPosition;
  /** @defaultValue "json" */
  readonly codec?: EventCodec;
  /**
   * Runs of the handler for one event before it is dead-lettered with the handler's error.
   * @defaultValue 5
   */
  readonly maxDeliveries?: number;
  /**
   * Wait before the first retry of a failed handler, in ms; doubled for each further retry (at most 30 s).
   * @defaultValue 100
   */
  readonly backoffMs?: number;
  /**
   * Largest event accepted, in bytes; larger ones are dead-lettered with `PayloadTooLargeError`.
   * @defaultValue no limit but the server's
   */
  readonly maxBytes?: number;
  /**
   * Durable subscriptions: how long the server waits for an ack before delivering an event again
   * (events being handled are kept alive), in ms.
   * @defaultValue 30_000
   */
  readonly ackWaitMs?: number;
  /**
   * Durable subscriptions: events fetched ahead of the handler.
   * @defaultValue 64
   */
  readonly prefetch?: number;
  /**
   * Keyed routing: each key has its own agent of this type, named by the key, launched on demand
   * on `pool` by the runtime hosts of that pool the first time an event of the key arrives. Needs
   * a `stream`; the agent receives the events of its key only, in stream order.
   */
  readonly key?: EventKey;
  /**
   * Keyed routing: the host pool the agents are launched on.
   * @defaultValue "default"
   */
  readonly pool?: string;
  /**
   * Effectively-once handling of durable events, on an exchange with result records (its
   * `resultWindowMs`, docs/PROTOCOL.md 10.10): a record keyed by stream and sequence is written
   * when the handler completes, before the ack, so that a redelivery of a completed event (after a
   * crash, a failover) is acknowledged without running the handler again. `false`: at-least-once,
   * one KV write fewer per event.
   * @defaultValue true
   */
  readonly once?: boolean;
}

/** The options of a subscription, complete and checked. */
export interface ResolvedSubscription {
  readonly subject: string;
  readonly stream: string | undefined;
  readonly group: SubscriptionGroup;
  readonly queue: string | undefined;
  readonly start: StartPosition;
  readonly codec: EventCodec;
  readonly maxDeliveries: number;
  readonly backoffMs: number;
  readonly maxBytes: number | undefined;
  readonly ackWaitMs: number;
  readonly prefetch: number;
  readonly key: EventKey | undefined;
  readonly pool: string;
  readonly once: boolean;
}

/** What an event handler receives besides the decoded payload. */
export interface EventContext {
  /** The subject the event was published on. */
  readonly subject: string;
  /** The event's NATS headers (empty when it had none). */
  readonly headers: MessageHeaders;
  /** Durable subscriptions: the stream and the event's sequence in it. */
  readonly stream: string | undefined;
  readonly sequence: number | undefined;
  /** When the event was stored (durable), or received (core). */
  readonly time: Date;
  /** 1 on the first run of the handler for this event, more on retries and redeliveries. */
  readonly deliveryCount: number;
  /** Aborts when the agent shuts down. */
  readonly signal: AbortSignal;
  /** The payload's bytes as received. */
  readonly data: Uint8Array;
  /** Keyed subscriptions: the key (the agent's name). */
  readonly key: string | undefined;
}

const SUBJECT_TOKEN = /^[^\s.*>]+$/;

function positiveInteger(value: unknown, option: string, handler: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new AgentDefinitionError(`@subscribe '${handler}': ${option} must be a positive integer (got ${String(value)})`);
  }
  return value;
}

/**
 * Check and complete the options of a subscription.
 * @throws {AgentDefinitionError} for a bad subject or option.
 */
export function resolveSubscription(subject: string, options: SubscribeOptions, handler: string): ResolvedSubscription {
  const fail = (why: string): never => {
    throw new AgentDefinitionError(`@subscribe '${handler}': ${why}`);
  };
  if (typeof subject !== "string" || subject.length === 0) fail("the subject must be non-empty text");
  const tokens = subject.split(".");
  for (const [i, token] of tokens.entries()) {
    if (token === "*" || (token === ">" && i === tokens.length - 1)) continue;
    if (!SUBJECT_TOKEN.test(token)) fail(`invalid subject ${JSON.stringify(subject)}`);
  }
  const { stream, group = SubscriptionGroup.Each, queue, codec = EventCodec.Json, key, pool = "default" } = options;
  if (stream !== undefined && (typeof stream !== "string" || !/^[A-Za-z0-9_-]+$/.test(stream))) fail(`invalid stream name ${JSON.stringify(stream)}`);
  if (group !== SubscriptionGroup.Each && group !== SubscriptionGroup.Shared) fail(`group must be "each" or "shared" (got ${String(group)})`);
  if (queue !== undefined) {
    if (stream !== undefined) fail("queue applies to core subscriptions (without stream); use group: \"shared\" for a durable one");
    if (typeof queue !== "string" || !SUBJECT_TOKEN.test(queue)) fail(`invalid queue group ${JSON.stringify(queue)}`);
  }
  if (!Object.values(EventCodec).includes(codec)) fail(`codec must be "json", "cbor" or "raw" (got ${String(codec)})`);
  if (key !== undefined) {
    if (stream === undefined) fail("keyed routing (key) needs a stream");
    if (group !== SubscriptionGroup.Each) fail("keyed routing gives each key its own agent: group must be \"each\"");
    if (typeof key === "object" && key !== null && "field" in key) {
      if (typeof key.field !== "string" || !/^[^\s]{1,128}$/.test(key.field)) fail(`key.field must be the name of a payload field (got ${JSON.stringify(key.field)})`);
      if (codec === EventCodec.Raw) fail("key.field reads the payload: the codec must be json or cbor");
    } else if (typeof key !== "object" || key === null || !Number.isInteger((key as { token?: unknown }).token) || (key as { token: number }).token < 0 || tokens[(key as { token: number }).token] !== "*") {
      fail(`key.token must be the position of a '*' in the subject ${JSON.stringify(subject)} (or key.field a payload field)`);
    }
    if (typeof pool !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(pool)) fail(`invalid pool name ${JSON.stringify(pool)}`);
  }
  const start = options.start ?? (key !== undefined ? "all" : "new");
  if (start !== "new" && start !== "all") {
    if (typeof start !== "object" || start === null) fail(`start must be "new", "all", { sequence } or { time } (got ${String(start)})`);
    if ("sequence" in start) positiveInteger(start.sequence, "start.sequence", handler);
    else if (!("time" in start) || !(start.time instanceof Date) || Number.isNaN(start.time.getTime())) fail("start.time must be a valid Date");
  }
  if (options.once !== undefined && typeof options.once !== "boolean") fail(`once must be a boolean (got ${String(options.once)})`);
  const maxBytes = options.maxBytes === undefined ? undefined : positiveInteger(options.maxBytes, "maxBytes", handler);
  return Object.freeze({
    subject,
    stream,
    group,
    queue,
    start,
    codec,
    maxDeliveries: positiveInteger(options.maxDeliveries ?? 5, "maxDeliveries", handler),
    backoffMs: positiveInteger(options.backoffMs ?? 100, "backoffMs", handler),
    maxBytes,
    ackWaitMs: positiveInteger(options.ackWaitMs ?? 30_000, "ackWaitMs", handler),
    prefetch: positiveInteger(options.prefetch ?? 64, "prefetch", handler),
    key,
    pool,
    once: options.once !== false,
  });
}

installSubscriptionResolver(resolveSubscription);

/**
 * Declare an event handler: the method runs for each event published on `subject` (NATS wildcards
 * allowed), with the decoded payload and an {@link EventContext}. A throw is retried with
 * backoff, then the event is dead-lettered with the error; an event that cannot be decoded is
 * dead-lettered with `MalformedMessageError` at once. The agent keeps serving either way.
 *
 * ```ts
 * @subscribe("orders.>", { stream: "ORDERS", group: "shared" })
 * async onOrder(order: Order, ctx: EventContext) { ... }
 * ```
 * @throws {AgentDefinitionError} when the class is defined, for a method that is not async or bad options.
 */
export function subscribe(subject: string, options: SubscribeOptions = {}): AgentMethodDecorator {
  return function (method: (this: unknown, ...args: never[]) => Promise<unknown>, context: unknown) {
    assertStandardDecorator(context);
    const name = String(context.name);
    const spec: SubscriptionSpec = { kind: "subscription", name, method, subscription: resolveSubscription(subject, options, name) };
    recordMember(context, spec);
    return method;
  } as AgentMethodDecorator;
}

/** Whether a keyed subscription takes its key from a payload field (else from a subject token). */
export function keyedByField(subscription: Pick<ResolvedSubscription, "key">): subscription is { key: { readonly field: string } } {
  return subscription.key !== undefined && "field" in subscription.key;
}

/**
 * The subject a keyed agent subscribes to (keys from a subject token): the pattern with its key in
 * the key's token.
 */
export function keyedSubject(subscription: Pick<ResolvedSubscription, "subject" | "key">, key: string): string {
  const tokens = subscription.subject.split(".");
  tokens[(subscription.key as { token: number }).token] = key;
  return tokens.join(".");
}

/**
 * The key of an event on a keyed subscription (keys from a subject token), or undefined when the
 * subject does not have one there.
 */
export function eventKey(subscription: Pick<ResolvedSubscription, "key">, subject: string): string | undefined {
  const token = subject.split(".")[(subscription.key as { token: number }).token];
  return token === undefined || token.length === 0 ? undefined : token;
}

/**
 * The key in a decoded payload's field: text, or a finite number written in decimal; undefined
 * when the payload is not an object, lacks the field, or its value cannot be a key (a subject
 * token of at most 256 characters).
 */
export function payloadKey(payload: unknown, field: string): string | undefined {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return undefined;
  const value = (payload as Record<string, unknown>)[field];
  const key = typeof value === "string" ? value : typeof value === "number" && Number.isFinite(value) ? String(value) : undefined;
  return key !== undefined && SUBJECT_TOKEN.test(key) && key.length <= 256 ? key : undefined;
}

/**
 * The id of the agent of type `typeName` that keyed routing runs for `key`: the same uid wherever
 * it is computed (derived from the type and key), named by the key, so that a handle made from it
 * reaches the agent routing launched, and two routers racing register it once.
 * @throws {AgentDefinitionError} for a key that cannot be a subject token.
 */
export function keyedAgentId(typeName: string, key: string, site?: string): AgentId {
  if (typeof key !== "string" || !SUBJECT_TOKEN.test(key) || key.length > 256) {
    throw new AgentDefinitionError(`Invalid event key ${JSON.stringify(key)}: keys are subject tokens (no '.', '*', '>' or spaces)`);
  }
  const hash = createHash("sha256").update(`academy-keyed\u0000${typeName}\u0000${key}`).digest("hex");
  // UUID layout, version 8 (custom), RFC 4122 variant.
  const variant = ((Number.parseInt(hash[16]!, 16) & 0x3) | 0x8).toString(16);
  const uid = `${hash.slice(0, 8)}-${hash.slice(8, 12)}-8${hash.slice(13, 16)}-${variant}${hash.slice(17, 20)}-${hash.slice(20, 32)}`;
  return new AgentId(uid, key, site);
}

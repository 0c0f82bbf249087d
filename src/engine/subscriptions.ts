/**
 * Running an agent's event subscriptions (`@subscribe`): started once startup completed, stopped
 * at shutdown like loops. Each event is decoded, its handler run through the agent's `event`
 * interceptors, retried with backoff when it throws, and dead-lettered once its deliveries are
 * used up; an event that cannot be decoded or is too large is dead-lettered at once. The agent
 * keeps serving whatever a handler or a payload does.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Agent } from "../agent/agent.ts";
import type { SubscriptionSpec } from "../agent/decorators.ts";
import { keyedAgentId } from "../agent/subscriptions.ts";
import type { EventContext } from "../agent/subscriptions.ts";
import { AgentDefinitionError, DeliveryLimitError, InvalidConfigError, PayloadTooLargeError } from "../errors.ts";
import type { EventBus, EventSubscription, InboundEvent } from "../exchange/events.ts";
import type { ResultStore } from "../exchange/result-store.ts";
import { MessageType } from "../protocol/messages.ts";
import type { ActionRequest } from "../protocol/messages.ts";
import { NO_HANDLES, Watermark, eventRecord, safeToken } from "./event-records.ts";
import type { AgentId } from "../identifiers.ts";
import type { EventInput } from "../interceptors/agent-interceptor.ts";
import { decodeEvent } from "../protocol/event-codec.ts";
import { backoffDelayMs } from "../util/backoff.ts";
import type { Logger } from "../util/logger.ts";

/** Longest wait between two runs of a failing event handler, in ms. */
const HANDLER_RETRY_MAX_MS = 30_000;
/** Records of completed events being written at once per subscription (the handler goes on meanwhile). */
const RECORDS_IN_FLIGHT = 256;

/** Counts of one subscription's events (part of the agent's statistics). */
export interface SubscriptionStats {
  readonly handler: string;
  readonly subject: string;
  /** Events whose handler returned. */
  handled: number;
  /** Runs of the handler that threw (each retry counts). */
  failed: number;
  /** Events set aside: undecodable, too large, or failing past their deliveries. */
  deadLettered: number;
  /** Redelivered events whose handler had completed (effectively-once): acknowledged without running it. */
  duplicates: number;
}

/** What runs one event's handler: the agent's `event` interceptor chain around the method. */
export type RunEventHandler = (input: EventInput) => Promise<void>;

interface Running {
  readonly spec: SubscriptionSpec;
  readonly stats: SubscriptionStats;
  subscription: EventSubscription | undefined;
  /** Settles when the event being handled (if any) is settled. */
  current: Promise<void>;
  /** Records of completed events being written; each acks its event once written. */
  readonly records: Set<Promise<void>>;
  /** Where completed events are recorded (durable subscriptions with `once`, on an exchange with results). */
  results: ResultStore | undefined;
  /** Whose records they are: the agent, or for a shared group the group (its records are the group's). */
  scope: string;
  /** An agent's own (`each`) durable subscription with records: events complete in order, so one record says how far. */
  watermark: Watermark | undefined;
  /** The event whose handler is running: kept from redelivery by the subscription's keep-alive timer. */
  working: InboundEvent | undefined;
  /** Tells the server every third of the ack wait that `working` is still being handled (one timer per subscription, not per event). */
  keepAlive: NodeJS.Timeout | undefined;
}

/** The subscriptions of one running agent. */
export class AgentSubscriptions {
  readonly #specs: readonly SubscriptionSpec[];
  readonly #agentId: AgentId;
  readonly #agentType: string;
  readonly #logger: Logger;
  readonly #signal: AbortSignal;
  readonly #run: RunEventHandler;
  #running: Running[] = [];

  constructor(options: {
    specs: readonly SubscriptionSpec[];
    agentId: AgentId;
    agentType: string;
    logger: Logger;
    /** Aborts at shutdown. */
    signal: AbortSignal;
    run: RunEventHandler;
  }) {
    this.#specs = options.specs;
    this.#agentId = options.agentId;
    this.#agentType = options.agentType;
    this.#logger = options.logger;
    this.#signal = options.signal;
    this.#run = options.run;
  }

  /** Whether the agent declares any subscription. */
  get declared(): boolean {
    return this.#specs.length > 0;
  }

  /** Counts per subscription. */
  stats(): SubscriptionStats[] {
    return this.#running.map((r) => ({ ...r.stats }));
  }

  /**
   * Subscribe every handler (durable consumers are created or resumed).
   * @throws {InvalidConfigError} when the exchange offers no events, or a subscription cannot be set up.
   * @throws {AgentDefinitionError} for a keyed subscription on an agent that is not its key's agent.
   */
  async start(bus: EventBus | undefined, results?: ResultStore): Promise<void> {
    if (this.#specs.length === 0) return;
    if (bus === undefined) {
      throw new InvalidConfigError(
        `Agent type ${this.#agentType} subscribes to events, but its exchange offers none (ExchangeFactory.events): run it on the NATS or in-process exchange, outside worker threads of the in-process one`,
        { option: "exchange" },
      );
    }
    for (const spec of this.#specs) {
      const key = spec.subscription.key === undefined ? undefined : this.#keyOf(spec);
      const sub = spec.subscription;
      const running: Running = {
        spec,
        stats: { handler: spec.name, subject: sub.subject, handled: 0, failed: 0, deadLettered: 0, duplicates: 0 },
        subscription: undefined,
        current: Promise.resolve(),
        records: new Set(),
        results: sub.once && sub.stream !== undefined ? results : undefined,
        scope: sub.group === "shared" ? `evs-${safeToken(this.#agentType)}-${safeToken(spec.name)}` : this.#agentId.uid,
        watermark: undefined,
        working: undefined,
        keepAlive: undefined,
      };
      if (sub.stream !== undefined) {
        running.keepAlive = setInterval(() => running.working?.working(), Math.max(500, Math.floor(sub.ackWaitMs / 3)));
        running.keepAlive.unref();
      }
      if (running.results !== undefined && sub.group !== "shared") {
        running.watermark = new Watermark(running.results, running.scope, spec.name, sub.stream!, this.#logger);
      }
      this.#running.push(running);
      const owner = { agentId: this.#agentId.uid, agentType: this.#agentType, handler: spec.name, key };
      running.subscription = await bus.subscribe(owner, spec.subscription, (event) => {
        const handled = this.#handle(running, event, key);
        running.current = handled;
        return handled;
      });
    }
  }

  /** The key of a keyed agent: its name, when its id is the key's agent id. */
  #keyOf(spec: SubscriptionSpec): string {
    const key = this.#agentId.name;
    if (key === undefined || keyedAgentId(this.#agentType, key).uid !== this.#agentId.uid) {
      throw new AgentDefinitionError(
        `Handler '${spec.name}' of ${this.#agentType} is keyed: the agent must be its key's agent (launched by keyed routing, or with the registration of keyedAgentId(type, key))`,
      );
    }
    return key;
  }

  /** The events being handled now (and the records of completed ones), for the engine to wait on at shutdown. */
  inFlight(): Array<{ done: Promise<void> }> {
    return this.#running.map((r) => ({ done: Promise.all([r.current, ...r.records, r.watermark?.idle()]).then(() => undefined) }));
  }

  /** Stop every subscription (events fetched but not handled are delivered again later). */
  async stop(): Promise<void> {
    await Promise.all(
      this.#running.map(async (r) => {
        await r.subscription?.stop().catch((error: unknown) => this.#logger.warn({ err: error, handler: r.spec.name }, "could not stop subscription"));
        // Only now: the event being handled is kept alive until its handler returns.
        clearInterval(r.keepAlive);
      }),
    );
  }

  /** Stop and remove the agent's durable subscriptions (the agent is terminated). */
  async remove(): Promise<void> {
    await Promise.all(
      this.#running.map((r) => r.subscription?.remove().catch((error: unknown) => this.#logger.warn({ err: error, handler: r.spec.name }, "could not remove subscription"))),
    );
  }

  async #handle(running: Running, event: InboundEvent, key: string | undefined): Promise<void> {
    const { spec, stats } = running;
    const sub = spec.subscription;
    if (this.#signal.aborted) return event.nak();
    if (sub.maxBytes !== undefined && event.data.byteLength > sub.maxBytes) {
      const error = new PayloadTooLargeError(`Event on ${event.subject} is ${event.data.byteLength} bytes; handler '${spec.name}' takes at most ${sub.maxBytes}`, {
        size: event.data.byteLength,
        limit: sub.maxBytes,
      });
      return this.#deadLetter(running, event, error);
    }
    const { watermark } = running;
    if (watermark !== undefined && event.sequence !== undefined && event.maybeHandled) {
      // In order: the next events wait until this one is known to be handled or not.
      const covered = await this.#retrying(running, "read how far events were handled", () => watermark.covers(event.sequence!));
      if (covered === undefined) return event.nak();
      if (covered) {
        stats.duplicates++;
        return event.ack();
      }
    }
    const record = watermark !== undefined || running.results === undefined || event.sequence === undefined ? undefined : eventRecord(running.scope, spec.name, event);
    if (record !== undefined && event.maybeHandled) {
      try {
        if ((await running.results!.lookup(running.scope, record, NO_HANDLES)) !== undefined) {
          stats.duplicates++;
          return event.ack();
        }
      } catch (error) {
        // Cannot tell whether it ran: hand it back.
        this.#logger.warn({ err: error, handler: spec.name, event: describe(event) }, "could not read the record of a redelivered event; delivering it again later");
        return event.nak(1_000);
      }
    }
    let payload: unknown;
    try {
      payload = decodeEvent(sub.codec, event.data, event.subject);
    } catch (error) {
      return this.#deadLetter(running, event, error as Error);
    }
    for (let attempt = 0; ; attempt++) {
      const deliveryCount = event.deliveryCount + attempt;
      if (deliveryCount > sub.maxDeliveries) {
        const error = new DeliveryLimitError(`Event ${describe(event)} was delivered ${deliveryCount} times; handler '${spec.name}' allows ${sub.maxDeliveries}`, {
          deliveries: deliveryCount,
        });
        return this.#deadLetter(running, event, error);
      }
      const context: EventContext = {
        subject: event.subject,
        headers: event.headers,
        stream: event.stream,
        sequence: event.sequence,
        time: event.time,
        deliveryCount,
        signal: this.#signal,
        data: event.data,
        key,
      };
      running.working = event;
      try {
        await this.#run({
          agentId: this.#agentId.uid,
          agentType: this.#agentType,
          handler: spec.name,
          // The subscription's subject (its pattern), not the event's: metrics label by it.
          event: sub.subject,
          headers: event.headers,
          payload,
          context,
        });
        stats.handled++;
        if (watermark !== undefined && event.sequence !== undefined) return watermark.complete(event);
        if (record === undefined) return event.ack();
        return this.#record(running, event, record);
      } catch (thrown) {
        stats.failed++;
        const error = thrown instanceof Error ? thrown : new Error(String(thrown));
        if (this.#signal.aborted) return event.nak();
        if (deliveryCount >= sub.maxDeliveries) return this.#deadLetter(running, event, error);
        const delayMs = backoffDelayMs({ initialMs: sub.backoffMs, maxMs: HANDLER_RETRY_MAX_MS }, attempt);
        this.#logger.warn({ err: error, handler: spec.name, event: describe(event), deliveryCount, delayMs }, "event handler failed; retrying");
        try {
          await sleep(delayMs, undefined, { signal: this.#signal });
        } catch {
          return event.nak();
        }
      } finally {
        running.working = undefined;
      }
    }
  }

  /**
   * Record a completed event, then acknowledge it; the next event does not wait for the record
   * (at most {@link RECORDS_IN_FLIGHT} at once). A record that cannot be written hands the event
   * back: it runs again (at-least-once), as it would without records.
   */
  async #record(running: Running, event: InboundEvent, record: ActionRequest): Promise<void> {
    const written = running.results!.record(running.scope, record, { type: MessageType.SuccessResponse }).then(
      () => event.ack(),
      (error: unknown) => {
        this.#logger.warn({ err: error, handler: running.spec.name, event: describe(event) }, "could not record a completed event; it may run again");
        event.nak(1_000);
      },
    );
    running.records.add(written);
    void written.finally(() => running.records.delete(written));
    while (running.records.size >= RECORDS_IN_FLIGHT) await Promise.race(running.records);
  }

  /**
   * Run `op` until it succeeds, waiting between tries, or the agent shuts down (then undefined):
   * for what an in-order subscription cannot skip.
   */
  async #retrying<T>(running: Running, what: string, op: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (error) {
        const delayMs = backoffDelayMs({ initialMs: 250, maxMs: 5_000 }, attempt);
        this.#logger.warn({ err: error, handler: running.spec.name, delayMs }, `could not ${what}; trying again`);
        try {
          await sleep(delayMs, undefined, { signal: this.#signal });
        } catch {
          return undefined;
        }
      }
    }
  }

  async #deadLetter(running: Running, event: InboundEvent, error: Error): Promise<void> {
    this.#logger.warn({ err: error, handler: running.spec.name, event: describe(event) }, "event dead-lettered");
    const sub = running.spec.subscription;
    if (running.watermark !== undefined || (sub.stream !== undefined && sub.group !== "shared")) {
      // In order: the next event waits until this one is set aside (and a later event's record
      // must not cover it before).
      const stored = await this.#retrying(running, "dead-letter an event", async () => {
        await event.deadLetter(error);
        return true;
      });
      if (stored === undefined) return event.nak();
      running.stats.deadLettered++;
      return;
    }
    try {
      await event.deadLetter(error);
      running.stats.deadLettered++;
    } catch (storeError) {
      // Not lost: it comes back once the dead letter can be written.
      this.#logger.error({ err: storeError, handler: running.spec.name, event: describe(event) }, "could not dead-letter event; delivering it again later");
      event.nak(1_000);
    }
  }
}

function describe(event: InboundEvent): string {
  return event.sequence === undefined ? event.subject : `${event.stream}#${event.sequence}`;
}

/** Call a subscription handler with the payload and context an `event` input carries (the end of the chain). */
export function callSubscriptionHandler(agent: Agent, input: EventInput): Promise<unknown> {
  const method = (agent as unknown as Record<string, (payload: unknown, context: unknown) => Promise<unknown>>)[input.handler]!;
  return method.call(agent, input.payload, input.context);
}

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
import type { AgentId } from "../identifiers.ts";
import type { EventInput } from "../interceptors/agent-interceptor.ts";
import { decodeEvent } from "../protocol/event-codec.ts";
import { backoffDelayMs } from "../util/backoff.ts";
import type { Logger } from "../util/logger.ts";

/** Longest wait between two runs of a failing event handler, in ms. */
const HANDLER_RETRY_MAX_MS = 30_000;

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
}

/** What runs one event's handler: the agent's `event` interceptor chain around the method. */
export type RunEventHandler = (input: EventInput) => Promise<void>;

interface Running {
  readonly spec: SubscriptionSpec;
  readonly stats: SubscriptionStats;
  subscription: EventSubscription | undefined;
  /** Settles when the event being handled (if any) is settled. */
  current: Promise<void>;
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
  async start(bus: EventBus | undefined): Promise<void> {
    if (this.#specs.length === 0) return;
    if (bus === undefined) {
      throw new InvalidConfigError(
        `Agent type ${this.#agentType} subscribes to events, but its exchange offers none (ExchangeFactory.events): run it on the NATS or in-process exchange, outside worker threads of the in-process one`,
        { option: "exchange" },
      );
    }
    for (const spec of this.#specs) {
      const key = spec.subscription.key === undefined ? undefined : this.#keyOf(spec);
      const running: Running = {
        spec,
        stats: { handler: spec.name, subject: spec.subscription.subject, handled: 0, failed: 0, deadLettered: 0 },
        subscription: undefined,
        current: Promise.resolve(),
      };
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

  /** The events being handled now, for the engine to wait on at shutdown. */
  inFlight(): Array<{ done: Promise<void> }> {
    return this.#running.map((r) => ({ done: r.current }));
  }

  /** Stop every subscription (events fetched but not handled are delivered again later). */
  async stop(): Promise<void> {
    await Promise.all(this.#running.map((r) => r.subscription?.stop().catch((error: unknown) => this.#logger.warn({ err: error, handler: r.spec.name }, "could not stop subscription"))));
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
      const keepAlive = setInterval(() => event.working(), Math.max(500, Math.floor(sub.ackWaitMs / 3)));
      try {
        await this.#run({
          agentId: this.#agentId.uid,
          agentType: this.#agentType,
          handler: spec.name,
          event: event.subject,
          headers: event.headers,
          payload,
          context,
        });
        stats.handled++;
        return event.ack();
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
        clearInterval(keepAlive);
      }
    }
  }

  async #deadLetter(running: Running, event: InboundEvent, error: Error): Promise<void> {
    this.#logger.warn({ err: error, handler: running.spec.name, event: describe(event) }, "event dead-lettered");
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

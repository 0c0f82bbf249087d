/**
 * Keyed routing in a runtime host (docs/EVENTS.md, *Keyed routing*): for every keyed subscription
 * (`@subscribe(subject, { key, pool })`) of the agent classes this host runs, whose pool is this
 * host's, the host reads the subscription's events through a consumer every router of the route
 * shares, and makes sure the key's agent exists: registered under the id derived from its type
 * and key (create-if-absent) and placed on the pool (compare-and-set on its placement), so that
 * with any number of routers racing each key gets one agent. The agent reads its key's events
 * itself, in stream order; a router only launches, so one killed loses nothing (its unacknowledged
 * events go to another router).
 */
import type { SubscriptionSpec } from "../src/agent/decorators.ts";
import { agentSpec } from "../src/agent/decorators.ts";
import { agentTypeInfo } from "../src/agent/agent-type.ts";
import type { AgentClass } from "../src/agent/agent-type.ts";
import { keyedAgentId } from "../src/agent/subscriptions.ts";
import { defaultRuntimeConfig } from "../src/agent/runtime-config.ts";
import type { EventBus, RouteSession } from "../src/exchange/events.ts";
import { MailboxStatus } from "../src/exchange/mailbox-status.ts";
import { isFinal, launch } from "../src/pool/placement.ts";
import { POOL_RECORD_VERSION } from "../src/pool/records.ts";
import type { LaunchRequest } from "../src/pool/records.ts";
import { transitionPlacement } from "../src/pool/transition-placement.ts";
import { encodeValue } from "../src/protocol/codec.ts";
import type { HostCore } from "./host-core.ts";

/** Keys remembered as having an agent (beyond it, the oldest are checked again on their next event). */
const KNOWN_KEYS = 100_000;
/** Runs of a keyed agent after a failure before it is given up (its mailbox then terminated). */
const KEYED_MAX_RETRIES = 3;
const KEYED_RETRY_BACKOFF_MS = 1_000;
const NO_ARGS = encodeValue([]);

/** One keyed subscription this host routes. */
interface Route {
  readonly cls: AgentClass;
  readonly spec: SubscriptionSpec;
}

/** The keyed routes of the classes a host runs, for its pool. */
export function keyedRoutes(classes: ReadonlyMap<string, AgentClass>, pool: string): Route[] {
  const routes: Route[] = [];
  for (const cls of classes.values()) {
    for (const spec of agentSpec(cls).subscriptions) {
      if (spec.subscription.key !== undefined && spec.subscription.pool === pool) routes.push({ cls, spec });
    }
  }
  return routes;
}

/** The routers of one host. */
export class HostRouting {
  readonly #core: HostCore;
  readonly #sessions: RouteSession[] = [];
  /** Uids known to have an agent placed (or given up): their events need no launch. */
  readonly #known = new Set<string>();
  /** Launches under way, by uid: an event of the same key waits for it. */
  readonly #launching = new Map<string, Promise<void>>();

  constructor(core: HostCore) {
    this.#core = core;
  }

  /**
   * Start routing every keyed subscription of the host's classes whose pool is the host's.
   * @throws {InvalidConfigError} when the exchange offers no keyed routes, or a route's stream does not exist.
   */
  async start(): Promise<void> {
    const { settings, factory, logger } = this.#core;
    const routes = keyedRoutes(settings.classes, settings.pool);
    if (routes.length === 0) return;
    const bus: EventBus | undefined = await factory.events?.();
    if (bus?.route === undefined) {
      logger.warn({ routes: routes.length }, "the exchange does not route keyed events: keyed agents are not launched on demand");
      return;
    }
    for (const { cls, spec } of routes) {
      const type = agentTypeInfo(cls);
      const session = await bus.route({ agentType: type.name, handler: spec.name, subscription: spec.subscription }, (key) => this.#ensure(cls, key));
      this.#sessions.push(session);
      logger.info({ agentType: type.name, handler: spec.name, subject: spec.subscription.subject, stream: spec.subscription.stream }, "routing keyed events");
    }
  }

  /** Stop routing (events not acknowledged go to the other routers). */
  async stop(): Promise<void> {
    await Promise.all(this.#sessions.splice(0).map((s) => s.stop().catch(() => undefined)));
  }

  /** Make sure the agent of `key` exists: registered and placed on the pool. */
  #ensure(cls: AgentClass, key: string): Promise<void> {
    const type = agentTypeInfo(cls);
    const agentId = keyedAgentId(type.name, key, this.#core.backend.site);
    if (this.#known.has(agentId.uid)) return Promise.resolve();
    let launching = this.#launching.get(agentId.uid);
    if (launching === undefined) {
      launching = this.#launch(cls, key).finally(() => this.#launching.delete(agentId.uid));
      this.#launching.set(agentId.uid, launching);
    }
    return launching;
  }

  async #launch(cls: AgentClass, key: string): Promise<void> {
    const { backend, settings, logger } = this.#core;
    const type = agentTypeInfo(cls);
    const agentId = keyedAgentId(type.name, key, backend.site);
    const status = await backend.mailboxStatus(agentId.uid);
    if (status === MailboxStatus.Terminated) {
      // The key's agent ended for good (terminated): its events are not routed again.
      logger.debug({ agentType: type.name, key }, "keyed agent is terminated; not launching it again");
      return this.#remember(agentId.uid);
    }
    if (status === MailboxStatus.Missing) await backend.registerAgentAs(agentId, type);
    const placement = await backend.getPlacement(settings.pool, agentId.uid);
    if (placement !== undefined && !isFinal(placement.value.state)) return this.#remember(agentId.uid);
    const request: LaunchRequest = {
      v: POOL_RECORD_VERSION,
      uid: agentId.uid,
      name: key,
      type: type.name,
      chain: type.chain,
      pool: settings.pool,
      gen: 0,
      attempt: 0,
      args: NO_ARGS,
      config: defaultRuntimeConfig,
      maxRetries: KEYED_MAX_RETRIES,
      retryBackoffMs: KEYED_RETRY_BACKOFF_MS,
      launchedAt: Date.now(),
    };
    const placed = await transitionPlacement(backend, settings.pool, agentId.uid, launch(request), { createFirst: placement === undefined });
    if (placed.ok) {
      await backend.publishLaunch(placed.placement);
      logger.info({ agentType: type.name, key, agentId: agentId.uid, gen: placed.placement.gen }, "launched keyed agent");
    }
    // Not placed: another router placed it first.
    this.#remember(agentId.uid);
  }

  #remember(uid: string): void {
    this.#known.add(uid);
    if (this.#known.size > KNOWN_KEYS) this.#known.delete(this.#known.values().next().value!);
  }
}

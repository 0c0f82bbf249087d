/**
 * Prometheus metrics of the actions and event handlers agents run, as agent-side interceptors
 * (`prom-client`): counts of actions handled and failed and a histogram of their durations, by
 * agent type and action; counts of event handler runs. Runtime hosts add them to every agent they
 * run and export them with their own metrics (`runtime/host-metrics.ts`); a program that runs
 * agents itself lists them on its factory:
 *
 * ```ts
 * const registry = new Registry();
 * const factory = new NatsExchangeFactory({ interceptors: { agent: [metricsInterceptors(registry).agent] } });
 * // serve `await registry.metrics()` (content type `registry.contentType`) where Prometheus scrapes
 * ```
 */
import { Counter, Histogram, register } from "prom-client";
import type { Registry } from "prom-client";
import type { ActionInput, ActionNext, AgentInterceptor, EventInput, EventNext } from "./agent-interceptor.ts";
import { errorTypeOf, outcomeOf } from "./tracing.ts";

/** Upper bounds of the action duration buckets, in seconds: 1 ms to 5 min. */
export const ACTION_DURATION_BUCKETS: readonly number[] = Object.freeze([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]);

/** The collectors of one registry (made once per registry, shared by every interceptor on it). */
interface Collectors {
  readonly handled: Counter<"agent_type" | "action">;
  readonly failed: Counter<"agent_type" | "action" | "error">;
  readonly duration: Histogram<"agent_type" | "action" | "outcome">;
  readonly events: Counter<"agent_type" | "event" | "outcome">;
}

const byRegistry = new WeakMap<Registry, Collectors>();

/** A collector of `registry` named `name`: the one registered already (by another interceptor), or a new one. */
function metric<M>(registry: Registry, name: string, make: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? make();
}

function collectorsOf(registry: Registry): Collectors {
  let found = byRegistry.get(registry);
  if (found === undefined) {
    const registers = [registry];
    found = {
      handled: metric(registry, "academy_actions_handled_total", () => new Counter({
        name: "academy_actions_handled_total",
        help: "Actions that ran to an end (a result or an error), by agent type and action",
        labelNames: ["agent_type", "action"] as const,
        registers,
      })),
      failed: metric(registry, "academy_actions_failed_total", () => new Counter({
        name: "academy_actions_failed_total",
        help: "Actions that ended with an error, by agent type, action and error (its code, else its name)",
        labelNames: ["agent_type", "action", "error"] as const,
        registers,
      })),
      duration: metric(registry, "academy_action_duration_seconds", () => new Histogram({
        name: "academy_action_duration_seconds",
        help: "How long actions ran, from taking a concurrency slot to their result, by agent type, action and outcome (ok, error, timeout, cancelled)",
        labelNames: ["agent_type", "action", "outcome"] as const,
        buckets: [...ACTION_DURATION_BUCKETS],
        registers,
      })),
      events: metric(registry, "academy_events_handled_total", () => new Counter({
        name: "academy_events_handled_total",
        help: "Runs of event handlers, by agent type, event and outcome (ok, error)",
        labelNames: ["agent_type", "event", "outcome"] as const,
        registers,
      })),
    };
    byRegistry.set(registry, found);
  }
  return found;
}

/**
 * Agent-side interceptor that records the metrics of {@link metricsInterceptors}, and counts the
 * actions it saw end (for a host's record).
 */
export class AgentMetrics implements AgentInterceptor {
  readonly #collectors: Collectors;
  #handled = 0;
  #failed = 0;

  constructor(registry: Registry) {
    this.#collectors = collectorsOf(registry);
  }

  /** Actions this interceptor saw end, failed or not. */
  get handled(): number {
    return this.#handled;
  }

  /** Actions this interceptor saw end with an error. */
  get failed(): number {
    return this.#failed;
  }

  async action(input: ActionInput, next: ActionNext): Promise<unknown> {
    const started = performance.now();
    const labels = { agent_type: input.agentType, action: input.request.action };
    const { handled, failed, duration } = this.#collectors;
    try {
      const result = await next(input);
      this.#handled++;
      handled.inc(labels);
      duration.observe({ ...labels, outcome: "ok" }, (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      // An action stopped by its signal failed for the signal's reason (a cancel, a deadline).
      const type = errorTypeOf(input.signal.aborted ? input.signal.reason : error);
      this.#handled++;
      this.#failed++;
      handled.inc(labels);
      failed.inc({ ...labels, error: type });
      duration.observe({ ...labels, outcome: outcomeOf(type) }, (performance.now() - started) / 1000);
      throw error;
    }
  }

  async event(input: EventInput, next: EventNext): Promise<void> {
    const labels = { agent_type: input.agentType, event: input.event };
    try {
      await next(input);
      this.#collectors.events.inc({ ...labels, outcome: "ok" });
    } catch (error) {
      this.#collectors.events.inc({ ...labels, outcome: "error" });
      throw error;
    }
  }
}

/**
 * Metrics of the actions and event handlers of the agents run on a factory, registered on
 * `registry` (prom-client's default registry when omitted): list `agent` in the factory's
 * `interceptors.agent`. Several interceptors may share a registry.
 *
 * - `academy_actions_handled_total{agent_type, action}`: actions that ran to an end;
 * - `academy_actions_failed_total{agent_type, action, error}`: those that ended with an error
 *   (`error` is its code, else its name);
 * - `academy_action_duration_seconds{agent_type, action, outcome}`: a histogram of how long they
 *   ran (from taking a concurrency slot), `outcome` being `ok`, `error`, `timeout` or `cancelled`;
 * - `academy_events_handled_total{agent_type, event, outcome}`: event handler runs.
 *
 * Worker-thread agents do not reach them (interceptors are functions); runtime hosts run agents
 * in their own event loop and count every one.
 */
export function metricsInterceptors(registry: Registry = register): { readonly agent: AgentMetrics } {
  return Object.freeze({ agent: new AgentMetrics(registry) });
}

/**
 * The Prometheus metrics of a runtime host (`prom-client`), on a registry the host is given or
 * makes: what its own parts count (launches taken, claims, failovers, fencings), what it reads on
 * each scrape (agents running, capacity, heartbeat age; the mailboxes of its agents and the dead
 * letters, from the exchange's statistics at most every few seconds), and the action and event
 * metrics of the agents it runs (`metricsInterceptors`, added to each agent's engine).
 * `academy host --health-port` serves them at `/metrics`; docs/OPERATIONS.md section 4 lists them.
 *
 * Several hosts of one process may share a registry: counters add up, gauges sum (agents,
 * capacity) or take the worst (heartbeat age) over the hosts, and mailbox gauges cover every
 * host's agents.
 */
import { Counter, Gauge } from "prom-client";
import type { Registry } from "prom-client";
import type { ExchangeStats, MailboxDeliveries } from "../src/exchange/exchange-stats.ts";
import { AgentMetrics } from "../src/interceptors/metrics.ts";
import type { Logger } from "../src/util/logger.ts";

/** At most this often (ms) a host reads mailbox and dead-letter statistics for a scrape. */
export const STATS_MAX_AGE_MS = 2_000;
/** A scrape waits at most this long (ms) for fresh statistics, then reports the last ones read. */
const STATS_WAIT_MS = 2_000;
/** Mailbox reads at once. */
const STATS_CONCURRENCY = 8;

/** What the metrics read from one host at scrape time. */
export interface HostGaugeSource {
  readonly hostId: string;
  readonly pool: string;
  readonly capacity: number;
  /** Agents running now. */
  load(): number;
  /** When a heartbeat last got through (ms since the epoch). */
  lastHeartbeat(): number;
  /** The agents it holds: uid and type. */
  agents(): Iterable<{ readonly uid: string; readonly type: string }>;
  /** The exchange's statistics, if it offers them. */
  readonly stats: ExchangeStats | undefined;
  readonly logger: Logger;
}

/** Statistics as last read. */
interface StatsSnapshot {
  readonly at: number;
  readonly mailboxes: ReadonlyMap<string, { readonly type: string; readonly deliveries: MailboxDeliveries }>;
  readonly deadLetters: number | undefined;
}

/** The gauges of one registry and the hosts they read. */
class HostGauges {
  readonly hosts = new Set<HostGaugeSource>();
  /** The library version, for `academy_host_info`. */
  version = "";
  #snapshot: StatsSnapshot = { at: 0, mailboxes: new Map(), deadLetters: undefined };
  #refreshing: Promise<void> | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    const sum = (name: string, help: string, value: (host: HostGaugeSource) => number): void => {
      const gauge: Gauge = new Gauge({
        name,
        help,
        registers,
        collect: () => {
          let total = 0;
          for (const host of this.hosts) total += value(host);
          gauge.set(total);
        },
      });
    };
    sum("academy_agents_running", "Agents running on the host (not those waiting out a retry backoff)", (h) => h.load());
    sum("academy_host_capacity", "Most agents the host runs at once (--capacity)", (h) => h.capacity);
    const heartbeat: Gauge = new Gauge({
      name: "academy_host_heartbeat_age_seconds",
      help: "Since the host's last heartbeat got through to the exchange (the largest over the hosts of the process)",
      registers,
      collect: () => {
        let age = 0;
        for (const host of this.hosts) age = Math.max(age, (Date.now() - host.lastHeartbeat()) / 1000);
        heartbeat.set(age);
      },
    });
    const info: Gauge<"host_id" | "pool" | "version"> = new Gauge({
      name: "academy_host_info",
      help: "The host's id, pool and library version (value 1)",
      labelNames: ["host_id", "pool", "version"] as const,
      registers,
      collect: () => {
        info.reset();
        for (const host of this.hosts) info.set({ host_id: host.hostId, pool: host.pool, version: this.version }, 1);
      },
    });
    const pending: Gauge<"agent_id" | "agent_type"> = new Gauge({
      name: "academy_mailbox_pending",
      help: "Messages in the mailboxes of the host's agents: waiting, or delivered and not yet acknowledged",
      labelNames: ["agent_id", "agent_type"] as const,
      registers,
      collect: async () => {
        const { mailboxes } = await this.#fresh();
        pending.reset();
        for (const [uid, m] of mailboxes) pending.set({ agent_id: uid, agent_type: m.type }, m.deliveries.waiting + m.deliveries.inFlight);
      },
    });
    const redelivered: Gauge<"agent_id" | "agent_type"> = new Gauge({
      name: "academy_mailbox_redelivered",
      help: "Messages delivered more than once and not yet acknowledged, in the mailboxes of the host's agents",
      labelNames: ["agent_id", "agent_type"] as const,
      registers,
      collect: async () => {
        const { mailboxes } = await this.#fresh();
        redelivered.reset();
        for (const [uid, m] of mailboxes) redelivered.set({ agent_id: uid, agent_type: m.type }, m.deliveries.redelivered);
      },
    });
    const deadLetters: Gauge = new Gauge({
      name: "academy_dead_letters",
      help: "Dead letters kept by the exchange (mailbox and launch letters, all pools)",
      registers,
      collect: async () => {
        const { deadLetters: count } = await this.#fresh();
        if (count !== undefined) deadLetters.set(count);
      },
    });
  }

  /** Statistics no older than {@link STATS_MAX_AGE_MS}, or the last ones if reading takes longer than a scrape should wait. */
  async #fresh(): Promise<StatsSnapshot> {
    if (Date.now() - this.#snapshot.at >= STATS_MAX_AGE_MS) {
      this.#refreshing ??= this.#refresh().finally(() => {
        this.#refreshing = undefined;
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#refreshing, new Promise<void>((resolve) => (timer = setTimeout(resolve, STATS_WAIT_MS)))]);
      clearTimeout(timer);
    }
    return this.#snapshot;
  }

  async #refresh(): Promise<void> {
    const mailboxes = new Map<string, { type: string; deliveries: MailboxDeliveries }>();
    let deadLetters = this.#snapshot.deadLetters;
    const work: Array<{ host: HostGaugeSource; uid: string; type: string }> = [];
    for (const host of this.hosts) for (const agent of host.agents()) work.push({ host, uid: agent.uid, type: agent.type });
    const next = async (): Promise<void> => {
      for (let item = work.pop(); item !== undefined; item = work.pop()) {
        try {
          const deliveries = await item.host.stats?.mailboxDeliveries(item.uid);
          if (deliveries !== undefined) mailboxes.set(item.uid, { type: item.type, deliveries });
        } catch (error) {
          item.host.logger.debug({ err: error, agentId: item.uid }, "could not read mailbox statistics");
        }
      }
    };
    const reading = Array.from({ length: STATS_CONCURRENCY }, next);
    const first = [...this.hosts].find((h) => h.stats !== undefined);
    if (first !== undefined) {
      try {
        deadLetters = (await first.stats!.deadLetters()).count;
      } catch (error) {
        first.logger.debug({ err: error }, "could not read the dead-letter count");
      }
    }
    await Promise.all(reading);
    this.#snapshot = { at: Date.now(), mailboxes, deadLetters };
  }
}

/** The counters of one registry. */
interface HostCounters {
  readonly gauges: HostGauges;
  readonly launches: Counter<"agent_type" | "outcome">;
  readonly claims: Counter<"agent_type" | "result">;
  readonly failovers: Counter;
  readonly failoverAgents: Counter;
  readonly fenced: Counter;
}

const byRegistry = new WeakMap<Registry, HostCounters>();

function countersOf(registry: Registry): HostCounters {
  let found = byRegistry.get(registry);
  if (found === undefined) {
    const registers = [registry];
    found = {
      gauges: new HostGauges(registry),
      launches: new Counter({
        name: "academy_launches_total",
        help: "Launch requests the host took from its pool's queue, by agent type and outcome: claimed (the agent started here), stale (a duplicate, or another host claimed it), rejected (dead-lettered), dropped (the mailbox is terminated), deferred (left for a host that runs the type), retried (handed back after an exchange error)",
        labelNames: ["agent_type", "outcome"] as const,
        registers,
      }),
      claims: new Counter({
        name: "academy_claims_total",
        help: "Compare-and-set claims of placements by the host, by agent type and result (won, lost)",
        labelNames: ["agent_type", "result"] as const,
        registers,
      }),
      failovers: new Counter({
        name: "academy_failovers_total",
        help: "Silent hosts this host reaped (their agents queued again for the pool)",
        registers,
      }),
      failoverAgents: new Counter({
        name: "academy_failover_agents_total",
        help: "Agents this host queued again after reaping their host (or its own record, after fencing)",
        registers,
      }),
      fenced: new Counter({
        name: "academy_host_fenced_total",
        help: "Times the host found it had lost its place in the pool, stopped its agents and rejoined",
        registers,
      }),
    };
    byRegistry.set(registry, found);
  }
  return found;
}

/** The outcome of one launch request a host took (`academy_launches_total`). */
export type LaunchOutcome = "claimed" | "stale" | "rejected" | "dropped" | "deferred" | "retried";

/** The metrics of one runtime host, on a registry it may share with other hosts and the program. */
export class HostMetrics {
  /** The registry the metrics are on: serve `await registry.metrics()` to Prometheus. */
  readonly registry: Registry;
  /** The action and event metrics, added to every agent the host runs. */
  readonly agent: AgentMetrics;
  readonly #counters: HostCounters;
  #source: HostGaugeSource | undefined;

  constructor(registry: Registry, version: string) {
    this.registry = registry;
    this.agent = new AgentMetrics(registry);
    this.#counters = countersOf(registry);
    this.#counters.gauges.version = version;
  }

  /** Read `source` when scraped, until {@link detach}. */
  attach(source: HostGaugeSource): void {
    this.detach();
    this.#source = source;
    this.#counters.gauges.hosts.add(source);
  }

  /** Stop reading the host (it stopped). */
  detach(): void {
    if (this.#source !== undefined) this.#counters.gauges.hosts.delete(this.#source);
    this.#source = undefined;
  }

  /** A launch request was dealt with. */
  launch(agentType: string | undefined, outcome: LaunchOutcome): void {
    this.#counters.launches.inc({ agent_type: agentType ?? "unknown", outcome });
  }

  /** A claim of a placement was won or lost. */
  claim(agentType: string, won: boolean): void {
    this.#counters.claims.inc({ agent_type: agentType, result: won ? "won" : "lost" });
  }

  /** This host reaped a silent host and queued `agents` of its agents again. */
  failover(agents: number): void {
    this.#counters.failovers.inc();
    this.#counters.failoverAgents.inc(agents);
  }

  /** This host queued `agents` of its own former agents again after fencing. */
  requeuedAfterFencing(agents: number): void {
    this.#counters.failoverAgents.inc(agents);
  }

  /** This host was fenced. */
  fenced(): void {
    this.#counters.fenced.inc();
  }
}

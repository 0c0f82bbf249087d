/**
 * The host-pool executor: runs agents on a pool of runtime hosts (`academy host --pool <name>`),
 * not in the launching process. `execute` writes the agent's placement and publishes a launch
 * request to the pool's work queue; some host with free capacity takes it. Completion and failure
 * come back through the placements bucket, so they are reported even when the host that ran the
 * agent is not the one that started it (failover, retries on another host).
 */
import { terminatedError } from "../exchange/mailbox-status.ts";
import { isAgentSubclass } from "../agent/agent.ts";
import type { AgentTypeInfo } from "../agent/agent-type.ts";
import { AgentAlreadyLaunchedError, AgentDefinitionError, ExecutorError, InvalidConfigError, UnknownAgentTypeError } from "../errors.ts";
import type { ExchangeFactory } from "../exchange/exchange-factory.ts";
import { checkPool } from "../pool/pool-name.ts";
import type { PoolBackend } from "../pool/pool-backend.ts";
import { PlacementState, completeQueued, failQueued, isFinal, launch } from "../pool/placement.ts";
import { POOL_RECORD_VERSION, encodeLaunchRequest } from "../pool/records.ts";
import type { HostRecord, LaunchRequest, Placement } from "../pool/records.ts";
import { transitionPlacement } from "../pool/transition-placement.ts";
import { fromFailure, toFailure } from "../protocol/failure.ts";
import { isEmptyHeaders } from "../protocol/headers.ts";
import type { MessageHeaders } from "../protocol/headers.ts";
import { SpanKind, context, trace } from "@opentelemetry/api";
import { TraceAttribute, inSpan, injectTraceContext } from "../interceptors/tracing.ts";
import { AgentId, EntityRole } from "../identifiers.ts";
import type { AgentRegistration } from "../exchange/transport.ts";
import { deferred } from "../util/deferred.ts";
import type { Deferred } from "../util/deferred.ts";
import type { AgentExecution, AgentExecutor, LaunchSpec, PrepareSpec } from "./executor.ts";

/** Options of {@link HostPoolExecutor}. */
export interface HostPoolExecutorOptions {
  /** The pool's name, as given to its hosts (`--pool`). */
  readonly pool: string;
  /**
   * The site whose pool this is, when it is another site than the manager's (docs/EDGE.md).
   * Launches are then stored in the outbox to that site and forwarded when its uplink allows;
   * that site registers the agent and keeps its placement (placements never leave their site).
   * The manager learns that the agent stopped when its mailbox shows terminated in the mirror of
   * that site's registry; how it ended (completed, or failed and why) stays in the site's
   * placement (`academy agents --site <site>` at the site). Only new agents are launched this way.
   * @defaultValue the manager's own site
   */
  readonly site?: string;
}

const HOSTS_CACHE_MS = 1_000;
/** Bytes a launch request must leave free below max_payload for the placement hosts write. */
const PLACEMENT_ROOM = 16 * 1024;

interface Waiter {
  /** Generation of the placement this launch created; earlier generations' records are ignored. */
  gen: number;
  readonly done: Deferred<void>;
}

/**
 * Runs agents on the runtime hosts of one pool. Needs a manager on an exchange that serves host
 * pools (`ExchangeFactory.poolBackend`: the `NatsExchangeFactory` does).
 *
 * ```ts
 * const manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers }), {
 *   executors: { gpu: new HostPoolExecutor({ pool: "gpu" }) },
 * });
 * const counter = await manager.launch(Counter, { executor: "gpu", args: [10] });
 * ```
 */
export class HostPoolExecutor implements AgentExecutor {
  /** Agents run on the pool's hosts, which fire their reminders. */
  readonly remote = true;
  readonly pool: string;
  /** The pool's site when it is another than the manager's; undefined for the manager's own. */
  readonly site: string | undefined;
  readonly #waiters = new Map<string, Waiter>();
  #watching: { factory: ExchangeFactory; backend: Promise<PoolBackend> } | undefined;
  #stopWatch: (() => void) | undefined;
  #closed = false;
  #hostsCache: { at: number; hosts: Promise<readonly HostRecord[]> } | undefined;

  /** @throws {InvalidConfigError} for an invalid pool name. */
  constructor(options: HostPoolExecutorOptions) {
    this.pool = checkPool(options.pool);
    this.site = options.site;
  }

  /** Whether the pool is on another site than the manager's exchange (known once it is open). */
  #remote(backend: PoolBackend): boolean {
    return this.site !== undefined && this.site !== backend.site;
  }

  /**
   * The id of a new agent on the pool's site when that is another site (which registers it when
   * the launch arrives there); undefined for a pool of the manager's own site, whose agents the
   * manager registers as always.
   */
  async register(spec: PrepareSpec & { readonly name?: string | undefined }): Promise<AgentRegistration | undefined> {
    if (this.site === undefined) return undefined;
    const backend = await this.#backend(spec.exchangeFactory);
    if (!this.#remote(backend)) return undefined;
    return { agentId: AgentId.create(spec.name, this.site), agentType: spec.agentType };
  }

  /**
   * Check the agent can run on this pool before it is registered.
   * @throws {AgentDefinitionError} for an agent instance (a pool launches classes, or type names).
   * @throws {InvalidConfigError} unless the manager's exchange serves host pools.
   * @throws {UnknownAgentTypeError} when the pool has hosts and none of them can run the type. A
   *   pool without hosts takes the launch: it waits in the stream until a host joins.
   */
  async prepare(spec: PrepareSpec): Promise<void> {
    if (typeof spec.agent !== "string" && !isAgentSubclass(spec.agent)) {
      throw new AgentDefinitionError(`Host pool '${this.pool}' launches agent classes, not instances`);
    }
    const backend = await this.#backend(spec.exchangeFactory);
    // Host records stay on their site: a pool of another site is not checked from here.
    if (this.#remote(backend)) return;
    const runs = (hosts: readonly HostRecord[]): boolean => hosts.some((h) => h.types.includes(spec.agentType.name));
    let hosts = await this.#hosts(backend, false);
    if (hosts.length > 0 && !runs(hosts)) hosts = await this.#hosts(backend, true); // a host may have just joined
    if (hosts.length > 0 && !runs(hosts)) {
      throw unknownType(spec.agentType, this.pool, `none of its ${hosts.length} host(s) can load it`);
    }
  }

  /**
   * The type named `typeName` as the pool's hosts have it: its ancestry from a host that lists it.
   * @throws {UnknownAgentTypeError} when no serving host of the pool lists the type (a launch by
   *   name needs one: the ancestry the registration records comes from the hosts).
   */
  async resolveType(typeName: string, exchangeFactory: ExchangeFactory): Promise<AgentTypeInfo> {
    const backend = await this.#backend(exchangeFactory);
    const hosts = await this.#hosts(backend, true);
    const host = hosts.find((h) => h.types.includes(typeName));
    if (host === undefined) {
      throw unknownType(
        typeName,
        this.pool,
        hosts.length === 0
          ? "the pool has no serving host, and a launch by type name takes the type's ancestry from the hosts"
          : `none of its ${hosts.length} host(s) lists it`,
      );
    }
    // Hosts older than the chains field: the type and Agent (discover by a base type misses it).
    const chain = host.chains?.[typeName] ?? [typeName, "Agent"];
    return { name: typeName, chain: [...chain] };
  }

  /** The pool's serving hosts, read at most once a second (launching many agents reads it once). */
  async #hosts(backend: PoolBackend, fresh: boolean): Promise<readonly HostRecord[]> {
    const now = Date.now();
    if (fresh || this.#hostsCache === undefined || now - this.#hostsCache.at > HOSTS_CACHE_MS) {
      const read = backend.listHosts(this.pool).then((entries) => entries.map((e) => e.value).filter((h) => !h.draining));
      this.#hostsCache = { at: now, hosts: read };
      read.catch(() => {
        if (this.#hostsCache?.hosts === read) this.#hostsCache = undefined;
      });
    }
    return this.#hostsCache.hosts;
  }

  execute(spec: LaunchSpec): AgentExecution {
    const done = deferred<void>();
    const submitted = this.#submit(spec, done).catch((error: unknown) => {
      this.#waiters.delete(spec.registration.agentId.uid);
      done.reject(error);
      throw error;
    });
    return { done: done.promise, submitted };
  }

  /**
   * The manager is closing and has asked its agents to shut down. Those still queued on a pool
   * that no host serves (its only host drained, say) would never run to read the request: their
   * launches are completed here, so that the manager need not wait for a host that may never come.
   * With a serving host nothing is done: it starts them and they shut down.
   * @returns the uids whose launches were completed.
   */
  async completeUnserved(): Promise<string[]> {
    const watching = this.#watching;
    if (watching === undefined || this.#waiters.size === 0) return [];
    const backend = await watching.backend;
    if (this.#remote(backend) || (await this.#hosts(backend, true)).length > 0) return [];
    const completed: string[] = [];
    for (const uid of [...this.#waiters.keys()]) {
      try {
        if ((await transitionPlacement(backend, this.pool, uid, completeQueued())).ok) completed.push(uid);
      } catch {
        // Left as it is: the manager's deadline bounds the wait.
      }
    }
    return completed;
  }

  /** Stop following placements. Agents keep running on their hosts. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopWatch?.();
    for (const waiter of this.#waiters.values()) {
      waiter.done.reject(new ExecutorError(`The executor of pool '${this.pool}' was closed`, { executor: this.pool }));
    }
    this.#waiters.clear();
  }

  /** Queue the agent on the pool, in a `launch <type>` span whose context the request carries. */
  #submit(spec: LaunchSpec, done: Deferred<void>): Promise<void> {
    const { agentId, agentType } = spec.registration;
    const attributes = {
      [TraceAttribute.AgentId]: agentId.uid,
      [TraceAttribute.AgentType]: agentType.name,
      [TraceAttribute.Pool]: this.pool,
    };
    return inSpan(`launch ${agentType.name}`, { kind: SpanKind.PRODUCER, attributes }, (span) => {
      const headers: Record<string, string> = {};
      if (span !== undefined) injectTraceContext(trace.setSpan(context.active(), span), headers);
      return this.#queue(spec, done, isEmptyHeaders(headers) ? undefined : headers);
    });
  }

  async #queue(spec: LaunchSpec, done: Deferred<void>, headers: MessageHeaders | undefined): Promise<void> {
    if (this.#closed) throw new ExecutorError(`The executor of pool '${this.pool}' is closed`, { executor: this.pool });
    const backend = await this.#backend(spec.exchangeFactory);
    const { agentId, agentType } = spec.registration;
    const waiter: Waiter = { gen: Number.POSITIVE_INFINITY, done };
    this.#waiters.set(agentId.uid, waiter);
    const request = this.#launchRequest(spec, headers);
    // Leave room for what hosts add to the placement (host ids, a failure): a launch that only just
    // fits would fail on the host instead.
    const encoded = encodeLaunchRequest(request);
    backend.checkSize(encoded.byteLength + PLACEMENT_ROOM, `Launch request of agent ${agentId}`);
    if (this.#remote(backend)) {
      if (spec.newlyRegistered !== true) {
        throw new ExecutorError(`Pool '${this.pool}' of site ${this.site} launches new agents only; ${agentId} was registered before`, {
          executor: this.pool,
        });
      }
      waiter.gen = 0;
      await backend.publishRemoteLaunch(this.site!, request);
      spec.logger.debug({ agentId: agentId.uid, agentType: agentType.name, pool: this.pool, site: this.site }, "launch request stored for another site");
      return;
    }
    // An agent registered for this very launch has no placement anywhere: skip the scan (a KV
    // consumer per launch, most of a launch's cost when thousands are launched at once).
    const elsewhere = spec.newlyRegistered === true ? undefined : (await backend.placementsOf(agentId.uid)).find((p) => p.pool !== this.pool && !isFinal(p.state));
    if (elsewhere !== undefined) {
      throw new AgentAlreadyLaunchedError(`${agentId} is already ${elsewhere.state} on pool '${elsewhere.pool}'`, { agentId: agentId.uid });
    }
    // Placed before: relaunch only an agent that has stopped (never start one twice).
    const placed = await transitionPlacement(backend, this.pool, agentId.uid, launch(request), { createFirst: true });
    if (!placed.ok) {
      const busy = placed.current;
      throw new AgentAlreadyLaunchedError(
        `${agentId} is already ${busy?.state ?? "placed"} on pool '${this.pool}'${busy?.host === undefined ? "" : ` (host ${busy.host})`}`,
        { agentId: agentId.uid },
      );
    }
    waiter.gen = placed.placement.gen;
    // A placement made from this request carries its launch fields unchanged (launch(): created,
    // gen 0); a relaunch of a stopped agent moves the generation on, and is encoded anew.
    await backend.publishLaunch(placed.placement, placed.placement.gen === request.gen ? encoded : undefined);
    spec.logger.debug({ agentId: agentId.uid, agentType: agentType.name, pool: this.pool, gen: waiter.gen }, "launch request published");
  }

  /** The launch request of a first launch (generation 0, no failed runs). */
  #launchRequest(spec: LaunchSpec, headers: MessageHeaders | undefined): LaunchRequest {
    const { agentId, agentType } = spec.registration;
    return {
      ...(headers !== undefined && { headers }),
      v: POOL_RECORD_VERSION,
      uid: agentId.uid,
      name: agentId.name,
      type: agentType.name,
      chain: agentType.chain,
      pool: this.pool,
      gen: 0,
      attempt: 0,
      args: spec.args,
      config: spec.config,
      maxRetries: spec.maxRetries,
      retryBackoffMs: spec.retryBackoffMs,
      launchedAt: Date.now(),
    };
  }

  /** The pool backend of the manager's exchange, with the placement watch running. */
  #backend(factory: ExchangeFactory): Promise<PoolBackend> {
    if (this.#watching !== undefined) {
      if (this.#watching.factory !== factory) {
        return Promise.reject(
          new InvalidConfigError(`The executor of pool '${this.pool}' serves one manager's exchange; create one per manager`, {
            option: "executors",
          }),
        );
      }
      return this.#watching.backend;
    }
    if (factory.poolBackend === undefined) {
      return Promise.reject(
        new InvalidConfigError(
          `Host pool '${this.pool}' needs a manager on an exchange that serves host pools (ExchangeFactory.poolBackend), such as a NatsExchangeFactory`,
          { option: "executors" },
        ),
      );
    }
    const backend = this.#follow(factory.poolBackend());
    this.#watching = { factory, backend };
    backend.catch(() => {
      if (this.#watching?.backend === backend) this.#watching = undefined;
    });
    return backend;
  }

  /** Follow the pool's placements and the agents' terminations, once the backend is ready. */
  async #follow(opening: Promise<PoolBackend>): Promise<PoolBackend> {
    const backend = await opening;
    if (this.#remote(backend)) {
      // Placements stay on their site; the agent's mailbox terminated there says it stopped.
      this.#stopWatch = backend.onRemoteMailboxTerminated(this.site!, (uid) => {
        const waiter = this.#waiters.get(uid);
        this.#waiters.delete(uid);
        waiter?.done.resolve();
      });
      if (this.#closed) this.#stopWatch();
      return backend;
    }
    const stopWatch = await backend.watchPlacements(this.pool, (placement) => this.#onPlacement(placement));
    const stopListening = backend.onMailboxTerminated((uid) => void this.#onTerminated(backend, uid));
    this.#stopWatch = () => {
      stopWatch();
      stopListening();
    };
    if (this.#closed) this.#stopWatch();
    return backend;
  }

  /**
   * A launched agent's mailbox was terminated. A running agent stops by itself (its host records
   * it); one still queued will never start, so record it failed here, or its waiters would wait
   * for a host that may never come.
   */
  async #onTerminated(backend: PoolBackend, uid: string): Promise<void> {
    if (!this.#waiters.has(uid)) return;
    try {
      await transitionPlacement(backend, this.pool, uid, failQueued(toFailure(terminatedError(uid, EntityRole.Agent))));
    } catch {
      // A host taking the launch later finds the mailbox terminated and records the same.
    }
  }

  #onPlacement(placement: Placement): void {
    const waiter = this.#waiters.get(placement.uid);
    if (waiter === undefined || placement.gen < waiter.gen || !isFinal(placement.state)) return;
    this.#waiters.delete(placement.uid);
    if (placement.state === PlacementState.Completed) {
      waiter.done.resolve();
    } else {
      waiter.done.reject(
        placement.error === undefined
          ? new ExecutorError(`Agent ${placement.uid} failed on pool '${this.pool}'`, { executor: this.pool })
          : fromFailure(placement.error),
      );
    }
  }
}

export function unknownType(agentType: AgentTypeInfo | string, pool: string, why: string): UnknownAgentTypeError {
  const name = typeof agentType === "string" ? agentType : agentType.name;
  return new UnknownAgentTypeError(`No host of pool '${pool}' can run agent type '${name}': ${why}`, { agentType: name, pool });
}

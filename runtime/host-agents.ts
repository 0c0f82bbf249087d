/**
 * Running agents on a host: start an agent's engine for a claimed placement, record how its run
 * ended (completed; retrying, then queued again after the backoff; failed), and stop agents when
 * the host hands them over (drain) or drops them (fenced).
 */
import type { AgentClass } from "../src/agent/agent-type.ts";
import { AgentEngine } from "../src/engine/agent-engine.ts";
import { AgentId } from "../src/identifiers.ts";
import { buildFromArgs, runConfig } from "../src/manager/executor.ts";
import { PlacementState, complete, fail, placementFailure } from "../src/pool/placement.ts";
import type { Placement } from "../src/pool/records.ts";
import { requeuePlacement, transitionPlacement } from "../src/pool/transition-placement.ts";
import { agentRetryPolicy, backoffDelayMs, retriesLeft } from "../src/util/backoff.ts";
import type { HostCore, HostedAgent } from "./host-core.ts";

/** How a run ended: normally (undefined), or with an error that a retry may or may not fix. */
type RunFailure = { readonly error: unknown; readonly retryable: boolean } | undefined;

/** The agents of one host. */
export class HostAgents {
  readonly #core: HostCore;
  /** The host's lease (`HostLiveness.admission`). */
  readonly #lease: () => true | Promise<boolean>;

  constructor(core: HostCore, lease: () => true | Promise<boolean>) {
    this.#core = core;
    this.#lease = lease;
  }

  /**
   * Whether an action of `hosted` may run: while the host holds its lease and still holds the
   * agent under its current id (a fenced host rejoins under a new one, and its old agents' runs
   * belong to other hosts by then).
   */
  #admission(hosted: HostedAgent): true | Promise<boolean> {
    const core = this.#core;
    const lease = hosted.placement.host === core.hostId ? this.#lease() : Promise.resolve(false);
    if (lease === true) return true;
    return lease.then((admitted) => {
      if (admitted && hosted.placement.host === core.hostId) return true;
      core.logger.info({ agentId: hosted.placement.uid }, "request left in the mailbox: the host lost the agent to another run");
      return false;
    });
  }

  /** Run the agent of a placement this host has just claimed (it holds a slot until the run ends). */
  start(placement: Placement, agentClass: AgentClass): void {
    const { factory, logger } = this.#core;
    const policy = agentRetryPolicy(placement);
    const last = !retriesLeft(policy, placement.attempt);
    const engine = new AgentEngine(buildFromArgs(agentClass, placement.args), {
      exchangeFactory: factory,
      registration: { agentId: new AgentId(placement.uid, placement.name, this.#core.backend.site), agentType: { name: placement.type, chain: placement.chain } },
      config: runConfig(placement.config, policy, placement.attempt),
      logger,
      interceptors: [this.#core.metrics.agent],
      admission: () => this.#admission(hosted),
    });
    const hosted: HostedAgent = { placement, engine, handover: undefined, retryTimer: undefined, finished: Promise.resolve() };
    this.#core.agents.set(placement.uid, hosted);
    logger.info({ agentId: placement.uid, agentType: placement.type, gen: placement.gen, attempt: placement.attempt }, "agent starting");
    hosted.finished = engine.run().then(
      () => this.#afterRun(hosted, undefined),
      (error: unknown) => this.#afterRun(hosted, { error, retryable: engine.retryable && !last }),
    );
  }

  /** Stop agents (their mailboxes kept); `handover` says what happens to each afterwards. */
  async stop(handover: "requeue" | "drop", which: (agent: HostedAgent) => boolean = () => true): Promise<void> {
    const hosted = [...this.#core.agents.values()].filter(which);
    for (const agent of hosted) {
      agent.handover = handover;
      agent.engine?.requestShutdown({ expected: true, terminate: false, cancelActions: false });
      clearTimeout(agent.retryTimer);
      agent.wake?.();
    }
    await Promise.all(hosted.map((agent) => agent.finished));
  }

  /**
   * Queue an agent this host holds again for any host of the pool (placement queued at the next
   * generation, then its launch request published).
   * @returns whether it was requeued (false if someone else changed its placement first).
   */
  requeue(placement: Placement): Promise<boolean> {
    return requeuePlacement(this.#core.backend, placement, { host: this.#core.hostId, gen: placement.gen });
  }

  async #afterRun(hosted: HostedAgent, failure: RunFailure): Promise<void> {
    const { placement } = hosted;
    const log = { agentId: placement.uid, agentType: placement.type, gen: placement.gen };
    hosted.engine = undefined;
    this.#core.slots.release();
    try {
      if (hosted.handover === "drop") return;
      if (hosted.handover === "requeue") {
        await this.requeue(placement);
        this.#core.logger.info(log, "agent handed back to the pool");
        return;
      }
      await this.#recordEnd(hosted, failure, log);
    } catch (error) {
      // The placement stays as it was; the sweep of the pool will find and requeue it.
      this.#core.logger.error({ ...log, err: error }, "could not record the agent's end");
    } finally {
      if (this.#core.agents.get(placement.uid) === hosted) this.#core.agents.delete(placement.uid);
    }
  }

  /** Record how a run ended that the host did not stop itself: completed, retrying, or failed. */
  async #recordEnd(hosted: HostedAgent, failure: RunFailure, log: Record<string, unknown>): Promise<void> {
    const { backend, logger, hostId } = this.#core;
    const { placement } = hosted;
    const holder = { host: hostId, gen: placement.gen };
    if (failure === undefined) {
      await transitionPlacement(backend, placement.pool, placement.uid, complete(holder));
      logger.info(log, "agent completed");
      return;
    }
    const ended = await transitionPlacement(backend, placement.pool, placement.uid, fail(holder, placementFailure(failure.error), failure.retryable));
    if (ended.ok && ended.placement.state === PlacementState.Retrying) {
      const delayMs = backoffDelayMs(agentRetryPolicy(placement), placement.attempt);
      logger.warn({ ...log, err: failure.error, attempt: placement.attempt + 1, retryInMs: delayMs }, "agent failed; will restart it on the pool");
      hosted.placement = ended.placement;
      await this.#backoff(hosted, delayMs);
      if (hosted.handover !== "drop") await this.requeue(hosted.placement);
    } else if (ended.ok || !failure.retryable) {
      logger.error({ ...log, err: failure.error }, "agent failed for good");
    }
  }

  /** Wait out a retry backoff (without a slot); {@link stop} ends it early. */
  #backoff(hosted: HostedAgent, delayMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      hosted.retryTimer = setTimeout(resolve, delayMs);
      hosted.wake = resolve;
    });
  }
}

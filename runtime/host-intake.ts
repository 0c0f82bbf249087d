/**
 * Taking launches: fetch launch requests from the pool's queue while there is capacity, check
 * each (PROTOCOL.md 13.3), claim its placement and hand the agent to `HostAgents`; reject what
 * cannot run (dead-lettered, the placement failed, the mailbox terminated).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentClass } from "../src/agent/agent-type.ts";
import { AcademyError, ClientClosedError, ExchangeUnavailableError, MalformedMessageError } from "../src/errors.ts";
import { MailboxStatus, mailboxError, terminatedError } from "../src/exchange/mailbox-status.ts";
import { AgentId, EntityRole } from "../src/identifiers.ts";
import { unknownType } from "../src/manager/host-pool-executor.ts";
import type { LaunchBatch, LaunchDelivery, LaunchQueue } from "../src/pool/pool-backend.ts";
import { claim, placementFailure, reject } from "../src/pool/placement.ts";
import { decodeLaunchRequest } from "../src/pool/records.ts";
import type { LaunchRequest, Placement } from "../src/pool/records.ts";
import { transitionPlacement } from "../src/pool/transition-placement.ts";
import { decodeValue } from "../src/protocol/codec.ts";
import { SpanKind } from "@opentelemetry/api";
import { TraceAttribute, extractTraceContext, inSpan } from "../src/interceptors/tracing.ts";
import type { HostAgents } from "./host-agents.ts";
import { HostState } from "./host-core.ts";
import type { HostCore } from "./host-core.ts";
import type { LaunchOutcome } from "./host-metrics.ts";

const FETCH_BATCH = 64;

/**
 * How long a fetch waits for launch requests: at most 2 s, and under half of ttl − heartbeat (the
 * least silence after which a host is reaped), but at least 1 s (nats.js' floor). A pull request
 * lives on in the server while its host is frozen or cut off (its connection is not closed), and
 * the server would hand it the launch requests of its own reaped agents, which then wait out the
 * ack wait (30 s): so it must have expired by the time the host can be reaped.
 */
export function fetchExpiresMs(heartbeatMs: number, hostTtlMs: number): number {
  return Math.min(2_000, Math.max(1_000, Math.floor((hostTtlMs - heartbeatMs) / 2)));
}

/** A launch request that passed the checks: what to run. */
interface Runnable {
  readonly request: LaunchRequest;
  readonly agentClass: AgentClass;
}

/** The launch intake of one host. */
export class HostIntake {
  readonly #core: HostCore;
  readonly #agents: HostAgents;
  #batch: LaunchBatch | undefined;
  #pulling: Promise<void> | undefined;
  /** Launch requests being checked and claimed (stopping waits for them). */
  readonly #claims = new Set<Promise<void>>();

  constructor(core: HostCore, agents: HostAgents) {
    this.#core = core;
    this.#agents = agents;
  }

  /** Take launches from `queue` while the host serves. */
  start(queue: LaunchQueue): void {
    this.#pulling = this.#pullLoop(queue);
  }

  /**
   * Stop taking launches (call once the host no longer serves): requests fetched but not started
   * are handed back. Resolves once the launches being claimed are settled.
   */
  async stop(): Promise<void> {
    this.#batch?.stop();
    this.#core.slots.wake();
    await this.#pulling;
    await Promise.allSettled([...this.#claims]);
  }

  async #pullLoop(queue: LaunchQueue): Promise<void> {
    const core = this.#core;
    while (core.state === HostState.Serving) {
      const free = core.slots.free;
      if (free <= 0) {
        await core.slots.whenFreed();
        continue;
      }
      try {
        this.#batch = await queue.fetch({ max: Math.min(free, FETCH_BATCH), expiresMs: fetchExpiresMs(core.settings.heartbeatMs, core.settings.hostTtlMs) });
        for await (const m of this.#batch) {
          if (core.state !== HostState.Serving) {
            m.nak();
            continue;
          }
          core.slots.reserve();
          const taking = this.#onLaunch(m);
          this.#claims.add(taking);
          void taking.finally(() => this.#claims.delete(taking));
        }
      } catch (error) {
        if (core.state !== HostState.Serving) break;
        core.logger.warn({ err: error }, "could not fetch launch requests; retrying");
        await sleep(500);
      }
    }
  }

  /**
   * Take one launch request with a slot reserved for it; the slot is kept only if its agent
   * starts. In a `claim <type>` span, a child of the launch's (its context travels in the
   * request's headers); counted by outcome.
   */
  async #onLaunch(m: LaunchDelivery): Promise<void> {
    // Decoded once: the span, the checks and the claim all use it.
    const decoded = decode(m.data);
    const request = decoded instanceof Error ? undefined : decoded;
    const { hostId, settings, metrics } = this.#core;
    const attributes = {
      [TraceAttribute.Pool]: settings.pool,
      [TraceAttribute.HostId]: hostId,
      ...(request !== undefined && {
        [TraceAttribute.AgentId]: request.uid,
        [TraceAttribute.AgentType]: request.type,
        [TraceAttribute.Generation]: request.gen,
      }),
    };
    const outcome = await inSpan(
      `claim ${request?.type ?? "launch"}`,
      { kind: SpanKind.CONSUMER, attributes },
      () => this.#settle(m, decoded),
      extractTraceContext(request?.headers),
      (settled) => settled,
    );
    metrics.launch(request?.type, outcome);
  }

  /** Take a launch request; what became of it. Never throws. */
  async #settle(m: LaunchDelivery, decoded: LaunchRequest | Error): Promise<LaunchOutcome> {
    let outcome: LaunchOutcome = "retried";
    try {
      outcome = await this.#take(m, decoded);
    } catch (error) {
      if (error instanceof ExchangeUnavailableError || error instanceof ClientClosedError || !(error instanceof AcademyError)) {
        // NATS trouble while claiming: let the request come back (to this host or another).
        this.#core.logger.warn({ err: error, subject: m.subject }, "could not take launch request; it will be redelivered");
        m.nak(1_000);
      } else {
        // A typed error (a placement too large to store, say) will not go away by retrying.
        outcome = await this.#reject(m, decoded instanceof Error ? undefined : decoded, error).then(
          () => "rejected" as const,
          (rejectError: unknown) => {
            this.#core.logger.warn({ err: rejectError, subject: m.subject }, "could not reject launch request; it will be redelivered");
            m.nak(1_000);
            return "retried" as const;
          },
        );
      }
    } finally {
      if (outcome !== "claimed") this.#core.slots.release();
    }
    return outcome;
  }

  /** Check and claim a launch request; `claimed` if an agent started here (keeping its slot). */
  async #take(m: LaunchDelivery, decoded: LaunchRequest | Error): Promise<LaunchOutcome> {
    const runnable = await this.#check(m, decoded);
    if (typeof runnable === "string") return runnable;
    const { request, agentClass } = runnable;
    const { backend, logger } = this.#core;
    const log = { agentId: request.uid, agentType: request.type, gen: request.gen };
    const status = await backend.mailboxStatus(request.uid);
    if (status === MailboxStatus.Missing) {
      await this.#reject(m, request, mailboxError(status, request.uid)!);
      return "rejected";
    }
    if (status === MailboxStatus.Terminated) {
      // Never restart an agent whose mailbox is gone.
      await transitionPlacement(backend, request.pool, request.uid, reject(request, placementFailure(terminatedError(request.uid, EntityRole.Agent))));
      m.ack();
      logger.info(log, "launch dropped: the agent's mailbox is terminated");
      return "dropped";
    }
    const claimed = await this.#claim(request);
    m.ack();
    if (claimed === undefined) {
      logger.debug(log, "launch request is a duplicate or stale; dropped");
      return "stale";
    }
    this.#agents.start(claimed, agentClass);
    return "claimed";
  }

  /**
   * Check a launch request's form, pool, type and arguments (the mailbox is checked next). A
   * request this host cannot run is rejected, or handed back for a host of the pool that can.
   * @returns what to run, or what became of the request when it was dealt with.
   */
  async #check(m: LaunchDelivery, decoded: LaunchRequest | Error): Promise<Runnable | "rejected" | "deferred"> {
    const { pool, classes } = this.#core.settings;
    if (decoded instanceof Error) {
      await this.#reject(m, undefined, decoded);
      return "rejected";
    }
    const request = decoded;
    if (request.pool !== pool) {
      await this.#reject(m, undefined, new MalformedMessageError(`Launch request for pool '${request.pool}' arrived on pool '${pool}'`));
      return "rejected";
    }
    const agentClass = classes.get(request.type);
    if (agentClass === undefined) {
      if (await this.#peerRuns(request.type)) {
        // A heterogeneous pool: another host loads this type; let it have the request.
        m.nak(250);
        return "deferred";
      }
      await this.#reject(m, request, unknownType(request.type, pool, `this host's modules export ${[...classes.keys()].join(", ")}`));
      return "rejected";
    }
    const argsError = checkArgs(request.args);
    if (argsError !== undefined) {
      await this.#reject(m, request, argsError);
      return "rejected";
    }
    return { request, agentClass };
  }

  /** Whether another live host of the pool can run `type`. */
  async #peerRuns(type: string): Promise<boolean> {
    const hosts = await this.#core.backend.listHosts(this.#core.settings.pool);
    return hosts.some((h) => h.value.hostId !== this.#core.hostId && !h.value.draining && h.value.types.includes(type));
  }

  /**
   * Placement: queued at this generation → running here (or created so, for a request published
   * without a placement). Undefined if another host has it.
   */
  async #claim(request: LaunchRequest): Promise<Placement | undefined> {
    const claimed = await transitionPlacement(this.#core.backend, request.pool, request.uid, claim(request, this.#core.hostId));
    this.#core.metrics.claim(request.type, claimed.ok);
    return claimed.ok ? claimed.placement : undefined;
  }

  /**
   * Reject a launch request: log the typed error, dead-letter the request, and (when it names an
   * agent) record the failure and terminate the agent's mailbox so its callers are not left waiting.
   */
  async #reject(m: LaunchDelivery, request: LaunchRequest | undefined, error: Error): Promise<void> {
    const { backend, logger } = this.#core;
    logger.error({ err: error, agentId: request?.uid, agentType: request?.type, subject: m.subject, seq: m.seq }, "launch request rejected");
    await m.deadLetter(error);
    if (request !== undefined) {
      const failed = await transitionPlacement(backend, request.pool, request.uid, reject(request, placementFailure(error)));
      if (failed.ok && (await backend.mailboxStatus(request.uid)) === MailboxStatus.Active) {
        await backend.terminateMailbox(new AgentId(request.uid, request.name));
      }
    }
    m.ack();
  }
}

/** Why launch arguments cannot be used (not CBOR, not an array); undefined if they can. */
function checkArgs(args: Uint8Array): MalformedMessageError | undefined {
  let decoded: unknown;
  try {
    decoded = decodeValue(args);
  } catch (error) {
    return new MalformedMessageError(`Launch arguments are not CBOR: ${(error as Error).message}`);
  }
  return Array.isArray(decoded) ? undefined : new MalformedMessageError("Launch arguments must encode an array");
}

/** The launch request in `bytes`, or why it is not one (`MalformedMessageError`, `InvalidConfigError`). */
function decode(bytes: Uint8Array): LaunchRequest | Error {
  try {
    return decodeLaunchRequest(bytes);
  } catch (error) {
    return error instanceof Error ? error : new MalformedMessageError(`Malformed launch request: ${String(error)}`);
  }
}

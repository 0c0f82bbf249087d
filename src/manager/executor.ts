/**
 * Executors run launched agents: in the manager's own event loop, in worker threads, or (later) on
 * a pool of runtime hosts. The manager hands each a {@link LaunchSpec} and waits on the returned
 * execution; retries happen inside the executor, so a remote pool can retry on its own hosts.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Agent } from "../agent/agent.ts";
import type { AgentClass, AgentTypeInfo } from "../agent/agent-type.ts";
import type { AgentExchangeClient } from "../exchange/exchange-client.ts";

import type { ExchangeFactory } from "../exchange/exchange-factory.ts";
import type { AgentRegistration } from "../exchange/transport.ts";

import type { RuntimeConfig } from "../agent/runtime-config.ts";
import { AgentEngine } from "../engine/agent-engine.ts";
import type { AgentSource } from "../engine/agent-engine.ts";
import { decodeValue } from "../protocol/codec.ts";
import { agentRetryPolicy, nextRetryDelayMs, retriesLeft } from "../util/backoff.ts";
import type { RetryPolicy } from "../util/backoff.ts";
import type { Logger } from "../util/logger.ts";

/** Everything an executor needs to run an agent. */
export interface LaunchSpec<A extends Agent = Agent> {
  /**
   * The agent class, or (event-loop executor only) a ready instance, or (executors with
   * {@link AgentExecutor.resolveType} only) the type name of a class the executor finds itself.
   */
  readonly agent: AgentClass<A> | A | string;
  /** Constructor arguments, CBOR-encoded (handles inside are rebound to the agent's client). */
  readonly args: Uint8Array;
  readonly registration: AgentRegistration<A>;
  /**
   * The manager registered the agent for this launch, so it has never run anywhere (executors may
   * skip looking for earlier runs).
   */
  readonly newlyRegistered?: boolean;
  readonly config: RuntimeConfig;
  readonly exchangeFactory: ExchangeFactory;
  /** Extra runs after a failed one (so at most `maxRetries + 1` runs in all). */
  readonly maxRetries: number;
  /** Delay before the first retry, in ms; doubles for each further retry, capped at 30 s. */
  readonly retryBackoffMs: number;
  readonly logger: Logger;
}

/** A launched agent, as its executor reports it. */
export interface AgentExecution {
  /** Resolves when the agent has stopped for good; rejects with the error of its last run. */
  readonly done: Promise<void>;
  /**
   * Settles once the executor has accepted the launch (a remote pool: once the launch request is
   * stored); `launch` waits for it and raises its error. None means accepted at once.
   */
  readonly submitted?: Promise<void>;
}

/** What an executor may check before the agent is registered. */
export interface PrepareSpec {
  /** As {@link LaunchSpec.agent}. */
  readonly agent: AgentClass | Agent | string;
  readonly agentType: AgentTypeInfo;
  readonly exchangeFactory: ExchangeFactory;
}

/** Runs agents. */
export interface AgentExecutor {
  /**
   * Check that an agent can be launched here, before it is registered (optional).
   * @throws the reason it cannot.
   */
  prepare?(spec: PrepareSpec): Promise<void>;
  /**
   * Register a new agent where this executor runs it (optional): an executor that runs agents on
   * another site names the agent on that site, which registers it when the launch arrives.
   * Undefined (or no such method): the manager registers the agent with its own exchange client.
   */
  register?(spec: PrepareSpec & { readonly name?: string | undefined }): Promise<AgentRegistration | undefined>;
  /**
   * The type of an agent launched by type name (`Manager.launch("Counter", …)`): its name and
   * ancestry, which registration records. Only executors that find agent classes by name where
   * they run them (a host pool) have it; the manager refuses launches by name on the others.
   * @throws {UnknownAgentTypeError} if the executor knows no such type.
   */
  resolveType?(typeName: string, exchangeFactory: ExchangeFactory): Promise<AgentTypeInfo>;
  /**
   * Whether the agents run in other processes (a host pool): then the manager leaves their
   * reminders to those processes and fires none for them. @defaultValue false
   */
  readonly remote?: boolean;
  /** Start running an agent; returns at once. */
  execute<A extends Agent>(spec: LaunchSpec<A>): AgentExecution;
  /**
   * The manager is closing and has asked its agents to shut down: stop waiting for agents that
   * can never run to read that request (optional; a host pool whose hosts are all gone). Returns
   * the uids of the agents whose runs ended this way, which never started.
   */
  completeUnserved?(): Promise<string[]>;
  /** Release the executor's resources (after its agents have stopped). */
  close(): Promise<void>;
}

/** The result of one run of an agent. */
export type RunOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: unknown; readonly retryable: boolean };

/** Run an agent once, in this thread. */
export async function runAgentOnce<A extends Agent>(
  source: AgentSource<A>,
  spec: Pick<LaunchSpec<A>, "registration" | "exchangeFactory" | "logger">,
  config: RuntimeConfig,
): Promise<RunOutcome> {
  const engine = new AgentEngine(source, {
    exchangeFactory: spec.exchangeFactory,
    registration: spec.registration,
    config,
    logger: spec.logger,
  });
  try {
    await engine.run();
    return { ok: true };
  } catch (error) {
    return { ok: false, error, retryable: engine.retryable };
  }
}

/** A builder that constructs `agentClass` from CBOR-encoded arguments bound to the agent's client. */
export function buildFromArgs<A extends Agent>(agentClass: AgentClass<A>, args: Uint8Array): AgentSource<A> {
  return {
    agentClass,
    build(client: AgentExchangeClient): A {
      const decoded = decodeValue(args, client);
      return new agentClass(...(Array.isArray(decoded) ? decoded : []));
    },
  };
}

/**
 * The config of run number `attempt + 1`: a run that may be retried keeps its mailbox on failure
 * (`terminateOnError: false`), so that the next run can reuse it; the last run uses `config` as
 * given.
 */
export function runConfig(config: RuntimeConfig, policy: RetryPolicy, attempt: number): RuntimeConfig {
  return retriesLeft(policy, attempt) ? { ...config, terminateOnError: false } : config;
}

/**
 * Run `runOnce` until it succeeds, fails for a reason a retry cannot fix, or has failed
 * `maxRetries + 1` times. Runs before the last do not terminate the mailbox on error (so the
 * retry can reuse it); the last run uses the caller's config unchanged.
 */
export async function runWithRetries(
  spec: Pick<LaunchSpec, "config" | "maxRetries" | "retryBackoffMs" | "logger" | "registration">,
  runOnce: (config: RuntimeConfig, attempt: number) => Promise<RunOutcome>,
): Promise<void> {
  const policy = agentRetryPolicy(spec);
  for (let attempt = 0; ; attempt++) {
    const config = runConfig(spec.config, policy, attempt);
    const outcome = await runOnce(config, attempt);
    if (outcome.ok) return;
    const delayMs = outcome.retryable ? nextRetryDelayMs(policy, attempt) : undefined;
    if (delayMs === undefined) throw outcome.error;
    spec.logger.warn(
      { err: outcome.error, agentId: spec.registration.agentId.uid, attempt: attempt + 1, retryInMs: delayMs },
      "agent failed; restarting under the same id",
    );
    if (delayMs > 0) await sleep(delayMs);
  }
}

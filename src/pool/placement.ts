/**
 * The life of a placement as a pure state machine: the states an agent launched on a pool goes
 * through, and every change to them as a function over plain data. Each transition states its
 * precondition and how it moves the generation, and returns the next placement or why it does
 * not apply. Hosts and the host-pool executor apply them by compare-and-set
 * (`transitionPlacement`), so who may start, end or hand on an agent is decided here and only
 * here. docs/HOSTS.md section 4 has the table.
 *
 * Generations: `gen` is 0 at the first launch and goes up by one every time the agent is queued
 * again (failover, drain, retry, a new launch of a stopped agent). A host claims only a placement
 * queued at its request's generation, so a duplicate or stale request never starts an agent twice.
 */
import { toFailure } from "../protocol/failure.ts";
import type { Failure } from "../protocol/failure.ts";
import { agentRetryPolicy, retriesLeft } from "../util/backoff.ts";
import type { LaunchRequest, Placement } from "./records.ts";

/** Where a launched agent is in its life (the `state` field of a placement). */
export const PlacementState = {
  /** A launch request is in the stream, waiting for a host with capacity. */
  Queued: "queued",
  /** A host took it and runs it. */
  Running: "running",
  /** A run failed; the host waits out the backoff, then queues it again. */
  Retrying: "retrying",
  /** Stopped normally (final). */
  Completed: "completed",
  /** Failed for good: the last run failed, or the launch was rejected (final). */
  Failed: "failed",
} as const;
export type PlacementState = (typeof PlacementState)[keyof typeof PlacementState];

/** States after which an agent is not restarted (except by a new launch). */
export function isFinal(state: PlacementState): boolean {
  return state === PlacementState.Completed || state === PlacementState.Failed;
}

/** Why a transition does not apply to the current placement. */
export const Refusal = {
  /** There is no placement, and this transition does not create one. */
  Missing: "missing",
  /** The placement is at another generation than the caller's (a stale or duplicate request). */
  StaleGeneration: "stale-generation",
  /** Another host holds the placement, or none does. */
  NotOwner: "not-owner",
  /** The placement is completed or failed. */
  AlreadyFinal: "already-final",
  /** The placement is queued, running or retrying: the agent is placed already. */
  AlreadyPlaced: "already-placed",
} as const;
export type Refusal = (typeof Refusal)[keyof typeof Refusal];

/** What a transition makes of the current placement: the next one, or a refusal. */
export type TransitionResult =
  | { readonly ok: true; readonly placement: Placement }
  | { readonly ok: false; readonly refusal: Refusal; readonly current: Placement | undefined };

/**
 * One change of a placement: from the current record (undefined when there is none) and the
 * writer's clock (`updatedAt` of the result), the next record or a refusal. Pure.
 */
export type Transition = (current: Placement | undefined, now: number) => TransitionResult;

/** A run of an agent: the host that holds it and the generation it holds it at. */
export interface Holder {
  readonly host: string;
  readonly gen: number;
}

/** Characters of an error stack kept in a placement. */
const MAX_STACK = 4_000;

/** The failure shape of an error, with its stack cut short: placements must stay small. */
export function placementFailure(error: unknown): Failure {
  const failure = toFailure(error);
  return failure.stack === undefined || failure.stack.length <= MAX_STACK
    ? failure
    : { ...failure, stack: `${failure.stack.slice(0, MAX_STACK)}…` };
}

function refuse(refusal: Refusal, current: Placement | undefined): TransitionResult {
  return { ok: false, refusal, current };
}

function next(placement: Placement): TransitionResult {
  return { ok: true, placement };
}

/** Why a placement that exists is not at rest where `gen` says: final, another generation, or none. */
function notAtGeneration(current: Placement, gen: number): Refusal | undefined {
  if (isFinal(current.state)) return Refusal.AlreadyFinal;
  if (current.gen !== gen) return Refusal.StaleGeneration;
  return undefined;
}

/** Why `holder` may not end or hand on the run `current` records; undefined if it may. */
function notHeldBy(current: Placement | undefined, holder: Holder): Refusal | undefined {
  if (current === undefined) return Refusal.Missing;
  return notAtGeneration(current, holder.gen) ?? (current.host === holder.host ? undefined : Refusal.NotOwner);
}

/**
 * Launch an agent on a pool (the executor). None → queued, at the request's generation (0 for a
 * new agent). A stopped agent (completed, failed) is launched again: queued at gen + 1 with the
 * request's arguments, config and retry settings (`attempt` from the request, so 0), no host, no
 * error. An agent queued, running or retrying is refused (`already-placed`): never started twice.
 */
export function launch(request: LaunchRequest): Transition {
  return (current, now) => {
    if (current === undefined) return next({ ...request, state: PlacementState.Queued, updatedAt: now });
    if (!isFinal(current.state)) return refuse(Refusal.AlreadyPlaced, current);
    return next({
      ...current,
      ...request,
      gen: current.gen + 1,
      state: PlacementState.Queued,
      host: undefined,
      error: undefined,
      updatedAt: now,
    });
  };
}

/**
 * A host claims a launch request: queued at the request's generation → running on `host` (also
 * its `lastHost`; the last error cleared). None → created running, for a request published
 * without a placement. Anything else is refused: another generation (a duplicate or stale
 * request), final, or placed already (another host claimed it).
 */
export function claim(request: LaunchRequest, host: string): Transition {
  const mine = { state: PlacementState.Running, host, lastHost: host, error: undefined } as const;
  return (current, now) => {
    if (current === undefined) return next({ ...request, ...mine, updatedAt: now });
    const refusal = notAtGeneration(current, request.gen) ?? (current.state === PlacementState.Queued ? undefined : Refusal.AlreadyPlaced);
    return refusal === undefined ? next({ ...current, ...mine, updatedAt: now }) : refuse(refusal, current);
  };
}

/** The run `holder` holds ended normally: → completed, no host, no error. */
export function complete(holder: Holder): Transition {
  return (current, now) => {
    const refusal = notHeldBy(current, holder);
    if (refusal !== undefined) return refuse(refusal, current);
    return next({ ...current!, state: PlacementState.Completed, host: undefined, error: undefined, updatedAt: now });
  };
}

/**
 * The run `holder` holds failed with `failure`. If the failure is `retryable` and retries remain
 * (`attempt < maxRetries`): → retrying, `attempt` + 1, the host kept (it waits out the backoff,
 * then calls {@link requeue}). Otherwise → failed, no host. Either way `error` is the failure.
 */
export function fail(holder: Holder, failure: Failure, retryable: boolean): Transition {
  return (current, now) => {
    const refusal = notHeldBy(current, holder);
    if (refusal !== undefined) return refuse(refusal, current);
    const run = current!;
    if (retryable && retriesLeft(agentRetryPolicy(run), run.attempt)) {
      return next({ ...run, state: PlacementState.Retrying, attempt: run.attempt + 1, error: failure, updatedAt: now });
    }
    return next({ ...run, state: PlacementState.Failed, host: undefined, error: failure, updatedAt: now });
  };
}

/**
 * Queue an agent again for any host of the pool: the run `holder` holds (running, or retrying
 * once its backoff is over) → queued at gen + 1, no host; `attempt` and `error` kept. For a drain,
 * the end of a retry backoff, and the reaping of a dead host (then `holder` is the dead host).
 * A transition to queued is followed by a new launch request.
 */
export function requeue(holder: Holder): Transition {
  return (current, now) => {
    const refusal = notHeldBy(current, holder);
    if (refusal !== undefined) return refuse(refusal, current);
    return next({ ...current!, state: PlacementState.Queued, host: undefined, gen: current!.gen + 1, updatedAt: now });
  };
}

/**
 * A host cannot run a launch request (unknown type, bad arguments, missing or terminated mailbox):
 * not yet placed at the request's generation (queued, no host) → failed with `failure`. None →
 * created failed. A placement at another generation, final, or held by a host is left alone.
 */
export function reject(request: LaunchRequest, failure: Failure): Transition {
  const failed = { state: PlacementState.Failed, host: undefined, error: failure } as const;
  return (current, now) => {
    if (current === undefined) return next({ ...request, ...failed, updatedAt: now });
    const refusal = notAtGeneration(current, request.gen) ?? (current.host === undefined ? undefined : Refusal.AlreadyPlaced);
    return refusal === undefined ? next({ ...current, ...failed, updatedAt: now }) : refuse(refusal, current);
  };
}

/**
 * Complete a launch no host has started: the agent was asked to shut down while queued on a pool
 * that nothing serves, and will not run (a host that takes the launch later finds it final).
 * Refused when a host holds it (running, retrying) or it is final already.
 */
export function completeQueued(): Transition {
  return (current, now) => {
    if (current === undefined) return refuse(Refusal.Missing, current);
    if (current.state !== PlacementState.Queued) return refuse(isFinal(current.state) ? Refusal.AlreadyFinal : Refusal.AlreadyPlaced, current);
    return next({ ...current, state: PlacementState.Completed, updatedAt: now });
  };
}

/**
 * The mailbox of a queued agent was terminated: it must never start, so queued (at any
 * generation) → failed with `failure`. A running agent stops by itself and its host records the
 * end, so anything but queued is refused.
 */
export function failQueued(failure: Failure): Transition {
  return (current, now) => {
    if (current === undefined) return refuse(Refusal.Missing, current);
    if (current.state !== PlacementState.Queued) return refuse(isFinal(current.state) ? Refusal.AlreadyFinal : Refusal.AlreadyPlaced, current);
    return next({ ...current, state: PlacementState.Failed, error: failure, updatedAt: now });
  };
}

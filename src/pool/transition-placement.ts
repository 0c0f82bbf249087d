/**
 * Applying a placement transition to the stored record: the one compare-and-set loop of host
 * pools. Read the placement, apply the (pure) transition, write the result at the revision read
 * (or create it when there was none), and start again when another writer got there first.
 */
import { requeue } from "./placement.ts";
import type { Holder, Transition, TransitionResult } from "./placement.ts";
import type { PoolBackend } from "./pool-backend.ts";
import type { Placement } from "./records.ts";

/** The part of a {@link PoolBackend} that placement transitions use. */
export type PlacementStore = Pick<PoolBackend, "getPlacement" | "createPlacement" | "compareAndSetPlacement">;

/** Options of {@link transitionPlacement}. */
export interface TransitionOptions {
  /**
   * Try to create the placement before reading it: one write instead of a read and a write when
   * it is usually absent (a new launch). Falls back to the loop when it exists.
   * @defaultValue false
   */
  readonly createFirst?: boolean;
}

/**
 * Apply `transition` to the placement of agent `uid` on `pool` by compare-and-set, retrying when
 * another writer changes it meanwhile.
 * @returns the placement written, or the transition's refusal of the current one.
 */
export async function transitionPlacement(
  backend: PlacementStore,
  pool: string,
  uid: string,
  transition: Transition,
  options: TransitionOptions = {},
): Promise<TransitionResult> {
  if (options.createFirst === true) {
    const created = transition(undefined, Date.now());
    if (created.ok && (await backend.createPlacement(created.placement)) !== undefined) return created;
  }
  for (;;) {
    const current = await backend.getPlacement(pool, uid);
    const result = transition(current?.value, Date.now());
    if (!result.ok) return result;
    const written =
      current === undefined
        ? (await backend.createPlacement(result.placement)) !== undefined
        : (await backend.compareAndSetPlacement(result.placement, current.revision)) !== undefined;
    if (written) return result;
  }
}

/**
 * Queue an agent again for any host of its pool (its placement, held by `holder`, becomes queued
 * at the next generation), then publish the launch request of that generation.
 * @returns whether this call requeued it (false if someone else changed the placement first).
 */
export async function requeuePlacement(
  backend: PlacementStore & Pick<PoolBackend, "publishLaunch">,
  placement: Placement,
  holder: Holder,
): Promise<boolean> {
  const queued = await transitionPlacement(backend, placement.pool, placement.uid, requeue(holder));
  if (!queued.ok) return false;
  await backend.publishLaunch(queued.placement);
  return true;
}

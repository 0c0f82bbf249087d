/**
 * Bounded waits at shutdown. JavaScript cannot stop a running async function: an action or loop
 * that ignores its abort signal runs on. The engine waits for such work at most a grace period
 * (`RuntimeConfig.shutdownGraceMs`) after signalling it, then abandons it and finishes shutting
 * down; abandoned work may still run to its end in the process, but nothing waits for it.
 */

/** Something running that the engine waits for at shutdown. */
export interface Awaited {
  /** Settles when the work has stopped (resolves or rejects; either counts). */
  readonly done: Promise<unknown>;
}

/**
 * Wait until every item of `work` has settled, or `graceMs` has passed.
 * @returns the items still running when the grace ran out (empty when all settled in time).
 */
export async function settleWithin<T extends Awaited>(work: readonly T[], graceMs: number): Promise<T[]> {
  if (work.length === 0) return [];
  const settled = new Set<T>();
  const all = Promise.all(
    work.map((item) =>
      item.done.then(
        () => void settled.add(item),
        () => void settled.add(item),
      ),
    ),
  );
  if (graceMs === Number.POSITIVE_INFINITY) {
    await all;
    return [];
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
  clearTimeout(timer);
  return work.filter((item) => !settled.has(item));
}

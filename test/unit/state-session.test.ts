/**
 * The fencing rule of docs/STATE.md section 5 at the level of one record: the last run to load a
 * record owns it, even before it writes anything, and an earlier run's writes fail from then on.
 */
import { describe, expect, test } from "vitest";
import { StateConflictError, durableState } from "../../src/index.ts";
import { LocalStateStore, MemoryStateRecords } from "../../src/exchange/local/local-state-store.ts";
import { StateSession } from "../../src/state/state-session.ts";
import { silentLogger } from "../../src/util/logger.ts";

const binder = { getHandle: () => { throw new Error("no handles here"); } };

function run(store: LocalStateStore, conflicts: StateConflictError[]) {
  const state = durableState({ count: 0 });
  const session = new StateSession("agent-1", store, state as never, { currentTag: () => undefined, onConflict: (e) => conflicts.push(e) }, silentLogger);
  return { state, session };
}

describe("state session fencing", () => {
  test("a run that loaded later owns the record before it writes: the earlier run's write fails and reports the conflict once", async () => {
    const store = new LocalStateStore(new MemoryStateRecords(1024 * 1024));
    const oldConflicts: StateConflictError[] = [];
    const newConflicts: StateConflictError[] = [];
    const old = run(store, oldConflicts);
    await old.session.load(binder);
    old.state.value.count = 1;
    await old.session.save();

    const current = run(store, newConflicts);
    await current.session.load(binder);
    expect(current.state.value).toEqual({ count: 1 });

    // The stale run writes before the new owner has written anything: refused.
    old.state.value.count = 100;
    await expect(old.session.save()).rejects.toBeInstanceOf(StateConflictError);
    await expect(old.session.save()).rejects.toBeInstanceOf(StateConflictError);
    expect(oldConflicts).toHaveLength(1);
    expect(old.session.fenced).toBeInstanceOf(StateConflictError);
    expect(await old.session.delete()).toBe(false);

    current.state.value.count = 2;
    await current.session.save();
    expect(newConflicts).toEqual([]);
    const third = run(store, []);
    await third.session.load(binder);
    expect(third.state.value).toEqual({ count: 2 });
  });
});

/**
 * The rules of `academy gc` (src/pool/garbage-collection.ts): which terminated mailboxes and
 * placements may be deleted, and the compare-and-set deletes against a backend that changes.
 */
import { describe, expect, test } from "vitest";
import { InvalidConfigError } from "../../src/index.ts";
import { EntityRole } from "../../src/identifiers.ts";
import { MIN_COLLECTABLE_AGE_MS, collectGarbage, planCollection } from "../../src/pool/garbage-collection.ts";
import { PlacementState } from "../../src/pool/placement.ts";
import type { MailboxEntry, PoolBackend, Versioned } from "../../src/pool/pool-backend.ts";
import { POOL_RECORD_VERSION } from "../../src/pool/records.ts";
import type { Placement } from "../../src/pool/records.ts";

const HOUR = 3_600_000;
const NOW = 1_800_000_000_000;

function mailbox(uid: string, fields: Partial<MailboxEntry> = {}): MailboxEntry {
  return { uid, role: EntityRole.Agent, type: "Worker", status: "terminated", registeredAt: NOW - 100 * HOUR, terminatedAt: NOW - 48 * HOUR, revision: 1, ...fields };
}

function placement(uid: string, state: Placement["state"], pool = "gpu"): Placement {
  return {
    v: POOL_RECORD_VERSION, uid, type: "Worker", chain: ["Worker", "Agent"], pool, gen: 0, attempt: 0, args: new Uint8Array(),
    config: {}, maxRetries: 0, retryBackoffMs: 100, launchedAt: NOW - 100 * HOUR, state, updatedAt: NOW - 48 * HOUR,
  } as Placement;
}

const policy = { olderThanMs: 24 * HOUR, now: NOW };

describe("garbage collection rules", () => {
  test("only terminated mailboxes older than the age, without a live placement, go", () => {
    const plan = planCollection(
      [
        mailbox("old"),
        mailbox("active", { status: "active", terminatedAt: undefined }),
        mailbox("recent", { terminatedAt: NOW - HOUR }),
        mailbox("placed"),
        mailbox("done-on-pool"),
        mailbox("untimed", { terminatedAt: undefined }),
        mailbox("user", { role: EntityRole.User, type: undefined }),
      ],
      [placement("placed", PlacementState.Running), placement("done-on-pool", PlacementState.Completed), placement("done-on-pool", PlacementState.Failed, "cpu")],
      policy,
    );
    expect(plan.collect.map((c) => c.mailbox.uid)).toEqual(["old", "done-on-pool", "user"]);
    expect(plan.collect[1]!.placements.map((p) => p.pool)).toEqual(["gpu", "cpu"]);
    expect(plan.kept.map((k) => [k.mailbox.uid, k.reason])).toEqual([
      ["placed", "placement on pool 'gpu' is running"],
      ["untimed", "no termination time recorded"],
    ]);
    expect(planCollection([mailbox("user", { role: EntityRole.User })], [], { ...policy, roles: "agents" }).collect).toEqual([]);
  });

  test("an age below the floor is refused", () => {
    expect(() => planCollection([], [], { olderThanMs: MIN_COLLECTABLE_AGE_MS - 1, now: NOW })).toThrow(InvalidConfigError);
  });

  test("deletes by compare-and-set: a record or placement that changed since the read is kept", async () => {
    const records = new Map([mailbox("a"), mailbox("b"), mailbox("c")].map((m) => [m.uid, m]));
    const placements = new Map<string, Versioned<Placement>>([
      ["gpu.b", { value: placement("b", PlacementState.Completed), revision: 7 }],
      ["gpu.c", { value: placement("c", PlacementState.Failed), revision: 9 }],
    ]);
    const backend = {
      listMailboxes: async () => [...records.values()],
      listPlacements: async () => [...placements.values()].map((v) => v.value),
      getPlacement: async (pool: string, uid: string) => placements.get(`${pool}.${uid}`),
      deletePlacement: async (pool: string, uid: string, revision: number) => {
        const key = `${pool}.${uid}`;
        if (placements.get(key)?.revision !== revision) return false;
        placements.delete(key);
        return true;
      },
      deleteMailbox: async (uid: string, revision: number) => {
        // Another writer rewrote "a" after the listing.
        if (uid === "a" || records.get(uid)?.revision !== revision) return false;
        records.delete(uid);
        return true;
      },
    } as unknown as PoolBackend;
    // Another writer requeued c's placement between the listing and the delete.
    const getPlacement = backend.getPlacement.bind(backend);
    backend.getPlacement = async (pool, uid) => {
      const current = await getPlacement(pool, uid);
      return uid === "c" && current !== undefined ? { value: { ...current.value, state: PlacementState.Queued }, revision: 10 } : current;
    };

    const dry = await collectGarbage(backend, policy, true);
    expect([dry.collect.length, dry.deletedMailboxes, records.size]).toEqual([3, 0, 3]);
    const report = await collectGarbage(backend, policy);
    expect(report).toMatchObject({ deletedMailboxes: 1, deletedPlacements: 1, changed: ["a", "c"] });
    expect([...records.keys()]).toEqual(["a", "c"]);
    expect([...placements.keys()]).toEqual(["gpu.c"]);
  });
});

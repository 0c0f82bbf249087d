/**
 * The compare-and-set loop that applies placement transitions, against an in-memory store whose
 * writes another writer can overtake: a lost race reads again and applies the transition to what
 * the other writer left.
 */
import { describe, expect, test } from "vitest";
import { PlacementState, claim, complete, launch, requeue } from "../../src/pool/placement.ts";
import type { PoolBackend, Versioned } from "../../src/pool/pool-backend.ts";
import { POOL_RECORD_VERSION } from "../../src/pool/records.ts";
import type { LaunchRequest, Placement } from "../../src/pool/records.ts";
import { requeuePlacement, transitionPlacement } from "../../src/pool/transition-placement.ts";

const request: LaunchRequest = {
  v: POOL_RECORD_VERSION,
  uid: "agent-1",
  type: "Counter",
  chain: ["Counter", "Agent"],
  pool: "gpu",
  gen: 0,
  attempt: 0,
  args: new Uint8Array([0x80]),
  config: {},
  maxRetries: 0,
  retryBackoffMs: 100,
  launchedAt: 1_000,
};

type Store = Pick<PoolBackend, "getPlacement" | "createPlacement" | "compareAndSetPlacement" | "publishLaunch">;

/** Placements in memory, with a count of each call and a hook run before each write. */
class MemoryPlacements implements Store {
  readonly records = new Map<string, Versioned<Placement>>();
  readonly calls = { get: 0, create: 0, cas: 0, publish: 0 };
  readonly published: LaunchRequest[] = [];
  #revision = 0;
  /** Runs before the next write only (another writer getting there first). */
  beforeNextWrite: (() => void) | undefined;

  put(placement: Placement): void {
    this.records.set(placement.uid, { value: placement, revision: ++this.#revision });
  }

  async getPlacement(_pool: string, uid: string): Promise<Versioned<Placement> | undefined> {
    this.calls.get++;
    return this.records.get(uid);
  }

  async createPlacement(placement: Placement): Promise<Versioned<Placement> | undefined> {
    this.calls.create++;
    this.#interfere();
    if (this.records.has(placement.uid)) return undefined;
    this.put(placement);
    return this.records.get(placement.uid);
  }

  async compareAndSetPlacement(placement: Placement, revision: number): Promise<number | undefined> {
    this.calls.cas++;
    this.#interfere();
    if (this.records.get(placement.uid)?.revision !== revision) return undefined;
    this.put(placement);
    return this.#revision;
  }

  async publishLaunch(request: LaunchRequest): Promise<void> {
    this.calls.publish++;
    this.published.push(request);
  }

  #interfere(): void {
    const other = this.beforeNextWrite;
    this.beforeNextWrite = undefined;
    other?.();
  }
}

const queued = (fields: Partial<Placement> = {}): Placement => ({ ...request, state: PlacementState.Queued, updatedAt: 1, ...fields });

describe("transitionPlacement", () => {
  test("reads, applies the transition and writes at the revision read", async () => {
    const store = new MemoryPlacements();
    store.put(queued());
    const result = await transitionPlacement(store, "gpu", "agent-1", claim(request, "h1"));
    expect(result).toMatchObject({ ok: true, placement: { state: PlacementState.Running, host: "h1" } });
    expect(store.records.get("agent-1")?.value).toMatchObject({ state: PlacementState.Running, host: "h1" });
    expect(store.calls).toMatchObject({ get: 1, create: 0, cas: 1 });
  });

  test("a write overtaken by another writer is retried against the new value", async () => {
    const store = new MemoryPlacements();
    store.put(queued({ state: PlacementState.Running, host: "h1" }));
    // A reaper requeues the agent between this host's read and its write: the host's "completed"
    // is refused on the second pass, not written over the requeue.
    store.beforeNextWrite = () => store.put(queued({ gen: 1, host: undefined }));
    const result = await transitionPlacement(store, "gpu", "agent-1", complete({ host: "h1", gen: 0 }));
    expect(result).toMatchObject({ ok: false, refusal: "stale-generation" });
    expect(store.records.get("agent-1")?.value).toMatchObject({ state: PlacementState.Queued, gen: 1 });
    expect(store.calls).toMatchObject({ get: 2, cas: 1 });
  });

  test("of two hosts claiming one request, one wins", async () => {
    const store = new MemoryPlacements();
    store.put(queued());
    store.beforeNextWrite = () => store.put(queued({ state: PlacementState.Running, host: "h2", lastHost: "h2" }));
    const result = await transitionPlacement(store, "gpu", "agent-1", claim(request, "h1"));
    expect(result).toMatchObject({ ok: false, refusal: "already-placed" });
    expect(store.records.get("agent-1")?.value.host).toBe("h2");
  });

  test("a create that loses to another creator reads again and applies the transition to its record", async () => {
    const store = new MemoryPlacements();
    store.beforeNextWrite = () => store.put(queued());
    const result = await transitionPlacement(store, "gpu", "agent-1", claim(request, "h1"));
    expect(result).toMatchObject({ ok: true, placement: { state: PlacementState.Running, host: "h1" } });
    expect(store.calls).toMatchObject({ get: 2, create: 1, cas: 1 });
  });

  test("createFirst: a new placement costs one write; an existing one falls back to read and compare-and-set", async () => {
    const store = new MemoryPlacements();
    expect(await transitionPlacement(store, "gpu", "agent-1", launch(request), { createFirst: true })).toMatchObject({ ok: true });
    expect(store.calls).toMatchObject({ get: 0, create: 1, cas: 0 });
    store.put(queued({ state: PlacementState.Completed }));
    const again = await transitionPlacement(store, "gpu", "agent-1", launch(request), { createFirst: true });
    expect(again).toMatchObject({ ok: true, placement: { state: PlacementState.Queued, gen: 1 } });
    expect(store.calls).toMatchObject({ get: 1, create: 2, cas: 1 });
  });

  test("a refusal carries the current placement", async () => {
    const store = new MemoryPlacements();
    store.put(queued({ state: PlacementState.Running, host: "h1" }));
    const result = await transitionPlacement(store, "gpu", "agent-1", launch(request), { createFirst: true });
    expect(result).toMatchObject({ ok: false, refusal: "already-placed", current: { host: "h1" } });
  });
});

describe("requeuePlacement", () => {
  test("queues the agent at the next generation, then publishes that generation's request", async () => {
    const store = new MemoryPlacements();
    const held = queued({ state: PlacementState.Running, host: "dead" });
    store.put(held);
    expect(await requeuePlacement(store, held, { host: "dead", gen: 0 })).toBe(true);
    expect(store.published).toEqual([expect.objectContaining({ uid: "agent-1", gen: 1, state: PlacementState.Queued })]);
    // A second reaper of the same host: nothing to do, nothing published.
    expect(await requeuePlacement(store, held, { host: "dead", gen: 0 })).toBe(false);
    expect(store.calls.publish).toBe(1);
  });

  test("never requeues a placement another host holds now", async () => {
    const store = new MemoryPlacements();
    store.put(queued({ state: PlacementState.Running, host: "h2", gen: 1 }));
    expect(await requeuePlacement(store, queued({ host: "h1" }), { host: "h1", gen: 0 })).toBe(false);
    expect(store.records.get("agent-1")?.value).toMatchObject({ host: "h2", gen: 1 });
    expect(requeue({ host: "h1", gen: 1 })(store.records.get("agent-1")?.value, 0)).toMatchObject({ ok: false, refusal: "not-owner" });
  });
});

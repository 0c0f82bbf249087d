/**
 * The placement state machine, with no server: every transition, legal and illegal, as hosts and
 * executors apply it (docs/HOSTS.md section 4).
 */
import { describe, expect, test } from "vitest";
import {
  PlacementState,
  Refusal,
  claim,
  complete,
  fail,
  completeQueued,
  failQueued,
  launch,
  placementFailure,
  reject,
  requeue,
} from "../../src/pool/placement.ts";
import type { Transition, TransitionResult } from "../../src/pool/placement.ts";
import { POOL_RECORD_VERSION } from "../../src/pool/records.ts";
import type { LaunchRequest, Placement } from "../../src/pool/records.ts";
import { toFailure } from "../../src/protocol/failure.ts";

const request: LaunchRequest = {
  v: POOL_RECORD_VERSION,
  uid: "agent-1",
  name: undefined,
  type: "Counter",
  chain: ["Counter", "Agent"],
  pool: "gpu",
  gen: 0,
  attempt: 0,
  args: new Uint8Array([0x81, 0x01]),
  config: {},
  maxRetries: 2,
  retryBackoffMs: 100,
  launchedAt: 1_000,
};

const boom = toFailure(new Error("boom"));
const NOW = 5_000;

function placement(fields: Partial<Placement> = {}): Placement {
  return { ...request, state: PlacementState.Queued, updatedAt: 1_000, ...fields };
}

/** The placement a transition produces (fails the test if it refuses). */
function apply(transition: Transition, current: Placement | undefined): Placement {
  const result = transition(current, NOW);
  if (!result.ok) throw new Error(`refused: ${result.refusal}`);
  return result.placement;
}

/** The refusal of a transition (fails the test if it applies). */
function refusal(transition: Transition, current: Placement | undefined): Refusal {
  const result: TransitionResult = transition(current, NOW);
  if (result.ok) throw new Error(`applied: ${JSON.stringify(result.placement.state)}`);
  expect(result.current).toBe(current);
  return result.refusal;
}

const running = (host: string, gen = 0, attempt = 0): Placement =>
  placement({ state: PlacementState.Running, host, lastHost: host, gen, attempt });

describe("launch (executor)", () => {
  test("a new agent is queued at generation 0", () => {
    expect(apply(launch(request), undefined)).toEqual({ ...request, state: PlacementState.Queued, updatedAt: NOW });
  });

  test.each([PlacementState.Completed, PlacementState.Failed])("a %s agent is queued again at the next generation, retries reset", (state) => {
    const stopped = placement({ state, gen: 3, attempt: 2, error: boom, lastHost: "h1" });
    const again = { ...request, args: new Uint8Array([0x80]), maxRetries: 5 };
    expect(apply(launch(again), stopped)).toEqual({
      ...again,
      state: PlacementState.Queued,
      gen: 4,
      attempt: 0,
      host: undefined,
      lastHost: "h1",
      error: undefined,
      updatedAt: NOW,
    });
  });

  test.each([PlacementState.Queued, PlacementState.Running, PlacementState.Retrying])("a %s agent is not launched twice", (state) => {
    expect(refusal(launch(request), placement({ state, host: state === PlacementState.Queued ? undefined : "h1" }))).toBe(
      Refusal.AlreadyPlaced,
    );
  });
});

describe("claim (host)", () => {
  test("queued at the request's generation → running on the host", () => {
    const queued = placement({ gen: 2, error: boom });
    expect(apply(claim({ ...request, gen: 2 }, "h1"), queued)).toEqual({
      ...queued,
      state: PlacementState.Running,
      host: "h1",
      lastHost: "h1",
      error: undefined,
      updatedAt: NOW,
    });
  });

  test("a request published without a placement creates it running", () => {
    expect(apply(claim(request, "h1"), undefined)).toMatchObject({ state: PlacementState.Running, host: "h1", lastHost: "h1", gen: 0 });
  });

  test("a duplicate request (same generation) loses: the agent is already running", () => {
    const first = apply(claim(request, "h1"), placement());
    expect(refusal(claim(request, "h2"), first)).toBe(Refusal.AlreadyPlaced);
    expect(refusal(claim(request, "h1"), first)).toBe(Refusal.AlreadyPlaced);
  });

  test("a request of an older or newer generation is stale", () => {
    expect(refusal(claim({ ...request, gen: 0 }, "h1"), placement({ gen: 1 }))).toBe(Refusal.StaleGeneration);
    expect(refusal(claim({ ...request, gen: 2 }, "h1"), placement({ gen: 1 }))).toBe(Refusal.StaleGeneration);
  });

  test("a stopped agent is not started by a late request", () => {
    expect(refusal(claim(request, "h1"), placement({ state: PlacementState.Completed }))).toBe(Refusal.AlreadyFinal);
    expect(refusal(claim(request, "h1"), placement({ state: PlacementState.Failed }))).toBe(Refusal.AlreadyFinal);
  });

  test("only a queued placement at the request's generation (or none) can be claimed", () => {
    const states = Object.values(PlacementState);
    for (const state of states) {
      for (const gen of [0, 1, 2]) {
        const current = placement({ state, gen, host: state === PlacementState.Queued || state === PlacementState.Completed ? undefined : "h0" });
        const result = claim({ ...request, gen: 1 }, "h1")(current, NOW);
        expect(result.ok, `${state} at gen ${gen}`).toBe(state === PlacementState.Queued && gen === 1);
      }
    }
  });
});

describe("the end of a run (host)", () => {
  test("complete: the holder records completed, without host or error", () => {
    expect(apply(complete({ host: "h1", gen: 0 }), running("h1"))).toMatchObject({
      state: PlacementState.Completed,
      host: undefined,
      error: undefined,
      lastHost: "h1",
    });
  });

  test("fail, retryable, retries left: retrying on the same host, one more attempt counted", () => {
    expect(apply(fail({ host: "h1", gen: 0 }, boom, true), running("h1", 0, 1))).toMatchObject({
      state: PlacementState.Retrying,
      host: "h1",
      gen: 0,
      attempt: 2,
      error: boom,
    });
  });

  test("fail with retries exhausted: failed for good, attempts unchanged", () => {
    expect(apply(fail({ host: "h1", gen: 3 }, boom, true), running("h1", 3, 2))).toMatchObject({
      state: PlacementState.Failed,
      host: undefined,
      attempt: 2,
      error: boom,
    });
  });

  test("fail, not retryable (a requested shutdown, a missing mailbox): failed even with retries left", () => {
    expect(apply(fail({ host: "h1", gen: 0 }, boom, false), running("h1"))).toMatchObject({ state: PlacementState.Failed, attempt: 0 });
  });

  test("maxRetries 0: the first failure is final", () => {
    expect(apply(fail({ host: "h1", gen: 0 }, boom, true), { ...running("h1"), maxRetries: 0 })).toMatchObject({
      state: PlacementState.Failed,
    });
  });

  test.each([
    ["complete", (h: string, gen: number) => complete({ host: h, gen })],
    ["fail", (h: string, gen: number) => fail({ host: h, gen }, boom, true)],
    ["requeue", (h: string, gen: number) => requeue({ host: h, gen })],
  ] as const)("%s by anyone but the holder of that generation is refused", (_name, make) => {
    expect(refusal(make("h2", 1), running("h1", 1))).toBe(Refusal.NotOwner);
    expect(refusal(make("h1", 0), running("h1", 1))).toBe(Refusal.StaleGeneration);
    expect(refusal(make("h1", 1), placement({ state: PlacementState.Completed, gen: 1 }))).toBe(Refusal.AlreadyFinal);
    expect(refusal(make("h1", 1), placement({ state: PlacementState.Failed, gen: 1 }))).toBe(Refusal.AlreadyFinal);
    expect(refusal(make("h1", 1), undefined)).toBe(Refusal.Missing);
    // Queued again by a reaper: the old holder's end is no longer its to record.
    expect(refusal(make("h1", 1), placement({ gen: 2 }))).toBe(Refusal.StaleGeneration);
  });
});

describe("requeue (drain, retry backoff over, reaping)", () => {
  test("drain: running → queued at the next generation, no host, attempts kept", () => {
    expect(apply(requeue({ host: "h1", gen: 4 }), running("h1", 4, 1))).toMatchObject({
      state: PlacementState.Queued,
      host: undefined,
      lastHost: "h1",
      gen: 5,
      attempt: 1,
    });
  });

  test("the end of a retry backoff: retrying → queued at the next generation, the error kept", () => {
    const retrying = apply(fail({ host: "h1", gen: 0 }, boom, true), running("h1"));
    expect(apply(requeue({ host: "h1", gen: 0 }), retrying)).toMatchObject({ state: PlacementState.Queued, gen: 1, attempt: 1, error: boom });
  });

  test("reaping a dead host: one reaper wins; the dead host's late writes and requests lose", () => {
    const held = running("dead", 0);
    const requeued = apply(requeue({ host: "dead", gen: 0 }), held);
    // A second reaper (or the sweep) acting on the same observation.
    expect(refusal(requeue({ host: "dead", gen: 0 }), requeued)).toBe(Refusal.StaleGeneration);
    // The dead host wakes up and records its agent's end: refused.
    expect(refusal(complete({ host: "dead", gen: 0 }), requeued)).toBe(Refusal.StaleGeneration);
    // The launch request of generation 0 delivered again: stale.
    expect(refusal(claim(request, "h2"), requeued)).toBe(Refusal.StaleGeneration);
    // The new request (generation 1) is claimed once.
    const restarted = apply(claim({ ...request, gen: 1 }, "h2"), requeued);
    expect(restarted).toMatchObject({ state: PlacementState.Running, host: "h2", gen: 1 });
    expect(refusal(claim({ ...request, gen: 1 }, "h3"), restarted)).toBe(Refusal.AlreadyPlaced);
  });

  test("a queued placement cannot be requeued (nobody holds it)", () => {
    expect(refusal(requeue({ host: "h1", gen: 0 }), placement())).toBe(Refusal.NotOwner);
  });
});

describe("rejected launches and terminated mailboxes", () => {
  test("reject: queued at the request's generation → failed with the error", () => {
    expect(apply(reject(request, boom), placement())).toMatchObject({ state: PlacementState.Failed, host: undefined, error: boom, gen: 0 });
  });

  test("reject without a placement creates it failed", () => {
    expect(apply(reject(request, boom), undefined)).toEqual({
      ...request,
      state: PlacementState.Failed,
      host: undefined,
      error: boom,
      updatedAt: NOW,
    });
  });

  test("reject leaves a placement at another generation, held by a host, or final alone", () => {
    expect(refusal(reject(request, boom), placement({ gen: 1 }))).toBe(Refusal.StaleGeneration);
    expect(refusal(reject(request, boom), running("h1"))).toBe(Refusal.AlreadyPlaced);
    expect(refusal(reject(request, boom), placement({ state: PlacementState.Completed }))).toBe(Refusal.AlreadyFinal);
  });

  test("a queued agent whose mailbox was terminated fails, at any generation", () => {
    expect(apply(failQueued(boom), placement({ gen: 7 }))).toMatchObject({ state: PlacementState.Failed, error: boom, gen: 7 });
    expect(refusal(failQueued(boom), running("h1"))).toBe(Refusal.AlreadyPlaced);
    expect(refusal(failQueued(boom), placement({ state: PlacementState.Retrying, host: "h1" }))).toBe(Refusal.AlreadyPlaced);
    expect(refusal(failQueued(boom), placement({ state: PlacementState.Failed }))).toBe(Refusal.AlreadyFinal);
    expect(refusal(failQueued(boom), undefined)).toBe(Refusal.Missing);
  });

  test("a queued agent that no host will start completes when its manager closes; one a host holds does not", () => {
    expect(apply(completeQueued(), placement({ gen: 3 }))).toMatchObject({ state: PlacementState.Completed, gen: 3 });
    expect(refusal(completeQueued(), running("h1"))).toBe(Refusal.AlreadyPlaced);
    expect(refusal(completeQueued(), placement({ state: PlacementState.Retrying, host: "h1" }))).toBe(Refusal.AlreadyPlaced);
    expect(refusal(completeQueued(), placement({ state: PlacementState.Failed }))).toBe(Refusal.AlreadyFinal);
    expect(refusal(completeQueued(), undefined)).toBe(Refusal.Missing);
  });
});

describe("a whole life", () => {
  test("maxRetries 2: three runs on any hosts, then failed; a relaunch starts over", () => {
    let p = apply(launch(request), undefined);
    const hosts = ["h1", "h2", "h1"];
    for (const [run, host] of hosts.entries()) {
      p = apply(claim({ ...request, gen: p.gen }, host), p);
      p = apply(fail({ host, gen: p.gen }, boom, true), p);
      if (run < 2) {
        expect(p).toMatchObject({ state: PlacementState.Retrying, attempt: run + 1 });
        p = apply(requeue({ host, gen: p.gen }), p);
      }
    }
    expect(p).toMatchObject({ state: PlacementState.Failed, gen: 2, attempt: 2, host: undefined });
    expect(refusal(claim({ ...request, gen: 2 }, "h3"), p)).toBe(Refusal.AlreadyFinal);
    expect(apply(launch(request), p)).toMatchObject({ state: PlacementState.Queued, gen: 3, attempt: 0, error: undefined });
  });

  test("a failure's stack is cut short in the placement", () => {
    const error = new Error("deep");
    error.stack = "x".repeat(10_000);
    const failure = placementFailure(error);
    expect(failure.stack?.length).toBe(4_001);
    expect(placementFailure(new Error("short")).message).toBe("short");
  });
});

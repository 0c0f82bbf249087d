/**
 * Runtime hosts as separate processes (`academy host`, through tsx) against a real nats-server:
 * placement across hosts, capacity, failover after kill -9, graceful drain, fast failure of
 * unknown types, dead-lettering of malformed launches, retries, and the listing commands.
 * Each test uses its own prefix, so every test has its own streams, buckets and pool.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterEach, describe, expect, test } from "vitest";
import {
  AgentAlreadyLaunchedError,
  AgentTerminatedError,
  HostPoolExecutor,
  MailboxStatus,
  Manager,
  NatsExchangeFactory,
  PlacementState,
  UnknownAgentTypeError,
  natsLayout,
} from "../../../src/index.ts";
import type { Handle, Placement } from "../../../src/index.ts";
import { NatsPoolBackend } from "../../../src/exchange/nats/nats-pool-backend.ts";
import { POOL_RECORD_VERSION } from "../../../src/pool/records.ts";
import type { LaunchRequest } from "../../../src/pool/records.ts";
import { encodeValue } from "../../../src/protocol/codec.ts";
import { defaultRuntimeConfig } from "../../../src/agent/runtime-config.ts";
import { AlwaysFailing, LoopHog, PoolCounter } from "../../fixtures/host-agents.ts";
import { runCli, runCliOk, spawnHost } from "../../support/host-process.ts";
import type { HostProcess, SpawnHostOptions } from "../../support/host-process.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

let serial = 0;
const hosts: HostProcess[] = [];

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.kill()));
});

/** Fast liveness for most tests; the failover test uses the defaults. */
const FAST = { heartbeatMs: 300, hostTtlMs: 1_500 } as const;

interface Pool {
  readonly prefix: string;
  readonly pool: string;
  readonly manager: Manager;
  readonly factory: NatsExchangeFactory;
  start(options?: Partial<SpawnHostOptions>): Promise<HostProcess>;
  placements(): Promise<Placement[]>;
}

async function pool(options: { maxRetries?: number } = {}): Promise<Pool & AsyncDisposable> {
  const prefix = `h${process.pid}_${++serial}`;
  const poolName = "workers";
  const factory = new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix });
  const manager = await Manager.fromExchangeFactory(factory, {
    executors: { workers: new HostPoolExecutor({ pool: poolName }) },
    maxRetries: options.maxRetries ?? 0,
    retryBackoffMs: 50,
  });
  return {
    prefix,
    pool: poolName,
    manager,
    factory,
    async start(extra = {}) {
      const host = await spawnHost({ servers: shared.nats.url, prefix, pool: poolName, ...FAST, ...extra });
      hosts.push(host);
      return host;
    },
    async placements() {
      return (await NatsPoolBackend.for(await factory.context())).listPlacements(poolName);
    },
    async [Symbol.asyncDispose]() {
      // Stop the agents while their hosts still run (close waits for them), but never hang here:
      // a failed test may have left agents that no host will stop.
      const closed = manager.close().catch(() => undefined);
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      await Promise.all(hosts.splice(0).map((h) => h.kill()));
    },
  };
}

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function launchAll(p: Pool, count: number): Promise<Array<Handle<PoolCounter>>> {
  return Promise.all(Array.from({ length: count }, (_, i) => p.manager.launch(PoolCounter, { executor: "workers", args: [i * 100] })));
}

describe("runtime hosts", () => {
  test("hosts of a pool share the launches, and agents get their arguments", async () => {
    await using p = await pool();
    const [a, b] = await Promise.all([p.start(), p.start()]);
    const handles = await launchAll(p, 20);
    const answers = await Promise.all(handles.map((h) => h.increment(1)));
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => i * 100 + 1));
    const pids = await Promise.all(handles.map((h) => h.where()));
    const byPid = new Map<number, number>();
    for (const pid of pids) byPid.set(pid, (byPid.get(pid) ?? 0) + 1);
    expect([...byPid.keys()].sort()).toEqual([a.child.pid, b.child.pid].sort());
    const placements = await p.placements();
    expect(new Set(placements.map((pl) => pl.host))).toEqual(new Set([a.hostId, b.hostId]));
    expect(placements.every((pl) => pl.state === PlacementState.Running)).toBe(true);
  });

  test("a host runs at most --capacity agents; the rest wait in the stream", async () => {
    await using p = await pool();
    await p.start({ capacity: 3 });
    const handles = await launchAll(p, 5);
    const states = async (): Promise<string[]> => (await p.placements()).map((pl) => pl.state).sort();
    await eventually(async () => ((await states()).join() === "queued,queued,running,running,running" ? true : undefined), 5_000, "3 running, 2 queued");
    const ctx = await p.factory.context();
    // A host acknowledges a request after its claim is written: wait for the last acks to land.
    const unacked = async (): Promise<number> => {
      const info = await ctx.jsm.consumers.info(ctx.layout.launchStream, ctx.layout.poolConsumer(p.pool));
      return info.num_pending + info.num_ack_pending;
    };
    await eventually(async () => ((await unacked()) <= 2 ? true : undefined), 5_000, "the claimed requests acknowledged");
    expect(await unacked()).toBe(2);
    // A freed slot takes the next launch.
    const placements = await p.placements();
    const running = placements.filter((pl) => pl.state === PlacementState.Running).map((pl) => pl.uid);
    const queued = placements.filter((pl) => pl.state === PlacementState.Queued).map((pl) => pl.uid);
    const byId = (uid: string): Handle<PoolCounter> => handles.find((h) => h.agentId.uid === uid)!;
    await Promise.all(running.map((uid) => byId(uid).increment()));
    // A request to a queued agent waits in its mailbox until the agent starts.
    const waiting = byId(queued[0]!).increment(7);
    await p.manager.shutdown(byId(running[0]!));
    await eventually(async () => ((await states()).join() === "completed,queued,running,running,running" ? true : undefined), 10_000, "one more running");
    await p.manager.shutdown(byId(running[1]!));
    expect(await waiting).toBe(handles.indexOf(byId(queued[0]!)) * 100 + 7);
    await eventually(async () => ((await states()).join() === "completed,completed,running,running,running" ? true : undefined), 10_000, "both queued running");
  });

  test("kill -9 of a host: its agents answer again under the same ids, requests sent meanwhile included", async () => {
    await using p = await pool();
    // Default liveness settings: this measures the failover users get.
    const DEFAULTS = { heartbeatMs: undefined, hostTtlMs: undefined };
    const victim = await p.start({ ...DEFAULTS, capacity: 20 });
    const handles = await launchAll(p, 20);
    expect(new Set(await Promise.all(handles.map((h) => h.where())))).toEqual(new Set([victim.child.pid]));
    const survivor = await p.start({ ...DEFAULTS, capacity: 20 });

    const killedAt = performance.now();
    await victim.kill();
    // Sent while the host is dead: they wait in the mailboxes.
    const during = handles.map((h) => h.increment(1000));
    const answered = await Promise.all(during.map((call) => call.then(() => performance.now())));
    const failoverMs = Math.max(...answered) - killedAt;
    console.log(`failover of 20 agents after kill -9 (default settings): ${(failoverMs / 1000).toFixed(2)} s`);
    expect(failoverMs).toBeLessThan(15_000);

    expect(await Promise.all(during)).toEqual(Array.from({ length: 20 }, (_, i) => i * 100 + 1000));
    expect(new Set(await Promise.all(handles.map((h) => h.where())))).toEqual(new Set([survivor.child.pid]));
    const placements = await p.placements();
    expect(placements.every((pl) => pl.host === survivor.hostId && pl.gen === 1)).toBe(true);
    expect(runCliOk(["hosts", "--servers", shared.nats.url, "--prefix", p.prefix, "--json"])).not.toContain(victim.hostId);
  });

  test("a host frozen past its time to live is reaped; when it wakes it stops its agents and rejoins under a new id", async () => {
    await using p = await pool();
    const frozen = await p.start();
    const handles = await launchAll(p, 4);
    await Promise.all(handles.map((h) => h.where()));
    const other = await p.start();
    frozen.signal("SIGSTOP"); // a long GC pause, or a network partition
    expect(new Set(await Promise.all(handles.map((h) => h.where())))).toEqual(new Set([other.child.pid]));
    frozen.signal("SIGCONT");
    await frozen.waitFor(/"msg":"host rejoined the pool"/, 10_000);
    const fenced = frozen.logs().find((l) => l.msg === "host fenced; stopping its agents and rejoining the pool")!;
    expect((fenced.err as { type: string }).type).toBe("HostFencedError");
    // Its old agents stopped there (mailboxes kept: they answer from the other host).
    await eventually(async () => (frozen.logs().filter((l) => l.msg === "agent stopped").length === 4 ? true : undefined), 5_000, "4 agents stopped");
    expect(await Promise.all(handles.map((h) => h.increment(1)))).toEqual([1, 101, 201, 301]);
    const rejoined = frozen.logs().find((l) => l.msg === "host rejoined the pool")!;
    const listed = JSON.parse(runCliOk(["hosts", "--servers", shared.nats.url, "--prefix", p.prefix, "--json"])) as Array<{ hostId: string }>;
    expect(listed.map((h) => h.hostId).sort()).toEqual([other.hostId, rejoined.hostId as string].sort());
  });

  // Spins of 0.8 ttl with a turn of the event loop between them: heartbeats written from the event
  // loop come about 1.6 ttl apart (the write of one turn is acknowledged in the next, and the
  // following heartbeat waits out the next spin), so the host is reaped; from the heartbeat thread,
  // the event loop is seen at every turn, well within a ttl, and the host is not.
  test.each([
    { mode: "the heartbeat thread", extra: [], reaped: false },
    { mode: "the event loop", extra: ["--no-heartbeat-thread"], reaped: true },
  ])("a host whose event loop is held by CPU-bound actions is reaped only when heartbeats come from $mode", async ({ extra, reaped }) => {
    await using p = await pool();
    const busy = await p.start({ extra });
    const hog = await p.manager.launch(LoopHog, { executor: "workers" });
    expect(await hog.where()).toBe(busy.child.pid);
    const peer = await p.start();
    expect(await hog.with({ timeoutMs: 30_000 }).spin(FAST.hostTtlMs * 0.8, 5)).toBe(busy.child.pid);
    const reapedBusy = (): boolean => peer.logs().some((l) => l.msg === "reaped a silent host; restarting its agents" && l.deadHost === busy.hostId);
    const fenced = (): boolean => busy.logs().some((l) => l.msg === "host fenced; stopping its agents and rejoining the pool");
    if (reaped) {
      // The peer's reaping check and the busy host's fencing come after the spins, when each gets
      // to it: on a loaded machine that can be later than a fixed wait.
      await eventually(async () => (reapedBusy() && fenced() ? true : undefined), 15_000, "the busy host reaped and fenced");
    } else {
      // Give the peer a reaping check after the last spin (the other case shows such a check finds it).
      await new Promise((resolve) => setTimeout(resolve, FAST.hostTtlMs));
    }
    expect({ reapedBusy: reapedBusy(), fenced: fenced() }).toEqual({ reapedBusy: reaped, fenced: reaped });
    if (!reaped) expect(await hog.where()).toBe(busy.child.pid);
  });

  test("a host whose event loop is stuck for longer than its ttl is reaped, although its heartbeat thread runs", async () => {
    await using p = await pool();
    const stuck = await p.start();
    const hog = await p.manager.launch(LoopHog, { executor: "workers" });
    const counters = await launchAll(p, 2);
    expect(new Set(await Promise.all([hog.where(), ...counters.map((c) => c.where())]))).toEqual(new Set([stuck.child.pid]));
    const other = await p.start();
    void hog.spin(FAST.hostTtlMs * 4, 1, stuck.child.pid).catch(() => undefined); // answered by nobody, or late
    // The stuck host is spinning (printed as the spin starts; no sleep: on a loaded machine the
    // request may not have reached the host yet, and the counters would answer from it).
    await stuck.waitFor(/"msg":"loop hog spinning"/, 15_000);
    // These requests reach the stuck host. The thread stops vouching for the event loop after a
    // ttl: the other host restarts the agents and answers them. The stuck host, revived, never runs
    // them: its readers find their mailboxes taken over, and its lease has lapsed (actions held
    // until it is fenced, then left in their mailboxes).
    expect(await Promise.all(counters.map((c) => c.where()))).toEqual([other.child.pid, other.child.pid]);
    await stuck.waitFor(/"msg":"host rejoined the pool"/, 15_000);
  });

  test("an agent whose mailbox was terminated while its host was down is not restarted", async () => {
    await using p = await pool();
    const victim = await p.start();
    const [kept, ended] = await launchAll(p, 2);
    await Promise.all([kept!.where(), ended!.where()]);
    await victim.kill();
    await p.manager.exchangeClient.terminate(ended!.agentId);
    const survivor = await p.start();
    expect(await kept!.where()).toBe(survivor.child.pid);
    const placement = await eventually(
      async () => (await p.placements()).find((pl) => pl.uid === ended!.agentId.uid && pl.state === PlacementState.Failed),
      10_000,
      "the terminated agent's placement to fail",
    );
    expect(placement.error?.type).toBe("AgentTerminatedError");
    await expect(p.manager.wait([ended!], { raiseError: true, timeoutMs: 5_000 })).rejects.toBeInstanceOf(AgentTerminatedError);
    expect(survivor.logs().filter((l) => l.msg === "agent starting" && l.agentId === ended!.agentId.uid)).toEqual([]);
  });

  test("SIGTERM drains a host: its agents move to another host and it exits 0", async () => {
    await using p = await pool();
    const leaving = await p.start({ graceMs: 20_000 });
    const handles = await launchAll(p, 6);
    expect(new Set(await Promise.all(handles.map((h) => h.where())))).toEqual(new Set([leaving.child.pid]));
    const staying = await p.start();
    // A request running when the drain starts is answered, not cancelled.
    const running = handles[0]!.slow(1_000);
    // Running, not only sent: a request still in the mailbox when the drain starts stays there.
    await leaving.waitFor(/"msg":"slow action running"/);
    leaving.signal("SIGTERM");
    expect(await running).toBe(leaving.child.pid);
    expect(await leaving.exited).toBe(0);
    expect(leaving.logs().some((l) => l.msg === "host drained and stopped")).toBe(true);
    expect(new Set(await Promise.all(handles.map((h) => h.where())))).toEqual(new Set([staying.child.pid]));
    expect(await handles[1]!.increment(1)).toBe(101);
    const placements = await p.placements();
    expect(placements.every((pl) => pl.host === staying.hostId && pl.gen === 1 && pl.attempt === 0)).toBe(true);
    // The manager still tracks them: shutting them down completes their waits.
    await Promise.all(handles.map((h) => p.manager.shutdown(h)));
    expect(p.manager.running()).toEqual([]);
  });

  test("a second SIGTERM forces the exit while agents are still busy", async () => {
    await using p = await pool();
    const host = await p.start({ graceMs: 60_000 });
    const [h] = await launchAll(p, 1);
    await h!.where();
    void h!.slow(30_000).catch(() => undefined);
    // Busy, not only sent: a host with nothing running drains at once and exits 0.
    await host.waitFor(/"msg":"slow action running"/);
    host.signal("SIGTERM");
    await host.waitFor(/"msg":"draining"/);
    host.signal("SIGTERM");
    expect(await host.exited).toBe(1);
  });

  test("the drain deadline (--grace-ms) forces the exit; the unfinished request runs again on another host", async () => {
    await using p = await pool();
    const host = await p.start({ graceMs: 1_000 });
    const [h] = await launchAll(p, 1);
    await h!.where();
    const slow = h!.slow(5_000);
    // Running, not only sent: a host with nothing running drains at once and exits 0.
    await host.waitFor(/"msg":"slow action running"/);
    const signalled = performance.now();
    host.signal("SIGTERM");
    expect(await host.exited).toBe(1);
    expect(performance.now() - signalled).toBeLessThan(4_000);
    expect(host.logs().some((l) => l.msg === "drain grace time passed: forcing exit; the pool restarts the remaining agents when this host is reaped")).toBe(true);
    // The request never got its answer from the old host: a new host runs it again.
    const next = await p.start();
    expect(await slow).toBe(next.child.pid);
  });

  test("a type no host of the pool can run fails fast with a typed error naming type and pool", async () => {
    await using p = await pool();
    await p.start();
    class NotOnHosts extends PoolCounter {}
    const started = performance.now();
    const error = await p.manager.launch(NotOnHosts, { executor: "workers" }).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(error).toBeInstanceOf(UnknownAgentTypeError);
    expect(error).toMatchObject({ agentType: "NotOnHosts", pool: "workers" });
    expect((error as Error).message).toMatch(/NotOnHosts.*workers|workers.*NotOnHosts/);
    // Nothing was left registered for it.
    expect(await p.manager.exchangeClient.discover(NotOnHosts)).toEqual([]);
  });

  test("a launch of an unknown type that reaches a host is rejected, dead-lettered, and its waiters get the error", async () => {
    await using p = await pool();
    const host = await p.start();
    const ctx = await p.factory.context();
    const store = await NatsPoolBackend.for(ctx);
    const registration = await p.manager.registerAgent(PoolCounter);
    const request: LaunchRequest = {
      ...launchRequest(registration.agentId.uid, p.pool),
      type: "Mystery",
      chain: ["Mystery", "Agent"],
    };
    await store.publishLaunch(request);
    const placement = await eventually(
      async () => (await p.placements()).find((pl) => pl.uid === request.uid && pl.state === PlacementState.Failed),
      10_000,
      "the placement to fail",
    );
    expect(placement.error).toMatchObject({ type: "UnknownAgentTypeError" });
    expect(await p.manager.exchangeClient.status(registration.agentId)).toBe(MailboxStatus.Terminated);
    const dead = await deadLetters(p.prefix, p.pool);
    expect(dead).toEqual([expect.objectContaining({ reason: "UNKNOWN_AGENT_TYPE" })]);
    expect(host.logs().some((l) => l.msg === "launch request rejected" && l.agentType === "Mystery")).toBe(true);
  });

  test("malformed launch requests are dead-lettered and the host keeps serving", async () => {
    await using p = await pool();
    const host = await p.start();
    const js = jetstream(shared.nc);
    const layout = natsLayout(p.prefix);
    const registration = await p.manager.registerAgent(PoolCounter);
    await js.publish(layout.launchSubject(p.pool, "garbage"), new Uint8Array([0xff, 0x00, 0x13]));
    await js.publish(layout.launchSubject(p.pool, "notalaunch"), encodeValue({ hello: "world" }));
    const badArgs = { ...launchRequest(registration.agentId.uid, p.pool), args: new Uint8Array([0xff]) };
    await js.publish(layout.launchSubject(p.pool, badArgs.uid), encodeValue(badArgs));
    const dead = await eventually(async () => {
      const found = await deadLetters(p.prefix, p.pool);
      return found.length === 3 ? found : undefined;
    }, 10_000, "three dead letters");
    expect(dead.map((d) => d.reason)).toEqual(["MALFORMED_MESSAGE", "MALFORMED_MESSAGE", "MALFORMED_MESSAGE"]);
    expect(dead.map((d) => d.subject)).toEqual([
      layout.launchSubject(p.pool, "garbage"),
      layout.launchSubject(p.pool, "notalaunch"),
      layout.launchSubject(p.pool, badArgs.uid),
    ]);
    // The host dead-letters a request before it fails the placement and terminates the mailbox.
    await expect.poll(() => p.manager.exchangeClient.status(registration.agentId), { timeout: 5_000 }).toBe(MailboxStatus.Terminated);
    // Still serving.
    const [h] = await launchAll(p, 1);
    expect(await h!.where()).toBe(host.child.pid);
    expect(host.child.exitCode).toBeNull();
  });

  test("a duplicated launch request starts the agent once; launching a running agent again is refused", async () => {
    await using p = await pool();
    const host = await p.start();
    const [h] = await launchAll(p, 1);
    await h!.where();
    const store = await NatsPoolBackend.for(await p.factory.context());
    const placement = (await p.placements())[0]!;
    // The same request again, past the stream's duplicate window (a different message id).
    await jetstream(shared.nc).publish(natsLayout(p.prefix).launchSubject(p.pool, placement.uid), encodeValue({ ...placement }), {
      msgID: "another-id",
    });
    await store.publishLaunch(placement);
    // Wait until the host has taken every request (a request is acknowledged just before its drop
    // is logged), instead of a fixed second that a loaded machine can overrun.
    const ctx = await p.factory.context();
    const unsettled = async (): Promise<number> => {
      const info = await ctx.jsm.consumers.info(ctx.layout.launchStream, ctx.layout.poolConsumer(p.pool));
      return info.num_pending + info.num_ack_pending;
    };
    const dropped = (): number => host.logs().filter((l) => l.msg === "launch request is a duplicate or stale; dropped").length;
    await eventually(async () => ((await unsettled()) === 0 && dropped() >= 1 ? true : undefined), 15_000, "the duplicate taken and dropped");
    expect(host.logs().filter((l) => l.msg === "agent starting")).toHaveLength(1);
    expect(host.logs().filter((l) => l.msg === "launch request is a duplicate or stale; dropped")).toHaveLength(1);
    const registration = { agentId: h!.agentId, agentType: { name: "PoolCounter", chain: ["PoolCounter", "Agent"] } };
    const other = await Manager.fromExchangeFactory(
      new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: p.prefix }),
      { executors: { workers: new HostPoolExecutor({ pool: p.pool }) } },
    );
    await expect(other.launch(PoolCounter, { executor: "workers", registration })).rejects.toBeInstanceOf(AgentAlreadyLaunchedError);
    await other.close();
  });

  test("a failing agent is retried up to maxRetries with backoff, then its mailbox is terminated and wait raises", async () => {
    await using p = await pool({ maxRetries: 2 });
    const [a, b] = await Promise.all([p.start(), p.start()]);
    const handle = await p.manager.launch(AlwaysFailing, { executor: "workers" });
    const error = await p.manager.wait([handle], { raiseError: true, timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe("startup failed on purpose");
    const starts = [...a.logs(), ...b.logs()].filter((l) => l.msg === "agent starting" && l.agentId === handle.agentId.uid);
    expect(starts.map((l) => l.attempt).sort()).toEqual([0, 1, 2]);
    expect(await p.manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Terminated);
    const placement = (await p.placements())[0]!;
    expect(placement).toMatchObject({ state: PlacementState.Failed, attempt: 2 });
    expect(p.manager.running()).toEqual([]);
  });

  test("academy hosts and academy agents list the pool", async () => {
    await using p = await pool();
    const host = await p.start({ name: "lister", capacity: 7 });
    const handles = await launchAll(p, 2);
    await Promise.all(handles.map((h) => h.where()));
    // The load a host record shows is written with each heartbeat: wait for the one that counts both.
    const backend = await NatsPoolBackend.for(await p.factory.context());
    await eventually(async () => ((await backend.getHost(host.hostId))?.value.load === 2 ? true : undefined), 10_000, "a heartbeat with load 2");
    const base = ["--servers", shared.nats.url, "--prefix", p.prefix];
    expect(JSON.parse(runCliOk(["hosts", ...base, "--json"]))).toEqual([
      expect.objectContaining({ hostId: host.hostId, name: "lister", pool: "workers", load: 2, capacity: 7, state: "serving" }),
    ]);
    const agentsJson = JSON.parse(runCliOk(["agents", ...base, "--pool", "workers", "--json"])) as Array<Record<string, unknown>>;
    expect(agentsJson.map((a) => a.agentId).sort()).toEqual(handles.map((h) => h.agentId.uid).sort());
    expect(agentsJson.every((a) => a.host === host.hostId && a.type === "PoolCounter" && a.status === "active")).toBe(true);
    const table = runCliOk(["hosts", ...base]);
    expect(table).toMatch(/^HOST\s+POOL\s+STATE\s+LOAD\s+HEARTBEAT/);
    expect(table).toContain("2/7");
    expect(runCliOk(["agents", ...base])).toContain(host.hostId);
    const usage = runCli(["host", ...base]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain("--pool");
  });
});

function launchRequest(uid: string, poolName: string): LaunchRequest {
  return {
    v: POOL_RECORD_VERSION,
    uid,
    type: "PoolCounter",
    chain: ["PoolCounter", "Agent"],
    pool: poolName,
    gen: 0,
    attempt: 0,
    args: encodeValue([5]),
    config: { ...defaultRuntimeConfig },
    maxRetries: 0,
    retryBackoffMs: 10,
    launchedAt: Date.now(),
  };
}

/** Dead letters of a pool's launch requests: reason code and original subject. */
async function deadLetters(prefix: string, poolName: string): Promise<Array<{ reason: string; subject: string }>> {
  const jsm = await jetstreamManager(shared.nc);
  const layout = natsLayout(prefix);
  const found: Array<{ reason: string; subject: string }> = [];
  for (let seq = 1; ; ) {
    const m = await jsm.streams
      .getMessage(layout.deadLetterStream, { seq, next_by_subj: layout.poolDeadLetterSubject(poolName) } as never)
      .catch(() => null);
    if (m === null) break;
    seq = m.seq + 1;
    found.push({ reason: m.header.get("Academy-Dead-Reason"), subject: m.header.get("Academy-Original-Subject") });
  }
  return found;
}

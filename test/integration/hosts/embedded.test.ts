/**
 * Hosts embedded in a program (`RuntimeHost.start` with classes), and the host-pool executor's
 * checks: a quicker loop than the child-process tests, on the same code.
 */
import { describe, expect, test } from "vitest";
import {
  AgentDefinitionError,
  AgentTerminatedError,
  HostPoolExecutor,
  InvalidConfigError,
  MailboxStatus,
  Manager,
  NatsExchangeFactory,
  PayloadTooLargeError,
  PlacementState,
} from "../../../src/index.ts";
import { HostState, RuntimeHost } from "../../../runtime/index.ts";
import { NatsPoolBackend } from "../../../src/exchange/nats/nats-pool-backend.ts";
import { POOL_RECORD_VERSION } from "../../../src/pool/records.ts";
import { encodeValue } from "../../../src/protocol/codec.ts";
import { PoolCounter, PoolRelay, PoolSpawner } from "../../fixtures/host-agents.ts";
import { natsForFile, startTestNats } from "../../support/nats.ts";
import type { Handle } from "../../../src/index.ts";

const shared = natsForFile();

let serial = 0;


function exchange(prefix: string): NatsExchangeFactory {
  return new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix });
}

describe("embedded runtime hosts", () => {
  test("the sweep restarts an agent placed on a host that no longer exists", async () => {
    const prefix = `e${process.pid}_${++serial}`;
    const factory = exchange(prefix);
    try {
      await using user = await factory.createUserClient();
      const { agentId, agentType } = await user.registerAgent(PoolCounter);
      // A placement left running by a host that is gone (its record too): no reaper saw it die.
      const store = await NatsPoolBackend.for(await factory.context());
      await store.createPlacement({
        v: POOL_RECORD_VERSION,
        uid: agentId.uid,
        name: undefined,
        type: agentType.name,
        chain: agentType.chain,
        pool: "swept",
        gen: 0,
        attempt: 0,
        args: encodeValue([7]),
        config: {},
        maxRetries: 0,
        retryBackoffMs: 100,
        launchedAt: Date.now() - 60_000,
        state: PlacementState.Running,
        host: "gone-0000",
        updatedAt: Date.now() - 60_000,
      });
      await using host = await RuntimeHost.start({
        pool: "swept",
        classes: [PoolCounter],
        exchange: { servers: shared.nats.url, prefix },
        heartbeatMs: 100,
        hostTtlMs: 300,
        sweepIntervalMs: 200,
      });
      await expect.poll(() => host.agentIds(), { timeout: 10_000 }).toEqual([agentId.uid]);
      expect(await user.getHandle(agentId).action("increment")).toBe(8);
      const placement = await store.getPlacement("swept", agentId.uid);
      expect(placement?.value).toMatchObject({ state: PlacementState.Running, host: host.hostId, gen: 1 });
    } finally {
      await factory.close();
    }
  });

  test("a drained host hands its agents to another host of the pool", async () => {
    const prefix = `e${process.pid}_${++serial}`;
    const options = { pool: "embedded", classes: [PoolCounter], heartbeatMs: 200, hostTtlMs: 1_000 };
    const first = await RuntimeHost.start({ ...options, exchange: { servers: shared.nats.url, prefix } });
    expect(first.state).toBe(HostState.Serving);
    await using manager = await Manager.fromExchangeFactory(exchange(prefix), {
      executors: { embedded: new HostPoolExecutor({ pool: "embedded" }) },
    });
    const a = await manager.launch(PoolCounter, { executor: "embedded", args: [10] });
    const b = await manager.launch(PoolCounter, { executor: "embedded", args: [20] });
    expect([await a.increment(), await b.increment()]).toEqual([11, 21]);
    expect(first.agentIds().sort()).toEqual([a.agentId.uid, b.agentId.uid].sort());

    await using second = await RuntimeHost.start({ ...options, exchange: { servers: shared.nats.url, prefix }, capacity: 1 });
    await first.drain();
    expect(first.state).toBe(HostState.Stopped);
    expect(first.agentIds()).toEqual([]);
    // The second host has room for one: one agent moves there, the other waits for capacity.
    await expect.poll(() => second.agentIds().length, { timeout: 5_000 }).toBe(1);
    const [moved, waiting] = second.agentIds()[0] === a.agentId.uid ? [a, b] : [b, a];
    // Rebuilt from its launch arguments on the new host (in-memory state does not move).
    expect(await moved.increment()).toBe(moved === a ? 11 : 21);
    await manager.shutdown(moved);
    await expect.poll(() => second.agentIds(), { timeout: 5_000 }).toEqual([waiting.agentId.uid]);
    expect(await waiting.increment(5)).toBe(waiting === a ? 15 : 25);
    // Close the manager while a host still runs its agent (close waits for it to stop).
    await manager.close();
  });

  test("a lone host that loses NATS past its time to live fences itself, then restarts its own agents", async () => {
    await using own = await startTestNats();
    const prefix = `e${process.pid}_${++serial}`;
    const servers = own.url;
    await using host = await RuntimeHost.start({
      pool: "lone",
      classes: [PoolCounter],
      heartbeatMs: 200,
      hostTtlMs: 1_000,
      exchange: { servers, prefix, retryWindowMs: 30_000 },
    });
    await using manager = await Manager.fromExchangeFactory(
      new NatsExchangeFactory({ servers, prefix, retryWindowMs: 30_000 }),
      { executors: { lone: new HostPoolExecutor({ pool: "lone" }) } },
    );
    const counter = await manager.launch(PoolCounter, { executor: "lone", args: [40] });
    expect(await counter.increment()).toBe(41);
    const before = host.hostId;
    await own.server!.stop();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await own.server!.start();
    // Fenced (new id), then it reaped its own old record and took its agent back, rebuilt.
    await expect.poll(() => host.hostId, { timeout: 10_000 }).not.toBe(before);
    await expect.poll(() => host.agentIds(), { timeout: 10_000 }).toEqual([counter.agentId.uid]);
    expect(await counter.increment()).toBe(41);
    await manager.close();
  });

  test("launchBatch on a pool: a ring whose nodes got each other's handles; agentLaunchAlongside on a host", async () => {
    const prefix = `e${process.pid}_${++serial}`;
    await using host = await RuntimeHost.start({
      pool: "ring",
      classes: [PoolRelay, PoolSpawner, PoolCounter],
      exchange: { servers: shared.nats.url, prefix },
    });
    await using manager = await Manager.fromExchangeFactory(exchange(prefix), {
      executors: { ring: new HostPoolExecutor({ pool: "ring" }) },
    });
    const ring = await manager.launchBatch(
      [0, 1, 2].map((i) => ({ agent: PoolRelay, executor: "ring", args: (h: readonly Handle[]) => [h[(i + 1) % 3]] })),
    );
    const uids = ring.map((h) => h.agentId.uid);
    expect(await (ring[0] as Handle<PoolRelay>).pass(4)).toEqual([uids[0], uids[1], uids[2], uids[0], uids[1]]);
    expect(host.agentIds().sort()).toEqual([...uids].sort());

    const spawner = await manager.launch(PoolSpawner, { executor: "ring" });
    const child = await spawner.spawn(40);
    expect(await child.increment()).toBe(41);
    // The child runs beside its parent: it is no placement of the pool, and takes no slot.
    expect(host.agentIds()).not.toContain(child.agentId.uid);
    await manager.shutdown(spawner);
    expect(await manager.exchangeClient.status(child.agentId)).toBe(MailboxStatus.Terminated);
  });

  test("the executor checks what it is given", async () => {
    const pool = new HostPoolExecutor({ pool: "checks" });
    await using local = await Manager.fromExchangeFactory(undefined, { executors: { checks: pool } });
    await expect(local.launch(PoolCounter, { executor: "checks" })).rejects.toBeInstanceOf(InvalidConfigError);
    const prefix = `e${process.pid}_${++serial}`;
    const manager = await Manager.fromExchangeFactory(exchange(prefix), {
      executors: { checks: new HostPoolExecutor({ pool: "checks" }) },
    });
    await expect(manager.launch(new PoolCounter(), { executor: "checks" })).rejects.toBeInstanceOf(AgentDefinitionError);
    // Arguments larger than the server takes: a typed error, and no mailbox left behind.
    const huge = new Uint8Array(2 * 1024 * 1024);
    await expect(manager.launch(PoolCounter, { executor: "checks", args: [huge] })).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(await manager.exchangeClient.discover(PoolCounter)).toEqual([]);
    expect(manager.running()).toEqual([]);
    expect(() => new HostPoolExecutor({ pool: "no.dots" })).toThrow(InvalidConfigError);
    // One agent, one pool: a second manager cannot start it on another pool while it is placed.
    const queued = await manager.launch(PoolCounter, { executor: "checks" }); // no hosts: it waits
    await using second = await Manager.fromExchangeFactory(exchange(prefix), {
      executors: { other: new HostPoolExecutor({ pool: "other" }) },
    });
    const registration = { agentId: queued.agentId, agentType: { name: "PoolCounter", chain: ["PoolCounter", "Agent"] } };
    await expect(second.launch(PoolCounter, { executor: "other", registration })).rejects.toThrow(/already queued on pool 'checks'/);
    // Terminating a queued agent's mailbox ends it: no host will ever run it.
    await manager.exchangeClient.terminate(queued.agentId);
    await expect(manager.wait([queued], { raiseError: true, timeoutMs: 5_000 })).rejects.toBeInstanceOf(AgentTerminatedError);
    await expect(manager.close()).rejects.toBeInstanceOf(AgentTerminatedError); // close raises agents' errors
    await expect(RuntimeHost.start({ pool: "x", exchange: { servers: shared.nats.url, prefix } })).rejects.toBeInstanceOf(InvalidConfigError);
    await expect(RuntimeHost.start({ pool: "x", classes: [PoolCounter], heartbeatMs: 1000, hostTtlMs: 1500 })).rejects.toThrow(
      /at least twice/,
    );
  });
});

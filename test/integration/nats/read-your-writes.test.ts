/**
 * Reads that must see the caller's own writes, on a 3-node cluster with 3 replicas.
 *
 * A KV `get` of nats.js is a direct get when the bucket allows it, and any replica may answer one,
 * including a follower that has not yet applied a write the leader has acknowledged. A client
 * connected to such a follower is the worst case (the server prefers its own replica for a direct
 * get), so the factories under test connect to a follower of the bucket they read. Each test
 * repeats a write followed at once by the read that depends on it; before reads went to the stream
 * leader, about 2 to 5 in 100 of these reads missed the write on this machine (measured: 5 of 200
 * `createUserClient` calls failed with `BadEntityIdError`), so a few hundred repetitions fail with
 * near certainty, and the tests pass only if no read misses.
 */
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MailboxStatus, NatsExchangeFactory, UserId, natsLayout } from "../../../src/index.ts";
import type { NatsCluster } from "../../../src/testing/index.ts";
import { PlacementState } from "../../../src/pool/placement.ts";
import { POOL_RECORD_VERSION } from "../../../src/pool/records.ts";
import type { HostRecord, Placement } from "../../../src/pool/records.ts";
import { resolveRuntimeConfig } from "../../../src/agent/runtime-config.ts";
import { encodeValue } from "../../../src/protocol/codec.ts";
import { Counter } from "../../fixtures/agents.ts";
import { startTestNatsCluster } from "../../support/nats.ts";

const PREFIX = "ryw";
/** Concurrent writers: more writes in flight make a lagging follower more likely. */
const WORKERS = 8;

let cluster: NatsCluster;
const factories: NatsExchangeFactory[] = [];

beforeAll(async () => {
  cluster = await startTestNatsCluster();
  const provisioner = new NatsExchangeFactory({ servers: cluster.urls, replicas: 3, prefix: PREFIX });
  factories.push(provisioner);
  await (await provisioner.poolBackend()).listHosts();
}, 90_000);

afterAll(async () => {
  for (const factory of factories) await factory.close();
  await cluster?.[Symbol.asyncDispose]();
});

/** A factory connected only to a follower of `stream`. */
async function followerFactory(stream: string): Promise<NatsExchangeFactory> {
  const nc = await connect({ servers: cluster.urls });
  const leader = (await (await jetstreamManager(nc)).streams.info(stream)).cluster?.leader;
  await nc.close();
  const follower = cluster.servers.find((s) => s.serverName !== leader)!;
  const factory = new NatsExchangeFactory({ servers: follower.url, replicas: 3, prefix: PREFIX });
  factories.push(factory);
  return factory;
}

/** Run `step(i)` for i in [0, n) on {@link WORKERS} concurrent loops; count the steps that return false. */
async function countMisses(n: number, step: (i: number) => Promise<boolean>): Promise<number> {
  let misses = 0;
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, worker) => {
      for (let i = worker; i < n; i += WORKERS) if (!(await step(i))) misses++;
    }),
  );
  return misses;
}

describe("reads that must see the caller's own writes go to the stream leader (3 replicas)", () => {
  test("a new user client always finds its own fresh registration", { timeout: 120_000 }, async () => {
    const factory = await followerFactory(`KV_${natsLayout(PREFIX).registryBucket}`);
    const failures: unknown[] = [];
    const misses = await countMisses(200, async () => {
      try {
        await factory.createUserClient();
        return true;
      } catch (error) {
        failures.push(error);
        return false;
      }
    });
    expect(failures).toEqual([]);
    expect(misses).toBe(0);
  });

  test("the status of a just-registered mailbox is active, and of a just-terminated one terminated", { timeout: 120_000 }, async () => {
    const factory = await followerFactory(`KV_${natsLayout(PREFIX).registryBucket}`);
    const client = await factory.createUserClient();
    const { registry } = await factory.context();
    const misses = await countMisses(1000, async () => {
      // The registration a new user client makes (one KV create), then the status any client reads.
      const id = UserId.create();
      await registry.registerUser(id);
      if ((await client.status(id)) !== MailboxStatus.Active) return false;
      await client.terminate(id);
      return (await client.status(id)) === MailboxStatus.Terminated;
    });
    expect(misses).toBe(0);
  });

  test("a host reads the registration and the placement a manager has just written", { timeout: 120_000 }, async () => {
    const layout = natsLayout(PREFIX);
    const writer = await (await followerFactory(`KV_${layout.placementsBucket}`)).poolBackend();
    const reader = await (await followerFactory(`KV_${layout.placementsBucket}`)).poolBackend();
    const client = await factories[0]!.createUserClient();
    const misses = await countMisses(400, async (i) => {
      const { agentId } = await client.registerAgent(Counter);
      if ((await reader.mailboxStatus(agentId.uid)) !== MailboxStatus.Active) return false;
      const placement: Placement = {
        v: POOL_RECORD_VERSION,
        uid: agentId.uid,
        type: "Counter",
        chain: ["Counter", "Agent"],
        pool: "p",
        gen: 0,
        attempt: 0,
        args: encodeValue([i]),
        config: resolveRuntimeConfig({}),
        maxRetries: 0,
        retryBackoffMs: 100,
        launchedAt: Date.now(),
        state: PlacementState.Queued,
        updatedAt: Date.now(),
      };
      const created = await writer.createPlacement(placement);
      const read = await reader.getPlacement("p", agentId.uid);
      return created !== undefined && read?.revision === created.revision;
    });
    expect(misses).toBe(0);
  });

  test("a host's record is found right after it is written", { timeout: 120_000 }, async () => {
    const backend = await (await followerFactory(`KV_${natsLayout(PREFIX).hostsBucket}`)).poolBackend();
    const misses = await countMisses(400, async (i) => {
      const hostId = `h-${i}`;
      const now = Date.now();
      const record: HostRecord = {
        v: POOL_RECORD_VERSION,
        hostId,
        name: hostId,
        pool: "p",
        hostname: "test",
        pid: process.pid,
        capacity: 1,
        load: 0,
        types: ["Counter"],
        startedAt: now,
        heartbeatAt: now,
        heartbeatMs: 2000,
        ttlMs: 6000,
        draining: false,
        version: "test",
      };
      await backend.createHost(record);
      return (await backend.getHost(hostId)) !== undefined;
    });
    expect(misses).toBe(0);
  });
});

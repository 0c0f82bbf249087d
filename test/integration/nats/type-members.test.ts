/**
 * Layout 2 of the type index: the member lists of each concrete type, what a cold discover reads
 * (one key per shard of each matching type, whatever the number of agents), checked against the
 * registry in one request. Lists are kept by compare-and-set from many processes at once, in a
 * bucket of their own (never mirrored by other sites), garbage written over them is ignored, and a
 * deployment of layout 1, or of the version that kept the lists in the types bucket, is migrated
 * at provisioning.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import { ExchangeNotFoundError, NatsExchangeFactory, natsLayout } from "../../../src/index.ts";
import { decodeValue, encodeValue } from "../../../src/protocol/codec.ts";
import { LAYOUT_READY_KEY, TYPE_CATALOG_KEY, decodeMembers, encodeMembers, memberListKey, memberListKeys } from "../../../src/exchange/nats/type-members.ts";
import { MIRROR_SAFE_KEY } from "../../../src/exchange/nats/nats-registry.ts";
import { Counter, FastCounter, Recorder } from "../../fixtures/agents.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();



const sorted = (ids: ReadonlyArray<{ uid: string }>): string[] => ids.map((id) => id.uid).sort();
let prefixes = 0;
const options = () => ({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `members${process.pid}_${prefixes++}` });

/** Every member of a concrete type's lists, read from the lists bucket (or `bucket`). */
async function listed(prefix: string, type: string, bucket = natsLayout(prefix).memberListsBucket): Promise<string[]> {
  const lists = await new Kvm(jetstream(shared.nc)).open(bucket);
  const uids: string[] = [];
  for (const key of memberListKeys(type)) {
    const entry = await lists.get(key);
    if (entry !== null && entry.operation === "PUT") uids.push(...(decodeMembers(entry.value) ?? []).map((m) => m.uid));
  }
  return uids.sort();
}

describe("type index member lists", () => {
  test("two processes registering 150 agents of one type at once: every one is listed once, and a fresh process discovers them all", async () => {
    const opts = options();
    const [a, b] = [new NatsExchangeFactory(opts), new NatsExchangeFactory(opts)];
    const [ca, cb] = await Promise.all([a.createUserClient(), b.createUserClient()]);
    const registered = await Promise.all(
      Array.from({ length: 150 }, (_, i) => ((i % 2 === 0 ? ca : cb).registerAgent(i % 3 === 0 ? FastCounter : Counter))),
    );
    const counters = registered.filter((r) => r.agentType.name === "Counter");
    const fast = registered.filter((r) => r.agentType.name === "FastCounter");
    expect(await listed(opts.prefix, "Counter")).toEqual(sorted(counters.map((r) => r.agentId)));
    expect(await listed(opts.prefix, "FastCounter")).toEqual(sorted(fast.map((r) => r.agentId)));

    const reader = new NatsExchangeFactory(opts);
    const fresh = await reader.createUserClient();
    expect(sorted(await fresh.discover(Counter))).toEqual(sorted(registered.map((r) => r.agentId)));
    const other = new NatsExchangeFactory(opts);
    const exact = await (await other.createUserClient()).discover(Counter, { allowSubclasses: false });
    expect(sorted(exact)).toEqual(sorted(counters.map((r) => r.agentId)));
    for (const factory of [a, b, reader, other]) await factory.close();
  });

  test("a terminated agent leaves its list at once, and a member whose record changed since is not returned", async () => {
    const opts = options();
    const writer = new NatsExchangeFactory(opts);
    const client = await writer.createUserClient();
    const live = await client.registerAgent(Counter, { name: "kept" });
    const terminated = await client.registerAgent(Counter);
    const stale = await client.registerAgent(Counter);
    await client.terminate(terminated.agentId);
    expect(await listed(opts.prefix, "Counter")).toEqual(sorted([live.agentId, stale.agentId]));
    // A record marked terminated behind the library's back (as an index write racing a termination
    // leaves a member behind): its member stays listed, with the revision of the old record.
    const registry = await new Kvm(jetstream(shared.nc)).open(natsLayout(opts.prefix).registryBucket);
    const entry = (await registry.get(stale.agentId.uid))!;
    await registry.update(stale.agentId.uid, encodeValue({ ...(decodeValue(entry.value) as object), status: "terminated", terminatedAt: Date.now() }), entry.revision);
    expect(await listed(opts.prefix, "Counter")).toContain(stale.agentId.uid);

    const reader = new NatsExchangeFactory(opts);
    const found = await (await reader.createUserClient()).discover(Counter);
    expect(sorted(found)).toEqual([live.agentId.uid]);
    expect(found[0]!.name).toBe("kept");
    for (const factory of [writer, reader]) await factory.close();
  });

  test("garbage over the lists and the catalog is ignored, and the next registration replaces a garbled list", async () => {
    const opts = options();
    const writer = new NatsExchangeFactory(opts);
    const client = await writer.createUserClient();
    const counter = await client.registerAgent(Counter);
    const recorder = await client.registerAgent(Recorder);
    const types = await new Kvm(jetstream(shared.nc)).open(natsLayout(opts.prefix).memberListsBucket);
    const registryInfo = await (await jetstreamManager(shared.nc)).streams.info(`KV_${natsLayout(opts.prefix).registryBucket}`);
    const someRevision = registryInfo.state.last_seq;
    // Members that are not the library's: in a shard that is not their uid's, with revisions the
    // registry never reached, with no record at all; a list that is not CBOR; a catalog entry whose
    // ancestry lies about its type.
    const wrongShard = memberListKeys("Counter").find((key) => key !== memberListKey("Counter", recorder.agentId.uid))!;
    const ownKey = memberListKey("Counter", counter.agentId.uid);
    const current = decodeMembers((await types.get(ownKey))!.value)!;
    await types.put(ownKey, encodeMembers([...current, { uid: randomUUID(), revision: someRevision + 1000 }]));
    if (wrongShard !== ownKey) await types.put(wrongShard, encodeMembers([{ uid: recorder.agentId.uid, revision: 1 }]));
    const garbled = memberListKeys("Counter").find((key) => key !== ownKey && key !== wrongShard)!;
    await types.put(garbled, new Uint8Array([0xff, 0x00, 0x13]));
    const catalog = decodeValue((await types.get(TYPE_CATALOG_KEY))!.value) as Record<string, string[]>;
    await types.put(TYPE_CATALOG_KEY, encodeValue({ ...catalog, Recorder: ["Counter", "Agent"], Bogus: 7 }));

    const reader = new NatsExchangeFactory(opts);
    expect(sorted(await (await reader.createUserClient()).discover(Counter))).toEqual([counter.agentId.uid]);

    // Registrations until one lands in the garbled shard: the list is made anew there.
    let landed: string | undefined;
    for (let i = 0; i < 400 && landed === undefined; i++) {
      const r = await client.registerAgent(Counter);
      if (memberListKey("Counter", r.agentId.uid) === garbled) landed = r.agentId.uid;
    }
    expect(landed).toBeDefined();
    expect(decodeMembers((await types.get(garbled))!.value)!.map((m) => m.uid)).toEqual([landed]);
    for (const factory of [writer, reader]) await factory.close();
  });

  test("a deployment of layout 1 (per-uid keys only) is still discovered, and provisioning builds its lists", async () => {
    const opts = options();
    const writer = new NatsExchangeFactory(opts);
    const client = await writer.createUserClient();
    const agents = await Promise.all(Array.from({ length: 20 }, (_, i) => client.registerAgent(i % 2 === 0 ? Counter : FastCounter, { name: `n${i}` })));
    const gone = await client.registerAgent(Counter);
    await client.terminate(gone.agentId);
    await writer.close();
    const jsm = await jetstreamManager(shared.nc);
    const lists = `KV_${natsLayout(opts.prefix).memberListsBucket}`;
    // What an earlier version left: the per-uid keys, no lists bucket.
    await jsm.streams.delete(lists);

    // Without provisioning, a deployment with no lists bucket is not opened: a provisioning process
    // (or the operator) must make the bucket and build the lists first.
    const unprovisioned = new NatsExchangeFactory({ ...opts, provision: false });
    await expect(unprovisioned.createUserClient()).rejects.toThrow(ExchangeNotFoundError);
    await unprovisioned.close();

    // With the bucket made but its lists not built yet (not marked ready), a process that does not
    // provision writes nothing there: discover reads the per-uid keys.
    await new Kvm(jetstream(shared.nc)).create(natsLayout(opts.prefix).memberListsBucket, { history: 1 });
    const readOnly = new NatsExchangeFactory({ ...opts, provision: false });
    expect(sorted(await (await readOnly.createUserClient()).discover(Counter))).toEqual(sorted(agents.map((r) => r.agentId)));
    expect((await jsm.streams.info(lists)).state.messages).toBe(0);
    await readOnly.close();

    // A provisioning process builds the lists from the per-uid keys and their records, then marks them ready.
    const upgraded = new NatsExchangeFactory(opts);
    await upgraded.createUserClient();
    expect(await listed(opts.prefix, "Counter")).toEqual(sorted(agents.filter((r) => r.agentType.name === "Counter").map((r) => r.agentId)));
    const ready = await new Kvm(jetstream(shared.nc)).open(natsLayout(opts.prefix).memberListsBucket);
    expect((await ready.get(LAYOUT_READY_KEY))?.operation).toBe("PUT");
    await upgraded.close();

    const reader = new NatsExchangeFactory(opts);
    const found = await (await reader.createUserClient()).discover(Counter);
    expect(sorted(found)).toEqual(sorted(agents.map((r) => r.agentId)));
    expect(new Set(found.map((id) => id.name))).toEqual(new Set(agents.map((r) => r.agentId.name)));
    await reader.close();
  });

  test("a deployment of the version that kept the lists in the types bucket: provisioning builds them in their own bucket and removes the old keys, which nothing reads", async () => {
    const opts = options();
    const layout = natsLayout(opts.prefix);
    const writer = new NatsExchangeFactory(opts);
    const client = await writer.createUserClient();
    const agents = await Promise.all(Array.from({ length: 12 }, (_, i) => client.registerAgent(i % 3 === 0 ? FastCounter : Counter, { name: `m${i}` })));
    const recorder = await client.registerAgent(Recorder);
    const gone = await client.registerAgent(Counter);
    await client.terminate(gone.agentId);
    await writer.close();

    // The previous version's shape: the catalog, lists and marker in the types bucket (copied from
    // the lists bucket), no lists bucket.
    const kvm = new Kvm(jetstream(shared.nc));
    const [types, lists] = await Promise.all([kvm.open(layout.typesBucket), kvm.open(layout.memberListsBucket)]);
    const oldKeys: string[] = [];
    for await (const key of await lists.keys()) {
      if (key === MIRROR_SAFE_KEY) continue; // this version's own marker, which that one never wrote
      await types.put(key, (await lists.get(key))!.value);
      oldKeys.push(key);
    }
    expect(oldKeys).toEqual(expect.arrayContaining([LAYOUT_READY_KEY, TYPE_CATALOG_KEY]));
    // A stale list there that the new code must never read: the recorder (of another type, its
    // record current, so the revision check alone would keep it) filed as a Counter in its shard.
    const recorderShard = memberListKey("Counter", recorder.agentId.uid);
    const stale = decodeMembers((await types.get(recorderShard))?.value ?? encodeMembers([])) ?? [];
    const recorderRevision = (await (await kvm.open(layout.registryBucket)).get(recorder.agentId.uid))!.revision;
    await types.put(recorderShard, encodeMembers([...stale, { uid: recorder.agentId.uid, revision: recorderRevision }]));
    const jsm = await jetstreamManager(shared.nc);
    await jsm.streams.delete(`KV_${layout.memberListsBucket}`);
    const v2Subjects = async (): Promise<string[]> =>
      Object.keys((await jsm.streams.info(`KV_${layout.typesBucket}`, { subjects_filter: `$KV.${layout.typesBucket}.v2.>` })).state.subjects ?? {});
    expect((await v2Subjects()).length).toBeGreaterThan(2);

    // A provisioning process of this version: lists built in their own bucket from the per-uid keys.
    const upgraded = new NatsExchangeFactory(opts);
    await upgraded.createUserClient();
    const counters = agents.filter((r) => r.agentType.name === "Counter").map((r) => r.agentId);
    expect(await listed(opts.prefix, "Counter")).toEqual(sorted(counters));
    expect(await listed(opts.prefix, "FastCounter")).toEqual(sorted(agents.filter((r) => r.agentType.name === "FastCounter").map((r) => r.agentId)));
    expect((await (await kvm.open(layout.memberListsBucket)).get(LAYOUT_READY_KEY))?.operation).toBe("PUT");
    // The old keys are gone from the types bucket; its per-uid keys are all there.
    expect(await v2Subjects()).toEqual([]);
    for (const { agentId } of agents) expect((await types.get(`Counter.${agentId.uid}`))?.operation).toBe("PUT");
    await upgraded.close();

    // A fresh process discovers from the new lists: every agent, and neither the recorder filed
    // under Counter nor the terminated agent.
    const reader = new NatsExchangeFactory(opts);
    const fresh = await reader.createUserClient();
    expect(sorted(await fresh.discover(Counter))).toEqual(sorted(agents.map((r) => r.agentId)));
    const other = new NatsExchangeFactory(opts);
    expect(sorted(await (await other.createUserClient()).discover(Counter, { allowSubclasses: false }))).toEqual(sorted(counters));
    await other.close();
    await reader.close();

    // An old key written again (a process of the previous version still running) is removed by the
    // next provisioning process; with none left, provisioning finds nothing to remove.
    await types.put(TYPE_CATALOG_KEY, (await (await kvm.open(layout.memberListsBucket)).get(TYPE_CATALOG_KEY))!.value);
    const again = new NatsExchangeFactory(opts);
    await again.createUserClient();
    await again.close();
    expect(await v2Subjects()).toEqual([]);
  });
});

/**
 * Layout 2 of the type index: the member lists of each concrete type, what a cold discover reads
 * (one key per shard of each matching type, whatever the number of agents), checked against the
 * registry in one request. Lists are kept by compare-and-set from many processes at once, garbage
 * written over them is ignored, and a bucket of layout 1 is migrated at provisioning.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import { NatsExchangeFactory, natsLayout } from "../../../src/index.ts";
import { decodeValue, encodeValue } from "../../../src/protocol/codec.ts";
import { LAYOUT_READY_KEY, TYPE_CATALOG_KEY, decodeMembers, encodeMembers, memberListKey, memberListKeys } from "../../../src/exchange/nats/type-members.ts";
import { Counter, FastCounter, Recorder } from "../../fixtures/agents.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();



const sorted = (ids: ReadonlyArray<{ uid: string }>): string[] => ids.map((id) => id.uid).sort();
let prefixes = 0;
const options = () => ({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `members${process.pid}_${prefixes++}` });

/** Every member of a concrete type's lists, read from the bucket. */
async function listed(prefix: string, type: string): Promise<string[]> {
  const types = await new Kvm(jetstream(shared.nc)).open(natsLayout(prefix).typesBucket);
  const uids: string[] = [];
  for (const key of memberListKeys(type)) {
    const entry = await types.get(key);
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
    const types = await new Kvm(jetstream(shared.nc)).open(natsLayout(opts.prefix).typesBucket);
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

  test("a bucket of layout 1 (per-uid keys only) is still discovered, and provisioning builds its lists", async () => {
    const opts = options();
    const writer = new NatsExchangeFactory(opts);
    const client = await writer.createUserClient();
    const agents = await Promise.all(Array.from({ length: 20 }, (_, i) => client.registerAgent(i % 2 === 0 ? Counter : FastCounter, { name: `n${i}` })));
    const gone = await client.registerAgent(Counter);
    await client.terminate(gone.agentId);
    await writer.close();
    // What an earlier version left: the per-uid keys, no lists, no catalog, no marker.
    const bucket = natsLayout(opts.prefix).typesBucket;
    const jsm = await jetstreamManager(shared.nc);
    await jsm.streams.purge(`KV_${bucket}`, { filter: `$KV.${bucket}.v2.>` });
    expect(await listed(opts.prefix, "Counter")).toEqual([]);

    // Without provisioning nothing is written: discover reads the per-uid keys.
    const readOnly = new NatsExchangeFactory({ ...opts, provision: false });
    expect(sorted(await (await readOnly.createUserClient()).discover(Counter))).toEqual(sorted(agents.map((r) => r.agentId)));
    expect((await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `$KV.${bucket}.v2.>` })).state.subjects).toBeUndefined();
    await readOnly.close();

    // A provisioning process builds the lists from the per-uid keys and their records, then marks them ready.
    const upgraded = new NatsExchangeFactory(opts);
    await upgraded.createUserClient();
    expect(await listed(opts.prefix, "Counter")).toEqual(sorted(agents.filter((r) => r.agentType.name === "Counter").map((r) => r.agentId)));
    const types = await new Kvm(jetstream(shared.nc)).open(bucket);
    expect((await types.get(LAYOUT_READY_KEY))?.operation).toBe("PUT");
    await upgraded.close();

    const reader = new NatsExchangeFactory(opts);
    const found = await (await reader.createUserClient()).discover(Counter);
    expect(sorted(found)).toEqual(sorted(agents.map((r) => r.agentId)));
    expect(new Set(found.map((id) => id.name))).toEqual(new Set(agents.map((r) => r.agentId.name)));
    await reader.close();
  });
});

/**
 * Discovery in a fresh process (the cold path, before its registry view has loaded) reads the type
 * index, which is only a hint: entries can outlive their agents or be written by anyone allowed to
 * write the bucket. Every hit must be confirmed by the agent's registry record.
 */
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import { NatsExchangeFactory, natsLayout } from "../../../src/index.ts";
import { decodeValue, encodeValue } from "../../../src/protocol/codec.ts";
import { Counter, FastCounter, Recorder } from "../../fixtures/agents.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();



const sorted = (ids: ReadonlyArray<{ uid: string }>): string[] => ids.map((id) => id.uid).sort();

describe("cold discover checks the type index against the registry", () => {
  test("index garbage is not returned: only agents whose records are active and of the type", async () => {
    const prefix = `disc${process.pid}`;
    const options = { servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix };
    const writer = new NatsExchangeFactory(options);
    const client = await writer.createUserClient();
    const counter = await client.registerAgent(Counter, { name: "c1" });
    const fast = await client.registerAgent(FastCounter);
    const terminated = await client.registerAgent(Counter);
    const recorder = await client.registerAgent(Recorder);
    await client.terminate(terminated.agentId);

    const types = await new Kvm(jetstream(shared.nc)).open(natsLayout(prefix).typesBucket);
    const garbage: string[] = [];
    const put = async (key: string, value: unknown): Promise<void> => {
      await types.put(key, value instanceof Uint8Array ? value : encodeValue(value));
      garbage.push(key);
    };
    // Entries with no record at all, in the index's own format.
    for (let i = 0; i < 71; i++) await put(`Counter.${randomUUID()}`, ["Counter"]);
    // The entry of a terminated agent (as an index write racing the agent's termination leaves it).
    await put(`Counter.${terminated.agentId.uid}`, ["Counter"]);
    // Entries naming mailboxes of the wrong role or type.
    await put(`Counter.${client.clientId.uid}`, ["Counter"]);
    await put(`Counter.${recorder.agentId.uid}`, ["Counter"]);
    // Values that are not index values at all.
    await put(`Counter.${randomUUID()}`, "Counter");
    await put(`Counter.${randomUUID()}`, 42);
    await put(`Counter.${randomUUID()}`, new Uint8Array([0xff, 0x00, 0x13]));
    await put(`Counter.${randomUUID()}`, { 0: "Counter" });
    expect(garbage).toHaveLength(78);

    // A fresh process: its first discover reads the index (the view has not loaded yet).
    const reader = new NatsExchangeFactory(options);
    const fresh = await reader.createUserClient();
    expect(sorted(await fresh.discover(Counter))).toEqual(sorted([counter.agentId, fast.agentId]));
    const exact = await fresh.discover(Counter, { allowSubclasses: false });
    expect(sorted(exact)).toEqual([counter.agentId.uid]);
    // The display name comes from the record.
    expect(exact[0]!.name).toBe("c1");

    // A second fresh process asking for exact matches first.
    const other = new NatsExchangeFactory(options);
    const otherClient = await other.createUserClient();
    expect(sorted(await otherClient.discover("Counter", { allowSubclasses: false }))).toEqual([counter.agentId.uid]);

    for (const factory of [writer, reader, other]) await factory.close();
  });

  test("many hits (more than a quarter of the registry, read in one pass) are checked the same way", async () => {
    const prefix = `discmany${process.pid}`;
    const options = { servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix };
    const writer = new NatsExchangeFactory(options);
    const client = await writer.createUserClient();
    const live = await Promise.all(Array.from({ length: 120 }, () => client.registerAgent(Counter)));
    const dead = await Promise.all(Array.from({ length: 40 }, () => client.registerAgent(Counter)));
    // Mark the records terminated and leave their index entries behind.
    const registry = await new Kvm(jetstream(shared.nc)).open(natsLayout(prefix).registryBucket);
    for (const { agentId } of dead) {
      const entry = (await registry.get(agentId.uid))!;
      const current = decodeValue(entry.value) as Record<string, unknown>;
      await registry.update(agentId.uid, encodeValue({ ...current, status: "terminated", terminatedAt: Date.now() }), entry.revision);
    }
    const reader = new NatsExchangeFactory(options);
    const fresh = await reader.createUserClient();
    expect(sorted(await fresh.discover(Counter))).toEqual(sorted(live.map((r) => r.agentId)));
    for (const factory of [writer, reader]) await factory.close();
  });
});

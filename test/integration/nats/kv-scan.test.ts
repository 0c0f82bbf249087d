/**
 * Reading every key of a KV bucket while other clients rewrite them (kv-scan.ts). nats-server
 * 2.9.10's pending counts are wrong while keys are rewritten during a scan: a scan that trusted
 * them (as nats.js' `keys()` does) returned some keys and not others, about once in 300-800 scans
 * with five keys rewritten every 10 ms. A host listing that missed a host could fail a launch ("no
 * host of the pool lists the type") or complete queued launches as unserved.
 */
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { describe, expect, test } from "vitest";
import { NatsExchangeFactory } from "../../../src/index.ts";
import { NatsPoolBackend } from "../../../src/exchange/nats/nats-pool-backend.ts";
import { scanLatest, scanLatestEntries } from "../../../src/exchange/nats/kv-scan.ts";
import { POOL_RECORD_VERSION } from "../../../src/pool/records.ts";
import type { HostRecord } from "../../../src/pool/records.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

/** Rewrite `write` in a loop on its own connection until the returned stop is called. */
async function rewriting(write: () => Promise<void>): Promise<() => Promise<number>> {
  let stopped = false;
  let writes = 0;
  const loop = (async () => {
    while (!stopped) {
      await write();
      writes++;
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return writes;
  };
}

describe("scanning a KV bucket whose keys are being rewritten", () => {
  test("every scan lists every key that exists for the whole scan, once, with a value written to it; deleted keys never", async () => {
    const bucket = `scan${process.pid}`;
    const writer = await connect(shared.nats.connectionOptions);
    try {
      const kv = await new Kvm(jetstream(writer)).create(bucket, { history: 1 });
      const keys = Array.from({ length: 8 }, (_, i) => `a.k${i}`);
      for (const key of keys) await kv.put(key, new TextEncoder().encode(`${key}:0`));
      await kv.put("b.other", new TextEncoder().encode("outside the filter"));
      await kv.put("a.gone", new TextEncoder().encode("deleted before the scans"));
      await kv.delete("a.gone");
      let round = 0;
      const stop = await rewriting(async () => {
        round++;
        await Promise.all(keys.map((key) => kv.put(key, new TextEncoder().encode(`${key}:${round}`))));
      });
      const js = jetstream(shared.nc);
      let scans = 0;
      try {
        const until = Date.now() + 3_000;
        while (Date.now() < until || scans < 100) {
          const latest = await scanLatest(js, bucket, "a.>");
          expect([...latest.keys()].sort()).toEqual(keys);
          for (const [key, value] of latest) expect(new TextDecoder().decode(value)).toMatch(new RegExp(`^${key.replace(".", "\\.")}:\\d+$`));
          const entries = await scanLatestEntries(js, bucket, "a.*");
          expect([...entries.keys()].sort()).toEqual(keys);
          for (const entry of entries.values()) expect(entry.written.getTime()).toBeGreaterThan(Date.now() - 60_000);
          scans += 2;
        }
      } finally {
        const writes = await stop();
        // The scans ran against rewrites, not after them.
        expect(writes).toBeGreaterThan(scans / 4);
      }
      expect([...(await scanLatest(js, bucket, ">")).keys()].sort()).toEqual([...keys, "b.other"]);
      expect((await scanLatest(js, bucket, "c.>")).size).toBe(0);
    } finally {
      await writer.close();
    }
  });

  test("a pool's host listing lists every host while their heartbeats rewrite them", async () => {
    const prefix = `hscan${process.pid}`;
    const options = { servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix };
    const hostsSide = new NatsExchangeFactory(options);
    const listingSide = new NatsExchangeFactory(options);
    const hosts = await NatsPoolBackend.for(await hostsSide.context());
    const records = Array.from({ length: 5 }, (_, i) => hostRecord(`host${i}`, i < 3 ? "workers" : "others"));
    const revisions = new Map<string, number>();
    for (const record of records) revisions.set(record.hostId, await hosts.createHost(record));
    const stop = await rewriting(async () => {
      await Promise.all(
        records.map(async (record) => {
          const revision = await hosts.updateHost({ ...record, load: (record.load + 1) % 3 }, revisions.get(record.hostId)!);
          if (revision !== undefined) revisions.set(record.hostId, revision);
        }),
      );
    });
    const listing = await NatsPoolBackend.for(await listingSide.context());
    try {
      const until = Date.now() + 2_000;
      for (let listed = 0; Date.now() < until || listed < 50; listed++) {
        expect((await listing.listHosts()).map((h) => h.value.hostId).sort()).toEqual(records.map((r) => r.hostId));
        expect((await listing.listHosts("workers")).map((h) => h.value.hostId).sort()).toEqual(["host0", "host1", "host2"]);
      }
    } finally {
      await stop();
      await listingSide.close();
      await hostsSide.close();
    }
  });
});

function hostRecord(hostId: string, pool: string): HostRecord {
  return {
    v: POOL_RECORD_VERSION,
    hostId,
    name: hostId,
    pool,
    hostname: "machine",
    pid: 1,
    load: 0,
    capacity: 4,
    heartbeatMs: 1_000,
    ttlMs: 5_000,
    startedAt: Date.now(),
    heartbeatAt: Date.now(),
    types: ["PoolCounter"],
    version: "test",
    draining: false,
  };
}

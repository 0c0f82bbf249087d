/**
 * What a process gets when it names a site it cannot use: a typed error, and nothing created.
 * A factory never provisions outside its own domain; a site never reached creates nothing and is
 * linked once it answers.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  AgentId,
  CrossSiteOperationError,
  ForeignSiteError,
  Manager,
  NatsExchangeFactory,
  SiteUnreachableError,
  UnknownSiteError,
} from "../../../src/index.ts";
import { CloudLedger, SiteLedger } from "../../fixtures/edge-agents.ts";
import { eventually, startEdgeWorld } from "../../support/edge.ts";
import type { EdgeWorld, SiteName } from "../../support/edge.ts";

let world: EdgeWorld;
let cloudManager: Manager;

beforeAll(async () => {
  world = await startEdgeWorld();
  // Provision s1 (its registry must exist for the cloud to link to it).
  const s1 = world.factory("s1");
  await (await Manager.fromExchangeFactory(s1)).close();
  const cloud = world.factory("cloud", {}, ["s1"]);
  cloudManager = await Manager.fromExchangeFactory(cloud);
  await eventually(() => cloud.linkSite("s1").then(() => true), 15_000, "cloud links to s1");
});

afterAll(async () => {
  await cloudManager?.close();
  await world?.[Symbol.asyncDispose]();
});

async function streams(site: SiteName): Promise<string[]> {
  const names: string[] = [];
  for await (const info of (await world.jsm(site)).streams.list()) names.push(info.config.name);
  return names.sort();
}

describe("sites that cannot be used", () => {
  test("a factory for a site's prefix on the hub, with the site's domain, fails with ForeignSiteError and creates nothing", async () => {
    const before = await streams("cloud");
    const factory = new NatsExchangeFactory({ servers: world.url("cloud"), prefix: "s1", domain: "s1" });
    const error = await factory.createUserClient().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForeignSiteError);
    expect(error).toMatchObject({ code: "FOREIGN_SITE", site: "s1", domain: "s1", serverDomain: "hub" });
    await factory.close();
    expect(await streams("cloud")).toEqual(before);
  });

  test("a factory without a domain for a prefix mirrored here from a site fails with ForeignSiteError and creates nothing", async () => {
    const before = await streams("cloud");
    expect(before).toContain("KV_s1_registry");
    const factory = new NatsExchangeFactory({ servers: world.url("cloud"), prefix: "s1" });
    const error = await factory.createUserClient().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForeignSiteError);
    expect(error).toMatchObject({ site: "s1", domain: "s1" });
    await factory.close();
    expect(await streams("cloud")).toEqual(before);
  });

  test("a site whose domain does not answer, or holds no such site, is SiteUnreachableError and nothing is created for it", async () => {
    const before = await streams("cloud");
    for (const site of [{ name: "s3", domain: "s3" }, { name: "s2x", domain: "s2" }]) {
      const factory = world.factory("cloud", { sites: [site] });
      await expect(factory.linkSite(site.name)).rejects.toBeInstanceOf(SiteUnreachableError);
      await using manager = await Manager.fromExchangeFactory(factory);
      const client = manager.exchangeClient;
      await expect(client.discover(SiteLedger, { sites: [site.name] })).rejects.toMatchObject({ name: "SiteUnreachableError", site: site.name });
      const handle = client.getHandle(new AgentId<SiteLedger>(crypto.randomUUID(), undefined, site.name));
      await expect(handle.record("x", 1)).rejects.toBeInstanceOf(SiteUnreachableError);
      await expect(client.status(handle.agentId)).rejects.toBeInstanceOf(SiteUnreachableError);
    }
    expect(await streams("cloud")).toEqual(before);
  });

  test("an id of a site the factory does not reach is UnknownSiteError; another site's mailbox cannot be terminated", async () => {
    const client = cloudManager.exchangeClient;
    const nowhere = new AgentId<SiteLedger>(crypto.randomUUID(), undefined, "s9");
    await expect(client.getHandle(nowhere).record("x", 1)).rejects.toBeInstanceOf(UnknownSiteError);
    await expect(client.discover(SiteLedger, { sites: ["s9"] })).rejects.toMatchObject({ name: "UnknownSiteError", site: "s9" });
    await using s1Manager = await Manager.fromExchangeFactory(world.factory("s1"));
    const handle = await s1Manager.launch(SiteLedger);
    const error = await client.terminate(handle.agentId).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CrossSiteOperationError);
    expect(error).toMatchObject({ site: "s1", entityId: handle.agentId.uid });
    await s1Manager.shutdown(handle, { blocking: true });
  });

  test("a site first started with its uplink down works on its own and links to the cloud once the uplink returns, creating its link with 2.9 fields only", async () => {
    // Every JetStream create request either server gets from now on, as sent.
    const creates: Array<{ subject: string; body: Record<string, unknown> }> = [];
    const observers: Array<Awaited<ReturnType<typeof world.connection>>> = [];
    for (const server of ["cloud", "s2"] as const) {
      const nc = await world.connection(server);
      observers.push(nc);
      for (const subject of ["$JS.API.STREAM.CREATE.>", "$JS.API.CONSUMER.>"]) {
        nc.subscribe(subject, {
          callback: (_error, msg) => {
            if (msg.subject.includes(".INFO.") || msg.data.length === 0) return;
            creates.push({ subject: msg.subject, body: msg.json<Record<string, unknown>>() });
          },
        });
      }
      await nc.flush();
    }
    const site = world.topology.site("s2");
    site.cut();
    await site.waitForLinkDown();
    const s2 = world.factory("s2");
    await using s2Manager = await Manager.fromExchangeFactory(s2);
    const local = await s2Manager.launch(SiteLedger);
    expect(await local.record("local", 1)).toBe(1);
    await expect(s2.linkSite("cloud")).rejects.toBeInstanceOf(SiteUnreachableError);
    // Nothing was created in the site's domain for the cloud.
    expect((await streams("s2")).filter((name) => /cloud/.test(name))).toEqual([]);

    const cloud = world.factory("cloud", {}, ["s2"]);
    await using cloud2 = await Manager.fromExchangeFactory(cloud);
    const cloudLedger = await cloud2.launch(CloudLedger);
    site.restore();
    await eventually(() => s2.linkSite("cloud").then(() => true), 15_000, "s2 links to the cloud");
    await eventually(() => cloud.linkSite("s2").then(() => true), 15_000, "the cloud links to s2");
    const toCloud = s2Manager.exchangeClient.getHandle(cloudLedger.agentId);
    expect(await toCloud.record("s2", 7)).toBe(7);
    expect(await cloud2.exchangeClient.getHandle(local.agentId).record("cloud", 8)).toBe(8);
    // Every request a server got before now has reached this process: each observer's copy was
    // sent before the server answered the request, so before the answer to this flush.
    for (const nc of observers) await nc.flush();
    // Outboxes, inboxes, KV mirrors and relay consumers of both links were created, with nothing
    // a 2.9 server would drop silently (an unfiltered consumer on a work queue is the worst case).
    const streamsMade = creates.filter((c) => c.subject.startsWith("$JS.API.STREAM.CREATE.")).map((c) => c.subject.split(".").pop());
    expect(streamsMade).toEqual(expect.arrayContaining(["s2_out_cloud", "s2_in_cloud", "KV_cloud_registry", "KV_cloud_types", "cloud_out_s2", "cloud_in_s2", "KV_s2_registry", "KV_s2_types"]));
    expect(creates.some((c) => c.subject.includes(".relay"))).toBe(true);
    const newer = ["subject_transform", "subject_transforms", "metadata", "filter_subjects", "compression", "first_seq", "allow_msg_ttl", "subject_delete_marker_ttl", "priority_groups", "priority_policy", "pause_until", "allow_atomic", "allow_msg_schedules", "allow_msg_counter"];
    const found = (value: unknown): string[] =>
      value === null || typeof value !== "object" ? [] : Object.entries(value).flatMap(([key, inner]) => (newer.includes(key) ? [key] : found(inner)));
    for (const create of creates) expect(found(create.body), create.subject).toEqual([]);
    await cloud2.shutdown(cloudLedger, { blocking: true });
    await s2Manager.shutdown(local, { blocking: true });
  }, 60_000);
});

/**
 * Discover and status across sites: the cloud sees the agents of both sites (by type, subclasses
 * included) and their status through mirrors of their registries, eventually; a site sees the
 * cloud's; an agent terminated at a site while it was offline shows terminated in the cloud once
 * the link is back, and is no longer discovered although its type-index keys stay in the mirror.
 * The type index's member lists, kept by compare-and-set, stay in their own bucket, which is not
 * mirrored: a site's mirrored type index receives no compare-and-set write, outage or not.
 */
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MailboxStatus, Manager, natsLayout } from "../../../src/index.ts";
import { MIRROR_SAFE_KEY } from "../../../src/exchange/nats/nats-registry.ts";
import { NatsSiteLink } from "../../../src/exchange/nats/nats-site-link.ts";
import { decodeMembers, memberListKeys } from "../../../src/exchange/nats/type-members.ts";
import type { AgentId, NatsExchangeFactory } from "../../../src/index.ts";
import { Caller, CloudLedger, Ledger, SiteLedger } from "../../fixtures/edge-agents.ts";
import { eventually, startEdgeWorld } from "../../support/edge.ts";
import type { EdgeWorld } from "../../support/edge.ts";

let world: EdgeWorld;
let cloud: NatsExchangeFactory;
const managers: Manager[] = [];

beforeAll(async () => {
  world = await startEdgeWorld();
  cloud = world.factory("cloud");
  managers.push(await Manager.fromExchangeFactory(cloud));
  for (const site of ["s1", "s2"] as const) managers.push(await Manager.fromExchangeFactory(world.factory(site)));
  await eventually(() => Promise.all([cloud.linkSite("s1"), cloud.linkSite("s2")]).then(() => true), 15_000, "cloud links to both sites");
});

afterAll(async () => {
  for (const manager of managers.reverse()) await manager.close();
  await world?.[Symbol.asyncDispose]();
});

const uids = (ids: readonly AgentId[]): string[] => ids.map((id) => id.uid).sort();

// How long a mirror may take to deliver a change (after the link returns, too): a second or so on
// a quiet machine, more on 2 cores loaded by the full suite.
const MIRROR_MS = 30_000;

describe("handles across sites", () => {
  test("a handle passed from the cloud to a site agent, or back, is called on its own site", async () => {
    const [cloudManager, s1Manager] = managers as [Manager, Manager, Manager];
    const cloudLedger = new CloudLedger();
    const siteLedger = new SiteLedger();
    const atCloud = await cloudManager.launch(cloudLedger);
    const atSite = await s1Manager.launch(siteLedger);
    const callerAtSite = await s1Manager.launch(Caller);
    const callerAtCloud = await cloudManager.launch(Caller);
    // The cloud hands the site agent a handle to a cloud agent; the site agent calls it.
    const viaSite = cloudManager.exchangeClient.getHandle(callerAtSite.agentId);
    expect(await viaSite.callBack(atCloud, 5)).toEqual({ site: "cloud", answer: 5 });
    expect(cloudLedger.seen.get("callback")).toEqual([5]);
    // And back: a site agent's handle, passed to a cloud agent by a site client.
    const viaCloud = s1Manager.exchangeClient.getHandle(callerAtCloud.agentId);
    expect(await viaCloud.callBack(atSite, 7)).toEqual({ site: "s1", answer: 7 });
    expect(siteLedger.seen.get("callback")).toEqual([7]);
    for (const h of [atCloud, callerAtCloud]) await cloudManager.shutdown(h, { blocking: true });
    for (const h of [atSite, callerAtSite]) await s1Manager.shutdown(h, { blocking: true });
  }, 60_000);
});

describe("discover and status across sites", () => {
  test("the cloud discovers the agents of both sites by type, subclasses included, and calls them", async () => {
    const [cloudManager, s1Manager, s2Manager] = managers as [Manager, Manager, Manager];
    const a = await s1Manager.launch(SiteLedger);
    const b = await s1Manager.launch(SiteLedger);
    const c = await s2Manager.launch(SiteLedger);
    const d = await s2Manager.launch(Ledger);
    const e = await cloudManager.launch(CloudLedger);
    const client = cloudManager.exchangeClient;
    const all = uids([a, b, c, d, e].map((h) => h.agentId));
    // Mirrors are eventually consistent: wait for them, then check the exact answers.
    const everywhere = await eventually(async () => {
      const found = await client.discover(Ledger, { sites: "all" });
      return found.length === all.length ? found : undefined;
    }, MIRROR_MS, "every ledger discovered");
    expect(uids(everywhere)).toEqual(all);
    expect(new Map(everywhere.map((id) => [id.uid, id.site]))).toEqual(
      new Map([[a, "s1"], [b, "s1"], [c, "s2"], [d, "s2"], [e, "cloud"]].map(([h, site]) => [(h as typeof a).agentId.uid, site as string])),
    );
    expect(uids(await client.discover(SiteLedger, { sites: ["s1", "s2"] }))).toEqual(uids([a, b, c].map((h) => h.agentId)));
    expect(uids(await client.discover(Ledger, { sites: ["s2"], allowSubclasses: false }))).toEqual([d.agentId.uid]);
    expect(uids(await client.discover(Ledger))).toEqual([e.agentId.uid]);
    for (const h of [a, c]) expect(await client.status(h.agentId)).toBe(MailboxStatus.Active);
    // A discovered id carries its site: a handle to it is called across the link.
    const found = everywhere.find((id) => id.uid === c.agentId.uid)!;
    expect(await client.getHandle(found as AgentId<SiteLedger>).where()).toBe("SiteLedger");
    // A site sees the cloud's agents.
    const fromSite = await eventually(async () => {
      const ids = await s1Manager.exchangeClient.discover(CloudLedger, { sites: ["cloud"] });
      return ids.length === 1 ? ids : undefined;
    }, MIRROR_MS, "s1 discovers the cloud's ledger");
    expect(fromSite[0]!.uid).toBe(e.agentId.uid);
    for (const h of [a, b, c, d]) await (h.agentId.site === "s1" ? s1Manager : s2Manager).shutdown(h, { blocking: true });
    await cloudManager.shutdown(e, { blocking: true });
  }, 60_000);

  test("an agent terminated at a site while it was offline shows terminated in the cloud after the link returns", async () => {
    const [cloudManager, s1Manager] = managers as [Manager, Manager, Manager];
    const site = world.topology.site("s1");
    const kept = await s1Manager.launch(SiteLedger, { config: { terminateOnSuccess: false } });
    const doomed = await s1Manager.launch(SiteLedger);
    const client = cloudManager.exchangeClient;
    await eventually(async () => (await client.status(doomed.agentId)) === MailboxStatus.Active, MIRROR_MS, "the cloud sees the new agent");

    site.cut();
    await site.waitForLinkDown();
    await s1Manager.shutdown(doomed, { blocking: true, terminate: true });
    const born = await s1Manager.launch(SiteLedger);
    expect(await s1Manager.exchangeClient.status(doomed.agentId)).toBe(MailboxStatus.Terminated);
    // The cloud reads its mirror: it still has the state from before the outage.
    expect(await client.status(doomed.agentId)).toBe(MailboxStatus.Active);
    expect(await client.status(born.agentId)).toBe(MailboxStatus.Missing);

    site.restore();
    await eventually(async () => (await client.status(doomed.agentId)) === MailboxStatus.Terminated, MIRROR_MS, "the termination reaches the cloud");
    await eventually(async () => (await client.status(born.agentId)) === MailboxStatus.Active, MIRROR_MS, "the new agent reaches the cloud");
    const expected = uids([kept.agentId, born.agentId]);
    expect(uids(await client.discover(SiteLedger, { sites: ["s1"] }))).toEqual(expected);
    // A fresh process answers from its view of the mirrored registry, which it waits to catch up
    // with: not from the mirrored type index, whose mirror can fall behind the registry's (and on
    // nats-server 2.9.10 stall: EDGE.md section 4) and still holds the terminated agent's keys.
    await using fresh = await Manager.fromExchangeFactory(world.factory("cloud"));
    expect(uids(await fresh.exchangeClient.discover(SiteLedger, { sites: ["s1"] }))).toEqual(expected);
    await s1Manager.shutdown(kept, { blocking: true, terminate: true });
    await s1Manager.shutdown(born, { blocking: true });
  }, 180_000);

  test("registrations and terminations at a site, during an outage too, send its type index mirror no compare-and-set write, and the member lists are not mirrored", async () => {
    const s1Manager = managers[1]!;
    const site = world.topology.site("s1");
    const client = s1Manager.exchangeClient;
    const s1 = natsLayout("s1");
    const before = await Promise.all(Array.from({ length: 6 }, () => client.registerAgent(SiteLedger)));
    await client.terminate(before[0]!.agentId);
    // During an outage: more agents of one type than it has shards, so that some member list is
    // updated twice by compare-and-set, what stalls a mirror for good on nats-server 2.9.10.
    site.cut();
    await site.waitForLinkDown();
    const during = await Promise.all(Array.from({ length: 24 }, () => client.registerAgent(SiteLedger)));
    for (const { agentId } of during.slice(0, 4)) await client.terminate(agentId);
    site.restore();
    await site.waitForLink();
    // The mirror of the site's type index is not stalled: a key written after the outage arrives.
    const last = await client.registerAgent(SiteLedger);
    const hub = await world.connection("cloud");
    const mirrored = await new Kvm(jetstream(hub)).open(s1.typesBucket);
    await eventually(async () => (await mirrored.get(`SiteLedger.${last.agentId.uid}`))?.operation === "PUT", MIRROR_MS, "the key written after the outage reaches the cloud's mirror");
    // Nor is the mirror of its registry, although records were created and terminated during the
    // outage (their creations replaced at the site before the mirror could fetch them): the cloud
    // sees the later agent active and those terminated.
    const cloudClient = managers[0]!.exchangeClient;
    await eventually(async () => (await cloudClient.status(last.agentId)) === MailboxStatus.Active, MIRROR_MS, "the registry record written after the outage reaches the cloud");
    for (const { agentId } of during.slice(0, 4)) expect(await cloudClient.status(agentId)).toBe(MailboxStatus.Terminated);
    // No message of the mirror carries a compare-and-set header, and none is a member list.
    const hubJsm = await world.jsm("cloud");
    const info = await hubJsm.streams.info(`KV_${s1.typesBucket}`);
    expect(info.config.mirror?.name).toBe(`KV_${s1.typesBucket}`);
    let messages = 0;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const message = await hubJsm.streams.getMessage(`KV_${s1.typesBucket}`, { seq }).catch(() => null);
      if (message === null) continue;
      messages++;
      expect(message.subject.startsWith(`$KV.${s1.typesBucket}.v2.`), message.subject).toBe(false);
      for (const [header] of message.header ?? []) expect(header.toLowerCase().startsWith("nats-expected"), `${header} on ${message.subject}`).toBe(false);
    }
    // At least the keys of this test's live agents (earlier tests leave more).
    expect(messages).toBeGreaterThanOrEqual(26);
    // The lists bucket exists at the site and lists the live agents; the cloud has no copy of it.
    const streams: string[] = [];
    for await (const name of hubJsm.streams.names()) streams.push(name);
    expect(streams).toContain(`KV_${s1.typesBucket}`);
    expect(streams).not.toContain(`KV_${s1.memberListsBucket}`);
    const lists = await new Kvm(jetstream(await world.connection("s1"))).open(s1.memberListsBucket);
    const listed: string[] = [];
    for (const key of memberListKeys("SiteLedger")) {
      const entry = await lists.get(key);
      if (entry !== null && entry.operation === "PUT") listed.push(...(decodeMembers(entry.value) ?? []).map((m) => m.uid));
    }
    const live = [...before.slice(1), ...during.slice(4), last].map((r) => r.agentId);
    expect(uids(live).every((uid) => listed.includes(uid))).toBe(true);
    for (const { agentId } of [before[0]!, ...during.slice(0, 4)]) expect(listed).not.toContain(agentId.uid);
    for (const id of live) await client.terminate(id);
  }, 180_000);
  test("once a site is upgraded, a mirror of its registry made again no longer stalls at an earlier version's compare-and-set terminations, and its type index mirror stuck at the old member lists is made again by itself", async () => {
    const s1 = natsLayout("s1");
    const siteNc = await world.connection("s1");
    const siteJsm = await world.jsm("s1");
    const siteTypes = await new Kvm(jetstream(siteNc)).open(s1.typesBucket);
    const siteRegistry = await new Kvm(jetstream(siteNc)).open(s1.registryBucket);
    const hubJsm = await world.jsm("cloud");
    const legacyIn = async (jsm: typeof hubJsm): Promise<string[]> =>
      Object.keys((await jsm.streams.info(`KV_${s1.typesBucket}`, { subjects_filter: `$KV.${s1.typesBucket}.v2.*.>` })).state.subjects ?? {});
    const lastSeq = async (jsm: typeof hubJsm): Promise<number> => (await jsm.streams.info(`KV_${s1.registryBucket}`)).state.last_seq;
    const client = managers[1]!.exchangeClient;
    const cloudClient = managers[0]!.exchangeClient;
    // What an earlier version wrote: member lists in the types bucket, and terminations, both by
    // compare-and-set. The write each update expects is gone from the site (one revision per key),
    // so a mirror made after them stalls at them for good on nats-server 2.9.10.
    const key = "v2.members.Legacy.0";
    let revision = await siteTypes.create(key, new Uint8Array([0x80]));
    await siteTypes.create("v2.layout.ready", new Uint8Array([0x02]));
    for (let i = 0; i < 2; i++) revision = await siteTypes.update(key, new Uint8Array([0x80]), revision);
    const old = await client.registerAgent(SiteLedger);
    const entry = (await siteRegistry.get(old.agentId.uid))!;
    await siteRegistry.update(old.agentId.uid, entry.value, entry.revision);
    // A deployment of that version has no marker, and a cloud process links to it afresh: its
    // registry mirror stalls at the termination.
    await siteJsm.streams.purge(`KV_${s1.memberListsBucket}`, { filter: `$KV.${s1.memberListsBucket}.${MIRROR_SAFE_KEY}` });
    for (const bucket of [s1.registryBucket, s1.typesBucket]) await hubJsm.streams.delete(`KV_${bucket}`);
    await world.factory("cloud").linkSite("s1");
    const stuck = await client.registerAgent(SiteLedger);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await lastSeq(hubJsm)).toBeLessThan(await lastSeq(siteJsm));
    // The site upgraded: its provisioning process rewrites the record as a plain put, removes the
    // old keys and sets the marker.
    const upgraded = await Manager.fromExchangeFactory(world.factory("s1"));
    await upgraded.close();
    expect(await legacyIn(siteJsm)).toEqual([]);
    expect((await siteJsm.streams.getMessage(`KV_${s1.registryBucket}`, { last_by_subj: `$KV.${s1.registryBucket}.${old.agentId.uid}` }))?.header?.get("Nats-Expected-Last-Subject-Sequence") ?? "").toBe("");
    // The operator deletes the stuck registry mirror (docs/EDGE.md 4); a cloud process starting
    // after that makes it again, and makes the type index mirror again by itself: from now on
    // neither stalls.
    await hubJsm.streams.delete(`KV_${s1.registryBucket}`);
    const renewing = world.factory("cloud");
    await renewing.linkSite("s1");
    await eventually(async () => (await lastSeq(hubJsm)) === (await lastSeq(siteJsm)), MIRROR_MS, "the registry mirror made again catches up");
    await eventually(async () => (await legacyIn(hubJsm)).length === 0, MIRROR_MS, "the type index mirror made again holds no old key");
    const later = await client.registerAgent(SiteLedger);
    // Both cloud processes see and find the agents: the first one reads the mirrors by name, and its
    // view's watch starts again on the mirror made again.
    for (const [which, each] of [["first", cloudClient], ["renewing", (await Manager.fromExchangeFactory(renewing)).exchangeClient]] as const) {
      await eventually(async () => (await each.status(stuck.agentId)) === MailboxStatus.Active, MIRROR_MS, `the ${which} cloud process sees the record written while the mirror was stuck`);
      await eventually(async () => uids(await each.discover(SiteLedger, { sites: ["s1"] })).includes(later.agentId.uid), MIRROR_MS, `the ${which} cloud process discovers the later agent`);
    }
    for (const id of [old.agentId, stuck.agentId, later.agentId]) await client.terminate(id);
  }, 180_000);

  test("a link to a site closed while it is being set up sends no stream or consumer request once its close has resolved", async () => {
    // The exchange's connection stays open after the link's close, so a setup that went on after
    // it could still send requests; every JetStream API request it sends is logged as it is sent.
    const nc = await connect({ servers: world.url("cloud") });
    const protocol = (nc as unknown as { protocol: { publish(subject: string, ...rest: unknown[]): void } }).protocol;
    const publish = protocol.publish.bind(protocol);
    // The link's streams and consumers: its inbox and outbox, the KV mirrors of s1's buckets.
    const ofTheLink = /^\$JS\.API\..*\.(cloud_in_s1|cloud_out_s1|KV_s1_[a-z_]+)(\.|$)/;
    const sent: string[] = [];
    let link: NatsSiteLink | undefined;
    let closed: Promise<number> | undefined;
    protocol.publish = (subject: string, ...rest: unknown[]) => {
      if (ofTheLink.test(subject)) {
        sent.push(subject);
        // Closed as it sends its first request: the rest of its setup is still to come.
        closed ??= link!.close().then(() => sent.length);
      }
      publish(subject, ...rest);
    };
    // The link, as the new exchange starts setting it up (links start with their exchange).
    const start = NatsSiteLink.prototype.start;
    NatsSiteLink.prototype.start = function (this: NatsSiteLink) {
      link ??= this;
      start.call(this);
    };
    const factory = world.factory("cloud", { connection: nc }, ["s1"]);
    try {
      await factory.context();
    } finally {
      NatsSiteLink.prototype.start = start;
    }
    await eventually(async () => closed !== undefined, 15_000, "the link's setup sends its first request");
    const atClose = await closed!;
    // Long enough for the rest of a setup (stream infos, the mirrors, the view's watch, the relay).
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(sent.slice(atClose)).toEqual([]);
    expect(atClose).toBeGreaterThan(0);
    await expect(link!.ready()).rejects.toThrow(/closed/);
    await factory.close();
    await nc.close();
  }, 30_000);

  test("a cloud process closed while it makes a stuck type index mirror again finishes making it before its close resolves: the mirror is not left deleted", async () => {
    const s1 = natsLayout("s1");
    const stream = `KV_${s1.typesBucket}`;
    const key = "v2.members.Closing.0";
    const siteJsm = await world.jsm("s1");
    const hubJsm = await world.jsm("cloud");
    const legacyIn = async (): Promise<string[]> =>
      Object.keys((await hubJsm.streams.info(stream, { subjects_filter: `$KV.${s1.typesBucket}.v2.*.>` })).state.subjects ?? {});
    // The cloud's mirror holds a member list of an earlier version that the site no longer has
    // (written as a plain put, then purged at the site: a purge is not mirrored).
    await (await new Kvm(jetstream(await world.connection("s1"))).open(s1.typesBucket)).put(key, new Uint8Array([0x80]));
    await eventually(async () => (await legacyIn()).includes(`$KV.${s1.typesBucket}.${key}`), MIRROR_MS, "the old key reaches the cloud's mirror");
    await siteJsm.streams.purge(stream, { filter: `$KV.${s1.typesBucket}.${key}` });
    // A new cloud process links to s1 and makes that mirror again in the background; it is closed
    // the moment its deletion of the mirror reaches the server.
    const closing = world.factory("cloud");
    const observer = await world.connection("cloud");
    const seen: string[] = [];
    let closed: Promise<void> | undefined;
    const sub = observer.subscribe(`$JS.API.STREAM.*.${stream}`, {
      callback: (_, m) => {
        const operation = m.subject.split(".")[3]!;
        if (operation !== "DELETE" && operation !== "CREATE") return;
        seen.push(operation);
        if (operation === "DELETE") closed = closing.close();
      },
    });
    await observer.flush();
    await closing.linkSite("s1");
    await eventually(async () => closed !== undefined, MIRROR_MS, "the new cloud process deletes the stuck mirror");
    await closed;
    // By then the mirror was made again (its creation reached the server before the close
    // resolved: the observer's flush delivers whatever was sent before it), and nothing follows.
    await observer.flush();
    expect(seen).toEqual(["DELETE", "CREATE"]);
    expect((await hubJsm.streams.info(stream)).config.mirror?.name).toBe(stream);
    expect(await legacyIn()).toEqual([]);
    sub.unsubscribe();
  }, 60_000);
});

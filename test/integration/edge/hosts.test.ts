/**
 * Runtime hosts at an edge site (`academy host --site s1 --remote-site cloud:hub`): they serve the
 * site's pool through an outage; a launch onto that pool requested from the cloud while the uplink
 * is down is stored and forwarded like a call, the site registers the agent, and its placement
 * stays at the site.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { HostPoolExecutor, MailboxStatus, Manager } from "../../../src/index.ts";
import type { NatsExchangeFactory } from "../../../src/index.ts";
import { PoolCounter } from "../../fixtures/host-agents.ts";
import { eventually, startEdgeWorld } from "../../support/edge.ts";
import type { EdgeWorld } from "../../support/edge.ts";
import { runCli, spawnHost } from "../../support/host-process.ts";
import type { HostProcess } from "../../support/host-process.ts";

let world: EdgeWorld;
let host: HostProcess;
let cloud: NatsExchangeFactory;

const SITE_ARGS = ["--site", "s1", "--remote-site", "cloud:hub"];

beforeAll(async () => {
  world = await startEdgeWorld();
  cloud = world.factory("cloud", {}, ["s1"]);
  // Provisions the cloud's site (the host's link to it needs its registry); s1 is not there yet.
  await cloud.linkSite("s1").catch(() => undefined);
  host = await spawnHost({ servers: world.url("s1"), pool: "lab", heartbeatMs: 500, hostTtlMs: 2_000, extra: SITE_ARGS });
  await eventually(() => cloud.linkSite("s1").then(() => true), 15_000, "cloud links to s1");
}, 60_000);

afterAll(async () => {
  await host?.kill();
  await world?.[Symbol.asyncDispose]();
});

/** `academy agents` at the site, as JSON rows. */
function agentsAtSite(): Array<Record<string, unknown>> {
  const result = runCli(["agents", "--servers", world.url("s1"), ...SITE_ARGS, "--all", "--json"]);
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Array<Record<string, unknown>>;
}

describe("runtime hosts at an edge site", () => {
  test("a launch onto a site's pool from the cloud is stored through an outage, runs on the site's host, and its placement stays there", async () => {
    const site = world.topology.site("s1");
    await using cloudManager = await Manager.fromExchangeFactory(cloud, { executors: { lab: new HostPoolExecutor({ pool: "lab", site: "s1" }) } });
    await using siteManager = await Manager.fromExchangeFactory(world.factory("s1"), { executors: { lab: new HostPoolExecutor({ pool: "lab" }) } });

    site.cut();
    await site.waitForLinkDown();
    // The site launches on its own pool offline.
    const local = await siteManager.launch(PoolCounter, { executor: "lab", args: [10] });
    expect(local.agentId.site).toBe("s1");
    expect(await local.increment(1)).toBe(11);
    // The cloud's launch is stored; so is a call to the agent it names.
    const remote = await cloudManager.launch(PoolCounter, { executor: "lab", args: [100] });
    expect(remote.agentId.site).toBe("s1");
    const answer = remote.increment(5);
    const cloudJsm = await world.jsm("cloud");
    const stored = await cloudJsm.streams.getMessage("cloud_out_s1", { last_by_subj: `cloud.out.s1.launch.lab.${remote.agentId.uid}` });
    expect(stored).not.toBeNull();
    expect(await siteManager.exchangeClient.status(remote.agentId)).toBe(MailboxStatus.Missing);

    site.restore();
    expect(await answer).toBe(105);
    // Registered at the site and placed there, on the site's host.
    expect(await siteManager.exchangeClient.status(remote.agentId)).toBe(MailboxStatus.Active);
    const row = agentsAtSite().find((r) => r.agentId === remote.agentId.uid);
    expect(row).toMatchObject({ pool: "lab", placement: "running", host: host.hostId, status: "active" });
    // No placement of it in the hub's domain.
    const names: string[] = [];
    for await (const info of cloudJsm.streams.list()) names.push(info.config.name);
    for (const name of names.filter((n) => n.endsWith("_placements"))) {
      const found = await cloudJsm.streams.getMessage(name, { last_by_subj: `$KV.${name.slice(3)}.lab.${remote.agentId.uid}` }).catch(() => null);
      expect(found, name).toBeNull();
    }
    // The cloud stops it; its executor learns it stopped from the mirror of the site's registry.
    await cloudManager.shutdown(remote, { blocking: true, timeoutMs: 15_000 });
    await eventually(async () => agentsAtSite().find((r) => r.agentId === remote.agentId.uid)?.placement === "completed", 10_000, "completed at the site");
    await siteManager.shutdown(local, { blocking: true });
  }, 90_000);

  test("--site goes with its own prefix only, and --remote-site needs a site", () => {
    const servers = ["--servers", "nats://127.0.0.1:1"];
    const clash = runCli(["hosts", ...servers, "--site", "s1", "--prefix", "other"]);
    expect(clash.status).toBe(2);
    expect(clash.stderr).toMatch(/--site s1 .* --prefix other/);
    const orphan = runCli(["hosts", ...servers, "--remote-site", "cloud:hub"]);
    expect(orphan.status).toBe(2);
    expect(orphan.stderr).toMatch(/--remote-site needs --site/);
  });
});

/**
 * The edge world of the integration tests: a hub (domain `hub`, site `cloud`) and two leaf sites
 * `s1` and `s2` (their own domains), each behind an uplink the test can cut, with the deny rules
 * of deploy/edge: no site's subjects cross a leaf connection; only JetStream mirrors do.
 */
import { afterAll, beforeAll } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { NatsExchangeOptions } from "../../src/index.ts";
import { findNatsServerBinary, startNatsLeafTopology, NATS_SERVER_INSTALL_HINT } from "../../src/testing/index.ts";
import type { NatsLeafTopology } from "../../src/testing/index.ts";

/** Every site of the edge world: its name (prefix) and JetStream domain. */
export const SITES = { cloud: "hub", s1: "s1", s2: "s2" } as const;
export type SiteName = keyof typeof SITES;

/** deny_imports and deny_exports of a leaf's remote: no site's own subjects cross the link. */
export const DENY = Object.keys(SITES).map((site) => `${site}.>`);

export interface EdgeWorld extends AsyncDisposable {
  readonly topology: NatsLeafTopology;
  /** Client URL of a site's server. */
  url(site: SiteName): string;
  /** A factory of `site` reaching `reaches` (by default: the cloud reaches both sites, a site the cloud). */
  factory(site: SiteName, extra?: NatsExchangeOptions, reaches?: readonly SiteName[]): NatsExchangeFactory;
  /** A plain connection to a site's server (closed with the world). */
  connection(site: SiteName): Promise<NatsConnection>;
  /** A JetStream manager on a site's server. */
  jsm(site: SiteName): Promise<JetStreamManager>;
}

/** Start the hub and the two leaf sites. Needs the nats-server binary. */
export async function startEdgeWorld(): Promise<EdgeWorld> {
  if (findNatsServerBinary() === undefined) throw new Error(`The edge tests need the nats-server binary. ${NATS_SERVER_INSTALL_HINT}`);
  const topology = await startNatsLeafTopology({
    hubDomain: SITES.cloud,
    sites: [
      { name: "s1", denyImports: DENY, denyExports: DENY },
      { name: "s2", denyImports: DENY, denyExports: DENY },
    ],
  });
  const factories: NatsExchangeFactory[] = [];
  const connections: NatsConnection[] = [];
  const url = (site: SiteName): string => (site === "cloud" ? topology.hub.url : topology.site(site).server.url);
  const world: EdgeWorld = {
    topology,
    url,
    factory(site, extra = {}, reaches) {
      const others = reaches ?? (site === "cloud" ? (["s1", "s2"] as const) : (["cloud"] as const));
      const factory = new NatsExchangeFactory({
        servers: url(site),
        prefix: site,
        domain: SITES[site],
        sites: others.map((name) => ({ name, domain: SITES[name] })),
        ...extra,
      });
      factories.push(factory);
      return factory;
    },
    async connection(site) {
      const nc = await connect({ servers: url(site), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
      connections.push(nc);
      return nc;
    },
    async jsm(site) {
      return jetstreamManager(await world.connection(site));
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(factories.map((f) => f.close().catch(() => undefined)));
      await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
      await topology[Symbol.asyncDispose]();
    },
  };
  return world;
}

/** Resolves once `check()` holds, polling every 50 ms; rejects after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The edge world of one test file: the cloud and site s1 linked both ways, a manager on each. */
export interface LinkedCloudAndSite {
  readonly world: EdgeWorld;
  readonly cloud: NatsExchangeFactory;
  readonly s1: NatsExchangeFactory;
  readonly cloudManager: Manager;
  readonly s1Manager: Manager;
}

/**
 * Start an edge world for the tests of a file in a `beforeAll` hook (the cloud linked to s1 and s1
 * to the cloud, a manager on each) and stop it in an `afterAll` hook. Read its fields in tests and
 * hooks, not when the file is imported.
 */
export function linkedCloudAndSiteForFile(): LinkedCloudAndSite {
  let linked: LinkedCloudAndSite | undefined;
  let world: EdgeWorld | undefined;
  const managers: Manager[] = [];
  beforeAll(async () => {
    world = await startEdgeWorld();
    const cloud = world.factory("cloud");
    const cloudManager = await Manager.fromExchangeFactory(cloud);
    managers.push(cloudManager);
    const s1 = world.factory("s1");
    const s1Manager = await Manager.fromExchangeFactory(s1);
    managers.push(s1Manager);
    await eventually(() => cloud.linkSite("s1").then(() => true), 15_000, "cloud links to s1");
    await s1.linkSite("cloud");
    linked = { world, cloud, s1, cloudManager, s1Manager };
  });
  afterAll(async () => {
    for (const manager of managers.reverse()) await manager.close();
    await world?.[Symbol.asyncDispose]();
  });
  const started = (): LinkedCloudAndSite => {
    if (linked === undefined) throw new Error("linkedCloudAndSiteForFile: the edge world is read before its beforeAll hook ran");
    return linked;
  };
  return {
    get world() {
      return started().world;
    },
    get cloud() {
      return started().cloud;
    },
    get s1() {
      return started().s1;
    },
    get cloudManager() {
      return started().cloudManager;
    },
    get s1Manager() {
      return started().s1Manager;
    },
  };
}

/**
 * A hub and leaf sites on 127.0.0.1, for tests of edge deployments: a hub server with
 * `jetstream { domain: <hubDomain> }` and `leafnodes { listen }`, and one leaf server per site with
 * `jetstream { domain: <site domain> }` and a leafnode remote to the hub through a {@link TcpProxy}
 * of its own, the site's **uplink**, which `cut()` and `restore()` break and mend while both
 * servers keep running. Every server can also be stopped, killed and restarted on its own (same
 * ports, same store), so an outage can span restarts of either side.
 *
 * nats-server 2.9 tells a leaf the hub's leafnode URL even with `no_advertise`, and a leaf adds it
 * to the URLs it reconnects to: a leaf would reconnect around its proxy. So the hub advertises the
 * address of a sink that accepts and closes every connection; each leaf reconnects only through
 * its own uplink.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  NatsServerError,
  NatsServerErrorCode,
  NatsServerProcess,
  checkPositiveInt,
  delay,
  errorMessage,
  field,
  findFreePorts,
  httpJson,
  randomSuffix,
  resolveBinary,
  type NatsServer,
  type ResolvedServerConfig,
} from "./nats-server.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

/** One leaf site of {@link startNatsLeafTopology}. */
export interface NatsLeafSiteOptions {
  /** The site's name; its server is named `<topology>-<name>`. */
  name: string;
  /**
   * The leaf's JetStream domain.
   * @defaultValue the site's name
   */
  domain?: string;
  /**
   * `deny_imports` of the leaf's remote: subjects the leaf does not take from the hub.
   * @defaultValue none
   */
  denyImports?: readonly string[];
  /**
   * `deny_exports` of the leaf's remote: subjects the leaf does not send to the hub.
   * @defaultValue none
   */
  denyExports?: readonly string[];
}

/** What callers may pass to {@link startNatsLeafTopology}. */
export interface NatsLeafTopologyOptions {
  /** The leaf sites, each with its own server and uplink. */
  sites: readonly NatsLeafSiteOptions[];
  /**
   * The hub's JetStream domain.
   * @defaultValue "hub"
   */
  hubDomain?: string;
  /**
   * Path of the `nats-server` executable.
   * @defaultValue {@link findNatsServerBinary}`()`
   */
  binary?: string;
  /**
   * `max_payload` of every server, in bytes.
   * @defaultValue the server's default, 1 MiB
   */
  maxPayload?: number;
  /**
   * Verbose (`debug: true`) server logs.
   * @defaultValue false
   */
  debug?: boolean;
  /**
   * How long one server may take to start or restart, in milliseconds.
   * @defaultValue 10_000
   */
  startTimeoutMs?: number;
  /**
   * How long the leaves may take to connect to the hub at the start, in milliseconds.
   * @defaultValue 15_000
   */
  linkTimeoutMs?: number;
}

/** A leaf site of a {@link NatsLeafTopology}. */
export interface NatsLeafSite {
  readonly name: string;
  readonly domain: string;
  /** The site's leaf server. */
  readonly server: NatsServer;
  /** The TCP proxy the leaf's remote goes through. */
  readonly uplink: TcpProxy;
  /** Cut the uplink: the leaf connection drops and cannot come back until {@link restore}. */
  cut(): void;
  /** Restore the uplink (the leaf reconnects on its own, within about a second). */
  restore(): void;
  /** Whether the leaf has a connection to the hub, as the leaf's `/leafz` says. */
  isLinked(): Promise<boolean>;
  /**
   * Wait until the leaf is connected to the hub (both servers' `/leafz` show the connection).
   * @throws NatsServerError on timeout.
   */
  waitForLink(timeoutMs?: number): Promise<void>;
  /**
   * Wait until the leaf shows no connection to the hub.
   * @throws NatsServerError on timeout.
   */
  waitForLinkDown(timeoutMs?: number): Promise<void>;
}

/** A hub and its leaf sites, created by {@link startNatsLeafTopology}. */
export interface NatsLeafTopology extends AsyncDisposable {
  /** The hub server. */
  readonly hub: NatsServer;
  /** The hub's JetStream domain. */
  readonly hubDomain: string;
  /** The leaf sites, in the order given. */
  readonly sites: readonly NatsLeafSite[];
  /**
   * The site of that name.
   * @throws NatsServerError for an unknown name.
   */
  site(name: string): NatsLeafSite;
  /** Stops every server and proxy and deletes the temporary directories. Idempotent. */
  [Symbol.asyncDispose](): Promise<void>;
}

const NAME = /^[A-Za-z0-9_-]{1,32}$/;

class LeafSite implements NatsLeafSite {
  readonly name: string;
  readonly domain: string;
  readonly server: NatsServerProcess;
  readonly uplink: TcpProxy;
  readonly #hub: NatsServerProcess;

  constructor(name: string, domain: string, server: NatsServerProcess, uplink: TcpProxy, hub: NatsServerProcess) {
    this.name = name;
    this.domain = domain;
    this.server = server;
    this.uplink = uplink;
    this.#hub = hub;
  }

  cut(): void {
    this.uplink.cut();
  }

  restore(): void {
    this.uplink.restore();
  }

  async isLinked(): Promise<boolean> {
    if (!this.server.isRunning) return false;
    try {
      return leafCount(await httpJson(this.server.monitorPort, "/leafz")) > 0;
    } catch {
      return false;
    }
  }

  async waitForLink(timeoutMs = 15_000): Promise<void> {
    await this.#waitFor(timeoutMs, "connected to the hub", async () => {
      if (!(await this.isLinked()) || !this.#hub.isRunning) return false;
      // The hub sees the leaf connect from one of the uplink's own ports.
      const ports = this.uplink.upstreamPorts;
      const leafs = field(await httpJson(this.#hub.monitorPort, "/leafz"), "leafs");
      return Array.isArray(leafs) && leafs.some((leaf) => ports.includes(field(leaf, "port") as number));
    });
  }

  async waitForLinkDown(timeoutMs = 15_000): Promise<void> {
    await this.#waitFor(timeoutMs, "disconnected from the hub", async () => !(await this.isLinked()));
  }

  async #waitFor(timeoutMs: number, what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      try {
        if (await check()) return;
      } catch (error) {
        last = ` (${errorMessage(error)})`;
      }
      if (Date.now() >= deadline) {
        throw new NatsServerError(
          `leaf site ${this.name} not ${what} after ${timeoutMs} ms${last}; leaf log ${this.server.logPath}, hub log ${this.#hub.logPath}`,
          NatsServerErrorCode.NotHealthy,
        );
      }
      await delay(50);
    }
  }
}

function leafCount(leafz: unknown): number {
  const leafs = field(leafz, "leafs");
  return Array.isArray(leafs) ? leafs.length : 0;
}

class LeafTopology implements NatsLeafTopology {
  readonly hub: NatsServerProcess;
  readonly hubDomain: string;
  readonly sites: readonly LeafSite[];
  readonly #sink: TcpProxy;
  #disposed: Promise<void> | undefined;

  constructor(hub: NatsServerProcess, hubDomain: string, sites: LeafSite[], sink: TcpProxy) {
    this.hub = hub;
    this.hubDomain = hubDomain;
    this.sites = sites;
    this.#sink = sink;
  }

  site(name: string): NatsLeafSite {
    const site = this.sites.find((s) => s.name === name);
    if (site === undefined) throw new NatsServerError(`no leaf site named ${JSON.stringify(name)}`, NatsServerErrorCode.InvalidOptions);
    return site;
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#disposed ??= (async () => {
      await Promise.all(this.sites.map((s) => s.server[Symbol.asyncDispose]()));
      await this.hub[Symbol.asyncDispose]();
      await Promise.all([...this.sites.map((s) => s.uplink.close()), this.#sink.close()]);
    })();
    return this.#disposed;
  }
}

/**
 * Starts a hub and one leaf server per site on 127.0.0.1 (random ports, temporary stores), each
 * leaf connected to the hub through its own uplink proxy, and waits until every leaf is connected.
 * On failure every server is killed and the temporary directories are kept for inspection.
 * @throws NatsServerError for invalid options, when a server does not start, or when a leaf does
 *   not connect within `linkTimeoutMs`.
 */
export async function startNatsLeafTopology(options: NatsLeafTopologyOptions): Promise<NatsLeafTopology> {
  const binary = resolveBinary(options.binary);
  checkPositiveInt("maxPayload", options.maxPayload);
  checkPositiveInt("startTimeoutMs", options.startTimeoutMs);
  const hubDomain = options.hubDomain ?? "hub";
  const domains = new Set([hubDomain]);
  for (const site of options.sites) {
    const domain = site.domain ?? site.name;
    if (!NAME.test(site.name) || !NAME.test(domain) || domains.has(domain)) {
      throw new NatsServerError(
        `leaf site ${JSON.stringify(site.name)}: names and domains must be 1-32 characters of [A-Za-z0-9_-] and domains distinct`,
        NatsServerErrorCode.InvalidOptions,
      );
    }
    domains.add(domain);
  }
  const topologyName = `academy-edge-${randomSuffix()}`;
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  const [hubPort, hubMonitor, hubLeafPort, ...sitePorts] = await findFreePorts(3 + 2 * options.sites.length);
  const sink = await startTcpProxy({ targetPort: hubLeafPort! });
  sink.cut();
  const base = {
    binary,
    maxPayload: options.maxPayload,
    jetstream: true,
    debug: options.debug ?? false,
    extraConfig: "",
    startTimeoutMs,
    cluster: undefined,
  };
  const newServer = async (config: Omit<ResolvedServerConfig, "tempDir" | "storeDir" | keyof typeof base>): Promise<NatsServerProcess> => {
    const tempDir = await mkdtemp(join(tmpdir(), "academy-nats-"));
    const server = new NatsServerProcess({ ...base, ...config, tempDir, storeDir: join(tempDir, "store") });
    await server.writeConfig();
    return server;
  };
  const hub = await newServer({
    serverName: `${topologyName}-hub`,
    port: hubPort!,
    monitorPort: hubMonitor!,
    jetstreamDomain: hubDomain,
    leafnodes: { port: hubLeafPort!, advertise: `127.0.0.1:${sink.port}` },
  });
  const sites: LeafSite[] = [];
  try {
    await hub.start();
    for (const [i, site] of options.sites.entries()) {
      const uplink = await startTcpProxy({ targetPort: hubLeafPort! });
      const server = await newServer({
        serverName: `${topologyName}-${site.name}`,
        port: sitePorts[2 * i]!,
        monitorPort: sitePorts[2 * i + 1]!,
        jetstreamDomain: site.domain ?? site.name,
        leafRemotes: [
          {
            urls: [`nats-leaf://127.0.0.1:${uplink.port}`],
            denyImports: [...(site.denyImports ?? [])],
            denyExports: [...(site.denyExports ?? [])],
          },
        ],
      });
      sites.push(new LeafSite(site.name, site.domain ?? site.name, server, uplink, hub));
    }
    await Promise.all(sites.map((s) => s.server.start()));
    const linkTimeoutMs = options.linkTimeoutMs ?? 15_000;
    await Promise.all(sites.map((s) => s.waitForLink(linkTimeoutMs)));
    return new LeafTopology(hub, hubDomain, sites, sink);
  } catch (error) {
    await Promise.all([hub, ...sites.map((s) => s.server)].map((s) => s.kill()));
    for (const server of [hub, ...sites.map((s) => s.server)]) server.keepTempDirAtExit();
    await Promise.all([sink.close(), ...sites.map((s) => s.uplink.close())]);
    throw error instanceof NatsServerError
      ? error
      : new NatsServerError(`leaf topology did not start: ${errorMessage(error)}`, NatsServerErrorCode.ExitedEarly, { cause: error });
  }
}

/**
 * The NATS fixture of the integration tests.
 *
 * `startTestNats()` picks, in this order:
 * 1. a `nats-server` binary ({@link findNatsServerBinary}: `$NATS_SERVER_BIN`, PATH, /usr/sbin,
 *    /usr/local/bin), spawned by {@link startNatsServer} on random ports with a temporary store;
 * 2. when there is no binary but a Docker engine answers, a testcontainers `NatsContainer` with
 *    JetStream (image `$NATS_DOCKER_IMAGE`, default `nats:2.9.10`); `restart()` and `kill()` are
 *    not supported there and throw;
 * 3. otherwise it throws an Error that says how to install nats-server. Tests are never skipped.
 *
 * Connect with `connect(nats.connectionOptions)` (or `{ servers: nats.url }` in binary mode): the
 * container image requires a user and password, which `connectionOptions` carries.
 *
 * ```ts
 * await using nats = await startTestNats();
 * const nc = await connect(nats.connectionOptions);
 * ```
 */

import { existsSync } from "node:fs";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll } from "vitest";
import { request } from "node:http";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  findNatsServerBinary,
  NATS_SERVER_INSTALL_HINT,
  startNatsCluster,
  startNatsServer,
  type NatsCluster,
  type NatsClusterOptions,
  type NatsServer,
  type NatsServerOptions,
} from "../../src/testing/index.ts";

/** Where the test server runs. */
export type TestNatsMode = "binary" | "container";

/** What to pass to `connect()` from `@nats-io/transport-node`. */
export interface TestNatsConnectionOptions {
  servers: string[];
  user?: string;
  pass?: string;
}

/** A running NATS server for one test (or one file). */
export interface TestNats extends AsyncDisposable {
  /** `"binary"` (a spawned nats-server) or `"container"` (testcontainers). */
  readonly mode: TestNatsMode;
  /** Client URL, e.g. `nats://127.0.0.1:43127`. */
  readonly url: string;
  /** All client URLs (one entry). */
  readonly servers: string[];
  /** Spread into `connect()`: servers plus credentials in container mode. */
  readonly connectionOptions: TestNatsConnectionOptions;
  /** The spawned server (binary mode only). */
  readonly server: NatsServer | undefined;
  /**
   * Stop then start on the same port and store (JetStream data survives).
   * @throws Error in container mode.
   */
  restart(): Promise<void>;
  /** Stop the server (SIGTERM); idempotent. In container mode this stops the container for good. */
  stop(): Promise<void>;
  /**
   * SIGKILL the server (a crash); `restart()` or `server.start()` brings it back.
   * @throws Error in container mode.
   */
  kill(): Promise<void>;
  /** Stop and remove everything (temporary directory or container); idempotent. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** How the fixture looks for a server (replaceable to test the fixture itself). */
export interface TestNatsEnvironment {
  findBinary(): string | undefined;
  dockerReachable(): Promise<boolean>;
}

/**
 * Starts a JetStream-enabled NATS server for tests: the local binary if there is one, else a
 * Docker container if a Docker engine answers.
 * @param options - passed to {@link startNatsServer} in binary mode; in container mode only
 *   `maxPayload` and `debug` are honoured.
 * @throws Error when there is neither a nats-server binary nor a reachable Docker engine, with
 *   installation instructions.
 */
export async function startTestNats(
  options: NatsServerOptions = {},
  environment: TestNatsEnvironment = { findBinary: findNatsServerBinary, dockerReachable: isDockerReachable },
): Promise<TestNats> {
  const binary = options.binary ?? environment.findBinary();
  if (binary !== undefined) {
    const server = await startNatsServer({ ...options, binary });
    return {
      mode: "binary",
      url: server.url,
      servers: [server.url],
      connectionOptions: { servers: [server.url] },
      server,
      restart: () => server.restart(),
      stop: () => server.stop(),
      kill: () => server.kill(),
      [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
    };
  }
  if (await environment.dockerReachable()) return startContainer(options);
  throw new Error(
    "The integration tests need a NATS server, and none can be started here: no nats-server binary " +
      `was found and no Docker engine answers. ${NATS_SERVER_INSTALL_HINT} ` +
      "Alternatively run a Docker engine, and the tests start NATS with testcontainers.",
  );
}

/** The server of one test file and a connection to it; see {@link natsForFile}. */
export interface FileNats {
  /** The server, from the file's `beforeAll` hooks on. */
  readonly nats: TestNats;
  /** A connection to it, for the tests' own streams and checks. */
  readonly nc: NatsConnection;
}

/**
 * One server for the tests of a file: started (with a connection to it) in a `beforeAll` hook and
 * stopped in an `afterAll` hook, which run before and after the file's own hooks registered after
 * this call. Read its fields in tests and hooks, not when the file is imported.
 */
export function natsForFile(options: NatsServerOptions = {}): FileNats {
  let nats: TestNats | undefined;
  let nc: NatsConnection | undefined;
  beforeAll(async () => {
    nats = await startTestNats(options);
    nc = await connect(nats.connectionOptions);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.[Symbol.asyncDispose]();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("natsForFile: the file's server is read before its beforeAll hook ran");
    return value;
  };
  return {
    get nats() {
      return started(nats);
    },
    get nc() {
      return started(nc);
    },
  };
}

/**
 * Starts a 3-node (by default) JetStream cluster for tests. Needs the nats-server binary.
 * @throws Error when no nats-server binary is found, with installation instructions.
 */
export async function startTestNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const binary = options.binary ?? findNatsServerBinary();
  if (binary === undefined) {
    throw new Error(
      "The cluster tests need the nats-server binary (testcontainers is not used for clusters). " +
        NATS_SERVER_INSTALL_HINT,
    );
  }
  return startNatsCluster({ ...options, binary });
}

async function startContainer(options: NatsServerOptions): Promise<TestNats> {
  // Loaded only here: it pulls in the whole testcontainers stack.
  const { NatsContainer } = await import("@testcontainers/nats");
  let container = new NatsContainer(process.env["NATS_DOCKER_IMAGE"] ?? "nats:2.9.10").withJetStream();
  if (options.maxPayload !== undefined) {
    container = container.withArg("--max_payload", String(options.maxPayload));
  }
  if (options.debug === true) container = container.withArg("-D");
  const started = await container.start();
  const connection = started.getConnectionOptions();
  const hostPort = Array.isArray(connection.servers) ? connection.servers[0] : connection.servers;
  const url = `nats://${hostPort ?? ""}`;
  const connectionOptions: TestNatsConnectionOptions = { servers: [url] };
  if (connection.user !== undefined) connectionOptions.user = connection.user;
  if (connection.pass !== undefined) connectionOptions.pass = connection.pass;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= started.stop().then(() => undefined);
    return stopped;
  };
  const unsupported = (what: string) => (): Promise<void> =>
    Promise.reject(
      new Error(
        `${what}() is not supported when NATS runs in a container; install the nats-server binary ` +
          "(apt-get install -y nats-server, or set NATS_SERVER_BIN) to run this test.",
      ),
    );
  return {
    mode: "container",
    url,
    servers: [url],
    connectionOptions,
    server: undefined,
    restart: unsupported("restart"),
    stop,
    kill: unsupported("kill"),
    [Symbol.asyncDispose]: stop,
  };
}

/** Unix socket paths where a Docker engine commonly listens. */
function dockerSocketCandidates(): string[] {
  const candidates = ["/var/run/docker.sock"];
  const runtimeDir = process.env["XDG_RUNTIME_DIR"];
  if (runtimeDir !== undefined && runtimeDir !== "") candidates.push(join(runtimeDir, "docker.sock"));
  candidates.push(join(homedir(), ".docker", "run", "docker.sock"));
  return candidates;
}

/**
 * True when a Docker engine answers `GET /_ping` (1 s timeout): on `$DOCKER_HOST` when set (for a
 * TLS or ssh host the variable alone counts), else on the usual unix sockets.
 */
async function isDockerReachable(): Promise<boolean> {
  const dockerHost = process.env["DOCKER_HOST"];
  if (dockerHost !== undefined && dockerHost !== "") {
    if (dockerHost.startsWith("unix://")) return ping({ socketPath: dockerHost.slice("unix://".length) });
    if (dockerHost.startsWith("tcp://") && process.env["DOCKER_TLS_VERIFY"] === undefined) {
      const hostPort = new URL(dockerHost.replace(/^tcp:/, "http:"));
      return ping({ host: hostPort.hostname, port: Number(hostPort.port || 2375) });
    }
    return true;
  }
  for (const socketPath of dockerSocketCandidates()) {
    if (existsSync(socketPath) && (await ping({ socketPath }))) return true;
  }
  return false;
}

function ping(target: { socketPath: string } | { host: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ ...target, path: "/_ping", method: "GET", agent: false, timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

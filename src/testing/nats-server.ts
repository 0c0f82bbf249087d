/**
 * Real `nats-server` processes for tests, benchmarks and demos: one server or a small cluster on
 * 127.0.0.1, random free ports, a generated config file and a temporary JetStream store.
 *
 * Each server gets a fresh temporary directory under `os.tmpdir()` holding its config file, its log
 * (the process's stdout and stderr, appended across restarts) and, unless the caller gives
 * `storeDir`, its JetStream store. Readiness is measured, never slept for: the client port must
 * accept TCP connections and the HTTP monitoring endpoint (on its own random port) must answer
 * `GET /healthz?js-enabled-only=true` with 200 (plain `/healthz` when JetStream is off). A cluster
 * is ready when every node answers plain `/healthz` with 200 (which on a clustered server means
 * "in contact with the JetStream meta leader, assets current"), every node's `/jsz` names the same
 * `meta_cluster.leader`, and every node has a route to every other running node.
 *
 * Spawned processes never outlive this process: they are killed with SIGKILL on `exit`, and on
 * SIGINT/SIGTERM (re-raised afterwards when no other handler is installed); the temporary
 * directories of servers not disposed by then are removed too (except those of failed starts,
 * kept for inspection).
 *
 * This module uses only Node built-ins; it does not connect with a NATS client.
 */

import { AcademyError } from "../errors.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, closeSync, constants as fsConstants, openSync, rmSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { createServer, connect as netConnect, type Server } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, isAbsolute, join } from "node:path";

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** Lifecycle states of a {@link NatsServer}. */
export const NatsServerState = {
  /** A start is in progress. */
  Starting: "starting",
  /** The process runs and passed the readiness check. */
  Running: "running",
  /** `stop()`/`kill()` is in progress. */
  Stopping: "stopping",
  /** No process runs (never started, stopped, killed, or exited by itself); `start()` starts it
   * again with the same ports and store. */
  Stopped: "stopped",
  /** The last start attempt failed; `start()` may be retried. */
  Failed: "failed",
  /** Disposed: the temporary directory is gone and the server cannot be started again. */
  Disposed: "disposed",
} as const;
/** One of the {@link NatsServerState} values. */
export type NatsServerState = (typeof NatsServerState)[keyof typeof NatsServerState];

/** What callers may pass to {@link startNatsServer}. Every field is optional. */
export interface NatsServerOptions {
  /**
   * Path of the `nats-server` executable.
   * @defaultValue {@link findNatsServerBinary}`()`: `$NATS_SERVER_BIN`, else `nats-server` on PATH.
   */
  binary?: string;
  /**
   * Client port on 127.0.0.1.
   * @defaultValue a random free port
   */
  port?: number;
  /**
   * JetStream store directory. A directory given here is never deleted by this module.
   * @defaultValue `store/` inside the server's fresh temporary directory (deleted on dispose)
   */
  storeDir?: string;
  /**
   * Largest message payload the server accepts, in bytes (`max_payload`).
   * @defaultValue the server's default, 1 MiB
   */
  maxPayload?: number;
  /**
   * Enable JetStream.
   * @defaultValue true
   */
  jetstream?: boolean;
  /**
   * Verbose (`debug: true`) server logs. Use `extraConfig: "trace: true"` for protocol traces.
   * @defaultValue false
   */
  debug?: boolean;
  /**
   * Text appended verbatim to the generated config file (NATS config syntax).
   * @defaultValue `""`
   */
  extraConfig?: string;
  /**
   * How long one start (and each restart) may take before it fails, in milliseconds.
   * @defaultValue 10_000
   */
  startTimeoutMs?: number;
  /**
   * The server's `server_name`.
   * @defaultValue `"academy-test-<random>"`
   */
  serverName?: string;
}

/** What callers may pass to {@link startNatsCluster}. Every field is optional. */
export interface NatsClusterOptions {
  /**
   * Number of nodes.
   * @defaultValue 3
   */
  size?: number;
  /**
   * The cluster `name` shared by every node; node `i` is named `<clusterName>-n<i>`.
   * @defaultValue `"academy-test-<random>"`
   */
  clusterName?: string;
  /**
   * Path of the `nats-server` executable.
   * @defaultValue {@link findNatsServerBinary}`()`
   */
  binary?: string;
  /**
   * `max_payload` of every node, in bytes.
   * @defaultValue the server's default, 1 MiB
   */
  maxPayload?: number;
  /**
   * Verbose (`debug: true`) server logs.
   * @defaultValue false
   */
  debug?: boolean;
  /**
   * Text appended verbatim to every node's config file.
   * @defaultValue `""`
   */
  extraConfig?: string;
  /**
   * How long the whole cluster may take to start and elect a JetStream meta leader, in
   * milliseconds. Later restarts of single nodes use `nodeStartTimeoutMs`.
   * @defaultValue 30_000
   */
  startTimeoutMs?: number;
  /**
   * How long one node may take to start or restart on its own, in milliseconds.
   * @defaultValue 10_000
   */
  nodeStartTimeoutMs?: number;
}

/** Options of {@link NatsServer.stop}. */
export interface NatsServerStopOptions {
  /**
   * How long to wait after SIGTERM before sending SIGKILL, in milliseconds.
   * @defaultValue 5_000
   */
  graceMs?: number;
}

/**
 * A `nats-server` process on 127.0.0.1 with fixed ports and a fixed store directory: `restart()`
 * and `start()` after `stop()`/`kill()` bring it back on the same port with the same JetStream
 * data. Create one with {@link startNatsServer} or {@link startNatsCluster}.
 */
export interface NatsServer extends AsyncDisposable {
  /** Client URL, `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** Client port. */
  readonly port: number;
  /** HTTP monitoring port (`/varz`, `/healthz`, `/jsz`, ...). */
  readonly monitorPort: number;
  /** Cluster (route) port, or `undefined` for a standalone server. */
  readonly clusterPort: number | undefined;
  /** The configured `server_name`. */
  readonly serverName: string;
  /** JetStream store directory (the server itself writes into `<storeDir>/jetstream`). */
  readonly storeDir: string;
  /** The generated config file. */
  readonly configPath: string;
  /** The server's stdout and stderr, appended across restarts. */
  readonly logPath: string;
  /** The temporary directory holding config, log and (by default) the store. */
  readonly tempDir: string;
  /** Process id while a process exists, else `undefined`. */
  readonly pid: number | undefined;
  /** True while the process runs (including while it is being stopped). */
  readonly isRunning: boolean;
  /** Lifecycle state. */
  readonly state: NatsServerState;
  /**
   * Starts the process if none runs and waits until it is ready; a no-op when running.
   * @throws NatsServerError if the process exits early or is not ready within `startTimeoutMs`
   *   (the message holds the tail of the log and the config path), or after dispose.
   */
  start(): Promise<void>;
  /** SIGTERM, wait for the exit; SIGKILL after `graceMs`. Idempotent. */
  stop(options?: NatsServerStopOptions): Promise<void>;
  /** SIGKILL (a crash), wait for the exit. Idempotent. */
  kill(): Promise<void>;
  /** `stop()` then `start()`: same port, same store directory, so JetStream data survives. */
  restart(): Promise<void>;
  /**
   * Polls plain `GET /healthz` until it answers 200. On a clustered server that means JetStream is
   * in contact with a meta leader and its streams and consumers are current.
   * @param timeoutMs - how long to wait, in milliseconds (default 10_000)
   * @throws NatsServerError on timeout or when the process is not running.
   */
  waitUntilHealthy(timeoutMs?: number): Promise<void>;
  /** The whole log file (all runs) as text. */
  readLog(): Promise<string>;
  /** Stops the server and deletes its temporary directory (never a caller-given `storeDir`). */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A cluster of {@link NatsServer}s created by {@link startNatsCluster}. */
export interface NatsCluster extends AsyncDisposable {
  /** The cluster `name`. */
  readonly name: string;
  /** The nodes; each can be stopped, killed and restarted on its own (same ports and store). */
  readonly servers: readonly NatsServer[];
  /** Client URLs of every node, in node order. */
  readonly urls: string[];
  /**
   * Waits until every running node is healthy (`/healthz` 200), all of them name the same
   * JetStream meta leader in `/jsz`, and each has a route to every other running node.
   * @param timeoutMs - how long to wait, in milliseconds (default 30_000)
   * @throws NatsServerError on timeout.
   */
  waitUntilReady(timeoutMs?: number): Promise<void>;
  /** Stops every node (concurrently). Idempotent. */
  stop(): Promise<void>;
  /** Stops every node and deletes their temporary directories. Idempotent. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Stable codes of {@link NatsServerError}. */
export const NatsServerErrorCode = {
  /** No `nats-server` binary was found or the given one does not exist / is not executable. */
  BinaryNotFound: "NATS_SERVER_BINARY_NOT_FOUND",
  /** The process exited before it was ready (bad config, port in use, ...). */
  ExitedEarly: "NATS_SERVER_EXITED_EARLY",
  /** The server was not ready before the deadline. */
  StartTimeout: "NATS_SERVER_START_TIMEOUT",
  /** The server or cluster did not become healthy before the deadline. */
  NotHealthy: "NATS_SERVER_NOT_HEALTHY",
  /** The operation is not possible in the current state (e.g. after dispose). */
  InvalidState: "NATS_SERVER_INVALID_STATE",
  /** Invalid options. */
  InvalidOptions: "NATS_SERVER_INVALID_OPTIONS",
} as const;
/** One of the {@link NatsServerErrorCode} values. */
export type NatsServerErrorCode = (typeof NatsServerErrorCode)[keyof typeof NatsServerErrorCode];

/** Context fields of a {@link NatsServerError}. */
export interface NatsServerErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** The config file of the server concerned. */
  configPath?: string;
  /** The log file of the server concerned. */
  logPath?: string;
}

/**
 * Failure of this testing helper: a missing binary, a server that exits early or is not ready in
 * time. `code` is stable; `configPath`/`logPath` point at the files to inspect.
 */
export class NatsServerError extends AcademyError {
  override readonly name: string = "NatsServerError";
  /** Stable machine-readable code. */
  override readonly code: NatsServerErrorCode;
  /** The config file of the server concerned, if any. */
  readonly configPath: string | undefined;
  /** The log file of the server concerned, if any. */
  readonly logPath: string | undefined;

  constructor(message: string, code: NatsServerErrorCode, options: NatsServerErrorOptions = {}) {
    super(message, { cause: options.cause, code });
    this.code = code;
    this.configPath = options.configPath;
    this.logPath = options.logPath;
  }
}

// ---------------------------------------------------------------------------------------------
// Binary lookup
// ---------------------------------------------------------------------------------------------

/** Directories searched after PATH: Debian installs nats-server in /usr/sbin, often not on PATH. */
const EXTRA_BINARY_DIRS = ["/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/usr/bin"];

/** How to get a nats-server binary; appended to "not found" errors. */
export const NATS_SERVER_INSTALL_HINT =
  "Install nats-server (`apt-get install -y nats-server` on Debian/Ubuntu, or download a release " +
  "from https://github.com/nats-io/nats-server/releases and put it on PATH), or set " +
  "NATS_SERVER_BIN to its path.";

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Locates the `nats-server` executable: `$NATS_SERVER_BIN` when set (returned as is, even if it
 * does not exist, so that a wrong value fails loudly on start), else the first executable
 * `nats-server` in the PATH directories, then /usr/sbin, /usr/local/bin, /usr/local/sbin, /usr/bin.
 * @returns the path, or `undefined` when none is found
 */
export function findNatsServerBinary(): string | undefined {
  const fromEnv = process.env["NATS_SERVER_BIN"];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const name = process.platform === "win32" ? "nats-server.exe" : "nats-server";
  const pathDirs = (process.env["PATH"] ?? "").split(delimiter).filter((d) => d !== "");
  for (const dir of [...pathDirs, ...EXTRA_BINARY_DIRS]) {
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** @internal */
export function resolveBinary(binary: string | undefined): string {
  const resolved = binary ?? findNatsServerBinary();
  if (resolved === undefined) {
    throw new NatsServerError(
      `nats-server binary not found on PATH, /usr/sbin or /usr/local/bin. ${NATS_SERVER_INSTALL_HINT}`,
      NatsServerErrorCode.BinaryNotFound,
    );
  }
  if (isAbsolute(resolved) || resolved.includes("/")) {
    if (!isExecutableFile(resolved)) {
      throw new NatsServerError(
        `nats-server binary "${resolved}" does not exist or is not an executable file. ` +
          NATS_SERVER_INSTALL_HINT,
        NatsServerErrorCode.BinaryNotFound,
      );
    }
  }
  return resolved;
}

// ---------------------------------------------------------------------------------------------
// Free ports
// ---------------------------------------------------------------------------------------------

/** Ports this process has handed out; never handed out twice. */
const handedOutPorts = new Set<number>();

function listenOnFreePort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => resolve(server));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Allocates `count` distinct free TCP ports on 127.0.0.1 by binding port 0 that many times at
 * once, reading the ports and closing the sockets. A port is never returned twice by this process.
 * Another process may still take a port between this call and its use: callers that own the port
 * choice retry on "address already in use".
 * @param count - how many ports (default 1)
 */
export async function findFreePorts(count = 1): Promise<number[]> {
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    for (let attempts = 0; ports.length < count; attempts++) {
      if (attempts > count + 100) {
        throw new NatsServerError("could not allocate free ports", NatsServerErrorCode.InvalidState);
      }
      const server = await listenOnFreePort();
      held.push(server);
      const address = server.address();
      if (address === null || typeof address === "string") continue;
      if (handedOutPorts.has(address.port)) continue;
      ports.push(address.port);
    }
  } finally {
    await Promise.all(held.map(closeServer));
  }
  for (const port of ports) handedOutPorts.add(port);
  return ports;
}

// ---------------------------------------------------------------------------------------------
// Child process tracking: never outlive the parent
// ---------------------------------------------------------------------------------------------

const liveChildren = new Set<ChildProcess>();
/** Temporary directories of servers not disposed yet: removed if this process exits first. */
const undisposedTempDirs = new Set<string>();
let exitHooksInstalled = false;

function cleanUpSync(): void {
  for (const child of liveChildren) {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const dir of undisposedTempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // best effort at exit
    }
  }
}

function onTerminatingSignal(signal: NodeJS.Signals): void {
  cleanUpSync();
  // Our handler replaced the default "terminate" action; restore it when nobody else handles it.
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onTerminatingSignal);
    process.kill(process.pid, signal);
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", cleanUpSync);
  process.on("SIGINT", onTerminatingSignal);
  process.on("SIGTERM", onTerminatingSignal);
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const POLL_INTERVAL_MS = 25;
const PROBE_TIMEOUT_MS = 1_000;
const LOG_TAIL_LINES = 40;

/** @internal */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** @internal */
export function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 10);
}

/**
 * Connects to 127.0.0.1:`port` and reads the `INFO {...}` line a NATS server sends first.
 * @returns the `server_name` it announces (`""` if none), or `undefined` when nothing NATS-like
 *   answers within the probe timeout
 */
function readServerName(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    let buffered = "";
    const done = (name: string | undefined): void => {
      socket.removeAllListeners();
      socket.on("error", () => undefined);
      socket.destroy();
      resolve(name);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(undefined));
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const end = buffered.indexOf("\r\n");
      if (end < 0) {
        if (buffered.length > 64 * 1024) done(undefined);
        return;
      }
      const line = buffered.slice(0, end);
      if (!line.startsWith("INFO ")) return done(undefined);
      try {
        const name = field(JSON.parse(line.slice(5)) as unknown, "server_name");
        done(typeof name === "string" ? name : "");
      } catch {
        done(undefined);
      }
    });
    socket.once("close", () => done(undefined));
    socket.once("error", () => done(undefined));
  });
}

interface HttpResult {
  status: number;
  body: string;
}

/** GET http://127.0.0.1:`port``path` without keep-alive; rejects on connection errors. */
function httpGet(port: number, path: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: "GET", agent: false, timeout: PROBE_TIMEOUT_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** @internal */
export async function httpJson(port: number, path: string): Promise<unknown> {
  const res = await httpGet(port, path);
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${res.body.trim()}`);
  return JSON.parse(res.body) as unknown;
}

/** @internal */
export function field(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

/** @internal */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A NATS config string literal (JSON escaping is valid NATS config syntax). */
function q(value: string): string {
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------------
// Server implementation
// ---------------------------------------------------------------------------------------------

/** Cluster part of a node's config (internal: {@link startNatsCluster} fills it). */
interface ClusterConfig {
  name: string;
  port: number;
  routePorts: number[];
}

/** A leafnode remote of a node's config (internal: the leaf topology fills it). */
export interface LeafRemoteConfig {
  /** `nats-leaf://` URL(s) of the hub (or of a proxy in front of it). */
  urls: string[];
  /** Subjects the leaf does not take from the hub. */
  denyImports: string[];
  /** Subjects the leaf does not send to the hub. */
  denyExports: string[];
}

/** Fully resolved settings of one server. */
export interface ResolvedServerConfig {
  binary: string;
  serverName: string;
  port: number;
  monitorPort: number;
  tempDir: string;
  storeDir: string;
  maxPayload: number | undefined;
  jetstream: boolean;
  debug: boolean;
  extraConfig: string;
  startTimeoutMs: number;
  cluster: ClusterConfig | undefined;
  /** `jetstream { domain }`, when set. */
  jetstreamDomain?: string | undefined;
  /** `leafnodes { listen, advertise }` of a hub, when set. */
  leafnodes?: { port: number; advertise: string | undefined } | undefined;
  /** `leafnodes { remotes }` of a leaf, when set. */
  leafRemotes?: LeafRemoteConfig[] | undefined;
}

function renderConfig(c: ResolvedServerConfig): string {
  const lines = [
    "# Generated by academy-nats/testing.",
    `server_name: ${q(c.serverName)}`,
    `listen: ${q(`127.0.0.1:${c.port}`)}`,
    `http: ${q(`127.0.0.1:${c.monitorPort}`)}`,
    "logtime: true",
  ];
  if (c.maxPayload !== undefined) lines.push(`max_payload: ${c.maxPayload}`);
  if (c.debug) lines.push("debug: true");
  if (c.jetstream) {
    lines.push("jetstream {", `  store_dir: ${q(c.storeDir)}`);
    if (c.jetstreamDomain !== undefined) lines.push(`  domain: ${q(c.jetstreamDomain)}`);
    lines.push("}");
  }
  if (c.leafnodes !== undefined || c.leafRemotes !== undefined) {
    lines.push("leafnodes {");
    if (c.leafnodes !== undefined) {
      lines.push(`  listen: ${q(`127.0.0.1:${c.leafnodes.port}`)}`);
      if (c.leafnodes.advertise !== undefined) lines.push(`  advertise: ${q(c.leafnodes.advertise)}`);
    }
    if (c.leafRemotes !== undefined) {
      lines.push("  reconnect: 1", "  remotes: [");
      for (const remote of c.leafRemotes) {
        lines.push("    {", `      urls: [${remote.urls.map(q).join(", ")}]`);
        if (remote.denyImports.length > 0) lines.push(`      deny_imports: [${remote.denyImports.map(q).join(", ")}]`);
        if (remote.denyExports.length > 0) lines.push(`      deny_exports: [${remote.denyExports.map(q).join(", ")}]`);
        lines.push("    }");
      }
      lines.push("  ]");
    }
    lines.push("}");
  }
  if (c.cluster !== undefined) {
    lines.push(
      "cluster {",
      `  name: ${q(c.cluster.name)}`,
      `  listen: ${q(`127.0.0.1:${c.cluster.port}`)}`,
      "  routes: [",
      ...c.cluster.routePorts.map((p) => `    ${q(`nats-route://127.0.0.1:${p}`)}`),
      "  ]",
      "}",
    );
  }
  if (c.extraConfig !== "") lines.push("", "# extraConfig", c.extraConfig);
  return `${lines.join("\n")}\n`;
}

/** @internal A server process from a resolved config (the leaf topology builds its nodes this way). */
export class NatsServerProcess implements NatsServer {
  readonly url: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly clusterPort: number | undefined;
  readonly serverName: string;
  readonly storeDir: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly tempDir: string;

  readonly #config: ResolvedServerConfig;
  #state: NatsServerState = NatsServerState.Stopped;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  /** Serialises start/stop/kill/dispose. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(config: ResolvedServerConfig) {
    this.#config = config;
    this.port = config.port;
    this.monitorPort = config.monitorPort;
    this.clusterPort = config.cluster?.port;
    this.serverName = config.serverName;
    this.storeDir = config.storeDir;
    this.tempDir = config.tempDir;
    this.configPath = join(config.tempDir, "nats-server.conf");
    this.logPath = join(config.tempDir, "nats-server.log");
    this.url = `nats://127.0.0.1:${config.port}`;
    undisposedTempDirs.add(config.tempDir);
    installExitHooks();
  }

  /** Keeps the temporary directory when this process exits (for a failed start's inspection). */
  keepTempDirAtExit(): void {
    undisposedTempDirs.delete(this.tempDir);
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get isRunning(): boolean {
    return this.#child !== undefined;
  }

  get state(): NatsServerState {
    return this.#state;
  }

  /** Writes the config file (once, before the first start). */
  async writeConfig(): Promise<void> {
    await writeFile(this.configPath, renderConfig(this.#config), "utf8");
  }

  #serialize<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(op, op);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  start(): Promise<void> {
    return this.#serialize(() => this.#start());
  }

  stop(options: NatsServerStopOptions = {}): Promise<void> {
    return this.#serialize(() => this.#stop(options.graceMs ?? 5_000));
  }

  kill(): Promise<void> {
    return this.#serialize(() => this.#terminate("SIGKILL", 0));
  }

  restart(): Promise<void> {
    return this.#serialize(async () => {
      await this.#stop(5_000);
      await this.#start();
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#serialize(async () => {
      if (this.#state === NatsServerState.Disposed) return;
      await this.#stop(5_000);
      this.#state = NatsServerState.Disposed;
      // The store lives inside tempDir unless the caller gave one; a caller's store is kept.
      await rm(this.tempDir, { recursive: true, force: true });
      undisposedTempDirs.delete(this.tempDir);
    });
  }

  async readLog(): Promise<string> {
    try {
      return await readFile(this.logPath, "utf8");
    } catch {
      return "";
    }
  }

  async waitUntilHealthy(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "no answer yet";
    for (;;) {
      if (this.#child === undefined) {
        throw new NatsServerError(
          `nats-server ${this.serverName} is not running`,
          NatsServerErrorCode.InvalidState,
          this.#errorContext(),
        );
      }
      try {
        const res = await httpGet(this.monitorPort, "/healthz");
        if (res.status === 200) return;
        last = `HTTP ${res.status} ${res.body.trim()}`;
      } catch (error) {
        last = errorMessage(error);
      }
      if (Date.now() >= deadline) {
        throw new NatsServerError(
          `nats-server ${this.serverName} not healthy after ${timeoutMs} ms (last /healthz: ${last})`,
          NatsServerErrorCode.NotHealthy,
          this.#errorContext(),
        );
      }
      await delay(POLL_INTERVAL_MS);
    }
  }

  #errorContext(): NatsServerErrorOptions {
    return { configPath: this.configPath, logPath: this.logPath };
  }

  async #logSize(): Promise<number> {
    try {
      return (await stat(this.logPath)).size;
    } catch {
      return 0;
    }
  }

  /** What the server wrote since byte `offset` of the log. */
  async #logSince(offset: number): Promise<string> {
    try {
      return (await readFile(this.logPath)).subarray(offset).toString("utf8");
    } catch {
      return "";
    }
  }

  /** The last lines the server wrote since byte `offset` of the log. */
  async #logTail(offset: number): Promise<string> {
    const text = await this.#logSince(offset);
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    return lines.slice(-LOG_TAIL_LINES).join("\n");
  }

  async #start(): Promise<void> {
    if (this.#state === NatsServerState.Disposed) {
      throw new NatsServerError(
        `nats-server ${this.serverName} was disposed and cannot be started again`,
        NatsServerErrorCode.InvalidState,
        this.#errorContext(),
      );
    }
    if (this.#child !== undefined) return;
    this.#state = NatsServerState.Starting;
    const logOffset = await this.#logSize();
    const logFd = openSync(this.logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(this.#config.binary, ["-c", this.configPath], {
        stdio: ["ignore", logFd, logFd],
        windowsHide: true,
      });
    } catch (error) {
      this.#state = NatsServerState.Failed;
      throw new NatsServerError(
        `could not spawn nats-server "${this.#config.binary}": ${errorMessage(error)}`,
        NatsServerErrorCode.ExitedEarly,
        { ...this.#errorContext(), cause: error },
      );
    } finally {
      closeSync(logFd);
    }
    let exitDescription: string | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        exitDescription = signal !== null ? `signal ${signal}` : `exit code ${code ?? "?"}`;
        liveChildren.delete(child);
        this.#onUnexpectedExit(child);
        resolve();
      });
      child.once("error", (error) => {
        // Spawn failures (ENOENT, EACCES) emit "error" and possibly no "exit".
        exitDescription ??= `spawn error: ${error.message}`;
        if (child.pid === undefined) {
          liveChildren.delete(child);
          resolve();
        }
      });
    });
    liveChildren.add(child);
    this.#child = child;
    this.#exited = exited;

    const timeoutMs = this.#config.startTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    let exitedEarly = false;
    void exited.then(() => {
      exitedEarly = true;
    });
    let lastProbe = "client port not accepting connections yet";
    try {
      for (;;) {
        if (exitedEarly) {
          throw new NatsServerError(
            `nats-server ${this.serverName} exited before it was ready (${exitDescription ?? "unknown"}).\n` +
              `config: ${this.configPath}\nlog: ${this.logPath}\n` +
              `--- log tail ---\n${await this.#logTail(logOffset)}`,
            NatsServerErrorCode.ExitedEarly,
            this.#errorContext(),
          );
        }
        const probe = await this.#probeReady(logOffset);
        if (probe === true) break;
        lastProbe = probe;
        if (Date.now() >= deadline) {
          throw new NatsServerError(
            `nats-server ${this.serverName} not ready after ${timeoutMs} ms (${lastProbe}).\n` +
              `config: ${this.configPath}\nlog: ${this.logPath}\n` +
              `--- log tail ---\n${await this.#logTail(logOffset)}`,
            NatsServerErrorCode.StartTimeout,
            this.#errorContext(),
          );
        }
        await Promise.race([delay(POLL_INTERVAL_MS), exited]);
      }
    } catch (error) {
      await this.#terminate("SIGKILL", 0);
      this.#state = NatsServerState.Failed;
      throw error;
    }
    this.#state = NatsServerState.Running;
  }

  /** `true` when ready, else a description of what is still missing. */
  async #probeReady(logOffset: number): Promise<true | string> {
    // Reading INFO (not just connecting) tells our server from another one holding the port.
    const name = await readServerName(this.port);
    if (name === undefined) return "client port not answering with INFO yet";
    if (name !== this.serverName) return `client port answered by another server ("${name}")`;
    const path = this.#config.jetstream ? "/healthz?js-enabled-only=true" : "/healthz";
    let res: HttpResult;
    try {
      res = await httpGet(this.monitorPort, path);
    } catch (error) {
      return `monitor endpoint: ${errorMessage(error)}`;
    }
    if (res.status === 200) return true;
    if (res.status === 404) {
      // A server without /healthz (older than 2.7): fall back to its log line.
      const log = await this.#logSince(logOffset);
      if (log.includes("Server is ready")) return true;
      return "no /healthz and no \"Server is ready\" in the log yet";
    }
    return `GET ${path}: HTTP ${res.status} ${res.body.trim()}`;
  }

  /** A running server that exits on its own (crash, external kill) becomes `stopped`. */
  #onUnexpectedExit(child: ChildProcess): void {
    if (this.#child !== child || this.#state !== NatsServerState.Running) return;
    this.#child = undefined;
    this.#exited = undefined;
    this.#state = NatsServerState.Stopped;
  }

  async #stop(graceMs: number): Promise<void> {
    await this.#terminate("SIGTERM", graceMs);
  }

  async #terminate(signal: "SIGTERM" | "SIGKILL", graceMs: number): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (child === undefined || exited === undefined) return;
    if (this.#state !== NatsServerState.Starting) this.#state = NatsServerState.Stopping;
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      if (signal !== "SIGKILL") {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), graceMs);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) child.kill("SIGKILL");
      }
      await exited;
    }
    this.#child = undefined;
    this.#exited = undefined;
    if (this.#state !== NatsServerState.Starting) this.#state = NatsServerState.Stopped;
  }
}

// ---------------------------------------------------------------------------------------------
// Factories
// ---------------------------------------------------------------------------------------------

/** @internal */
export const MAX_PORT_ATTEMPTS = 3;

/** @internal */
export function checkPositiveInt(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isInteger(value) || value <= 0)) {
    throw new NatsServerError(
      `${name} must be a positive integer, got ${value}`,
      NatsServerErrorCode.InvalidOptions,
    );
  }
}

/** @internal */
export function isPortConflict(error: unknown, logTail: string): boolean {
  return (
    error instanceof NatsServerError &&
    error.code === NatsServerErrorCode.ExitedEarly &&
    /address already in use/i.test(logTail)
  );
}

/**
 * Spawns a `nats-server` on 127.0.0.1 with a generated config and waits until it is ready (client
 * port accepts connections and `/healthz?js-enabled-only=true` answers 200). When the ports were
 * chosen here and another process took one meanwhile, it retries on fresh ports.
 * @throws NatsServerError when no binary is found (with install instructions), when the process
 *   exits before it is ready or is not ready within `startTimeoutMs` (with the log tail and config
 *   path; the temporary directory is kept for inspection).
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = resolveBinary(options.binary);
  checkPositiveInt("port", options.port);
  checkPositiveInt("maxPayload", options.maxPayload);
  checkPositiveInt("startTimeoutMs", options.startTimeoutMs);
  for (let attempt = 1; ; attempt++) {
    const ports = await findFreePorts(options.port === undefined ? 2 : 1);
    const port = options.port ?? (ports.shift() as number);
    const monitorPort = ports.shift() as number;
    const tempDir = await mkdtemp(join(tmpdir(), "academy-nats-"));
    const server = new NatsServerProcess({
      binary,
      serverName: options.serverName ?? `academy-test-${randomSuffix()}`,
      port,
      monitorPort,
      tempDir,
      storeDir: options.storeDir ?? join(tempDir, "store"),
      maxPayload: options.maxPayload,
      jetstream: options.jetstream ?? true,
      debug: options.debug ?? false,
      extraConfig: options.extraConfig ?? "",
      startTimeoutMs: options.startTimeoutMs ?? 10_000,
      cluster: undefined,
    });
    await server.writeConfig();
    try {
      await server.start();
      return server;
    } catch (error) {
      const retry =
        options.port === undefined &&
        attempt < MAX_PORT_ATTEMPTS &&
        isPortConflict(error, await server.readLog());
      if (!retry) {
        server.keepTempDirAtExit();
        throw error;
      }
      await server[Symbol.asyncDispose]();
    }
  }
}

class NatsClusterImpl implements NatsCluster {
  readonly name: string;
  readonly servers: readonly NatsServerProcess[];
  readonly urls: string[];

  constructor(name: string, servers: NatsServerProcess[]) {
    this.name = name;
    this.servers = servers;
    this.urls = servers.map((s) => s.url);
  }

  async waitUntilReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "no answer yet";
    for (;;) {
      const verdict = await this.#probe();
      if (verdict === true) return;
      last = verdict;
      if (Date.now() >= deadline) {
        throw new NatsServerError(
          `NATS cluster ${this.name} not ready after ${timeoutMs} ms: ${last}\n` +
            this.servers.map((s) => `${s.serverName}: config ${s.configPath}, log ${s.logPath}`).join("\n"),
          NatsServerErrorCode.NotHealthy,
        );
      }
      await delay(POLL_INTERVAL_MS * 4);
    }
  }

  async #probe(): Promise<true | string> {
    const running = this.servers.filter((s) => s.isRunning);
    if (running.length === 0) return "no node is running";
    const leaders = new Set<string>();
    for (const server of running) {
      try {
        const health = await httpGet(server.monitorPort, "/healthz");
        if (health.status !== 200) {
          return `${server.serverName} /healthz: HTTP ${health.status} ${health.body.trim()}`;
        }
        const jsz = await httpJson(server.monitorPort, "/jsz");
        const leader = field(field(jsz, "meta_cluster"), "leader");
        if (typeof leader !== "string" || leader === "") return `${server.serverName} knows no meta leader`;
        leaders.add(leader);
        const routez = await httpJson(server.monitorPort, "/routez");
        const routes = field(routez, "num_routes");
        if (typeof routes !== "number" || routes < running.length - 1) {
          return `${server.serverName} has ${String(routes)} routes, expected ${running.length - 1}`;
        }
      } catch (error) {
        return `${server.serverName}: ${errorMessage(error)}`;
      }
    }
    if (leaders.size !== 1) return `nodes disagree on the meta leader: ${[...leaders].join(", ")}`;
    return true;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.servers.map((s) => s[Symbol.asyncDispose]()));
  }
}

/**
 * Starts a cluster of `size` JetStream nodes on 127.0.0.1: unique `server_name`s, one cluster
 * `name`, own store directories, client/cluster/monitor ports allocated up front, and routes from
 * every node to the others. Resolves once {@link NatsCluster.waitUntilReady} holds (meta leader
 * elected and known to every node). On failure every node is killed; the temporary directories
 * are kept for inspection.
 * @throws NatsServerError when no binary is found, a node does not start, or no meta leader is
 *   agreed on within `startTimeoutMs`.
 */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const binary = resolveBinary(options.binary);
  const size = options.size ?? 3;
  checkPositiveInt("size", size);
  checkPositiveInt("maxPayload", options.maxPayload);
  checkPositiveInt("startTimeoutMs", options.startTimeoutMs);
  checkPositiveInt("nodeStartTimeoutMs", options.nodeStartTimeoutMs);
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const name = options.clusterName ?? `academy-test-${randomSuffix()}`;
  for (let attempt = 1; ; attempt++) {
    const deadline = Date.now() + startTimeoutMs;
    const ports = await findFreePorts(size * 3);
    const clientPorts = ports.slice(0, size);
    const clusterPorts = ports.slice(size, 2 * size);
    const monitorPorts = ports.slice(2 * size);
    const servers: NatsServerProcess[] = [];
    try {
      for (let i = 0; i < size; i++) {
        const tempDir = await mkdtemp(join(tmpdir(), "academy-nats-"));
        const server = new NatsServerProcess({
          binary,
          serverName: `${name}-n${i}`,
          port: clientPorts[i] as number,
          monitorPort: monitorPorts[i] as number,
          tempDir,
          storeDir: join(tempDir, "store"),
          maxPayload: options.maxPayload,
          jetstream: true,
          debug: options.debug ?? false,
          extraConfig: options.extraConfig ?? "",
          startTimeoutMs: options.nodeStartTimeoutMs ?? 10_000,
          cluster: {
            name,
            port: clusterPorts[i] as number,
            routePorts: clusterPorts.filter((_, j) => j !== i),
          },
        });
        servers.push(server);
        await server.writeConfig();
      }
      const cluster = new NatsClusterImpl(name, servers);
      await Promise.all(servers.map((s) => s.start()));
      await cluster.waitUntilReady(Math.max(1, deadline - Date.now()));
      return cluster;
    } catch (error) {
      await Promise.all(servers.map((s) => s.kill()));
      const logs = await Promise.all(servers.map((s) => s.readLog()));
      const retry = attempt < MAX_PORT_ATTEMPTS && logs.some((log) => isPortConflict(error, log));
      // Without a retry the temporary directories are kept so that configs and logs can be read.
      if (!retry) {
        for (const server of servers) server.keepTempDirAtExit();
        throw error;
      }
      await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
    }
  }
}

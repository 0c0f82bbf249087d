/**
 * `academy host`: run a runtime host until a signal drains it. Every port is bound before the host
 * joins its pool, so a port in use fails the start (exit code 2) before any agent is claimed. A
 * host started through npm or npx drains when that wrapper goes away (see {@link whenOrphaned});
 * `--pid-file` gives operators the host's own pid to signal. `--health-port` serves `/healthz`,
 * `/readyz` and the host's Prometheus metrics at `/metrics`.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { pino } from "pino";
import { Registry, collectDefaultMetrics } from "prom-client";
import type { Logger } from "pino";
import { flushTraces } from "../src/interceptors/tracing.ts";
import { RuntimeHost } from "./host.ts";
import type { ConnectionValues } from "./cli-connection.ts";
import { exchangeOptions } from "./cli-connection.ts";
import { integerOption } from "./cli-options.ts";
import { ExitCode, UsageError } from "./cli-output.ts";

/** The options of `academy host`, as commander parsed them. */
export interface HostValues extends ConnectionValues {
  pool?: string;
  module?: string[];
  capacity?: string;
  name?: string;
  heartbeatMs?: string;
  hostTtlMs?: string;
  heartbeatThread?: boolean;
  graceMs?: string;
  healthPort?: string;
  jsonCalls?: boolean;
  logLevel?: string;
  pidFile?: string;
}

/** Run a host until it is drained (exit code 0) or forced to stop (1). */
export async function runHost(values: HostValues): Promise<number> {
  const pool = values.pool;
  if (pool === undefined) throw new UsageError("academy host needs --pool <name> (or ACADEMY_POOL)");
  const modules = (values.module ?? [])
    .flatMap((m) => m.split(","))
    .map((m) => m.trim())
    .filter((m) => m !== "");
  if (modules.length === 0) throw new UsageError("academy host needs --module <spec> (or ACADEMY_MODULES)");
  const logger = pino({ level: values.logLevel ?? "info", base: { pid: process.pid } });
  const graceMs = integerOption(values.graceMs, "grace-ms") ?? 30_000;
  const healthPort = integerOption(values.healthPort, "health-port");
  const exchange = exchangeOptions(values, `academy-host-${pool}`);
  // The host's metrics, with the process's (CPU, memory, event loop lag), served at /metrics.
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const options = {
    metrics,
    pool,
    modules,
    capacity: integerOption(values.capacity, "capacity"),
    name: values.name,
    heartbeatMs: integerOption(values.heartbeatMs, "heartbeat-ms"),
    hostTtlMs: integerOption(values.hostTtlMs, "host-ttl-ms"),
    heartbeatThread: values.heartbeatThread !== false,
    jsonCalls: values.jsonCalls === true,
    exchange: { ...exchange, logger },
    logger,
  };

  // Bind first: a port in use must fail the start before the host claims any launch.
  const health = healthPort === undefined ? undefined : await serveHealth(healthPort, metrics);
  exitOnCrash(logger);
  let host: RuntimeHost;
  try {
    host = await RuntimeHost.start(options);
  } catch (error) {
    health?.server.close();
    throw error;
  }
  health?.attach(host);
  const pidFile = values.pidFile === undefined ? undefined : writePidFile(values.pidFile);
  const exitCode = await drainOnSignal(host, logger, graceMs);
  health?.server.close();
  // An OpenTelemetry SDK the process was started with (node --import) exports its last spans.
  await flushTraces();
  if (pidFile !== undefined) rmSync(pidFile, { force: true });
  logger.flush();
  return exitCode;
}

/** Write this process's pid to `path` (for `kill $(cat path)`, which reaches the host whatever started it). */
function writePidFile(path: string): string {
  try {
    writeFileSync(path, `${process.pid}\n`);
  } catch (error) {
    throw new UsageError(`--pid-file ${path}: cannot write it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  return path;
}

/** How often a host started by npm or npx checks that its wrapper is still there. */
const PARENT_CHECK_MS = 1_000;

/**
 * A host started through `npx academy` or `npm run academy` runs under wrapper processes (npm, a
 * shell) that do not pass SIGTERM on: `kill <npm's pid>` leaves the host running without it, and
 * the host would never drain. Such a host (npm sets `npm_command` or `npm_lifecycle_event` in its
 * environment) watches the npm process (found among its ancestors through /proc where there is
 * one, else its parent) and drains when it is gone, as for a signal. Hosts started by node
 * directly, a container runtime or a service manager are not affected.
 */
function whenOrphaned(onOrphaned: () => void): void {
  if (process.env.npm_command === undefined && process.env.npm_lifecycle_event === undefined) return;
  const parent = process.ppid;
  const wrapper = npmAncestor() ?? parent;
  const timer = setInterval(() => {
    if (process.ppid === parent && isAlive(wrapper)) return;
    clearInterval(timer);
    onOrphaned();
  }, PARENT_CHECK_MS);
  timer.unref();
}

/** The nearest ancestor running npm or npx (Linux: read from /proc), if any. */
function npmAncestor(): number | undefined {
  let pid = process.ppid;
  for (let depth = 0; depth < 6 && pid > 1; depth++) {
    const cmdline = readProc(pid, "cmdline")?.split("\0").join(" ");
    if (cmdline === undefined) return undefined;
    if (/\bnpm(-cli\.js|x-cli\.js)?\b|\bnpx\b|npm (exec|run)/.test(cmdline)) return pid;
    pid = Number(readProc(pid, "stat")?.replace(/^.*\) /s, "").split(" ")[1] ?? 0);
  }
  return undefined;
}

/** Whether `pid` runs (a zombie, dead but not yet reaped, does not). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return readProc(pid, "stat")?.replace(/^.*\) /s, "").startsWith("Z") !== true;
}

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * One agent's floating promise must not take down the others: log it and keep serving. An
 * uncaught exception leaves the process in an unknown state: exit, and the pool restarts the
 * agents elsewhere once this host is reaped.
 */
function exitOnCrash(logger: Logger): void {
  process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled rejection (an agent's floating promise?)"));
  process.on("uncaughtException", (error) => {
    logger.fatal({ err: error }, "uncaught exception: exiting; the pool restarts this host's agents when it is reaped");
    logger.flush();
    process.exit(ExitCode.Failed);
  });
}

/**
 * Drain the host at the first SIGTERM or SIGINT. Resolves with the exit code: 0 once drained; 1
 * if the drain fails, a second signal comes, or `graceMs` passes first.
 */
function drainOnSignal(host: RuntimeHost, logger: Logger, graceMs: number): Promise<number> {
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, "second signal: forcing exit; the pool restarts the remaining agents when this host is reaped");
        resolve(ExitCode.Failed);
        return;
      }
      logger.info({ signal, graceMs }, "draining");
      setTimeout(() => {
        logger.warn({ graceMs }, "drain grace time passed: forcing exit; the pool restarts the remaining agents when this host is reaped");
        resolve(ExitCode.Failed);
      }, graceMs).unref();
      host.drain().then(
        () => resolve(ExitCode.Ok),
        (error: unknown) => {
          logger.error({ err: error }, "drain failed");
          resolve(ExitCode.Failed);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    whenOrphaned(() => {
      logger.warn(
        { wrapper: process.env.npm_command ?? process.env.npm_lifecycle_event },
        "the npm or npx process that started this host is gone (its signals do not reach the host): draining; run hosts with node directly",
      );
      onSignal("SIGTERM");
    });
  });
}

/** The health server, bound before the host starts; it answers 503 `starting` until attached. */
interface HealthServer {
  readonly server: Server;
  attach(host: RuntimeHost): void;
}

/**
 * `/healthz`: connected and heartbeating. `/readyz`: serving (not starting, not draining).
 * `/metrics`: the host's metrics, in Prometheus's text format.
 * @throws {UsageError} if the port cannot be bound (in use, not permitted).
 */
async function serveHealth(port: number, metrics: Registry): Promise<HealthServer> {
  let host: RuntimeHost | undefined;
  const server = createServer((req, res) => {
    if (req.url === "/metrics") {
      metrics.metrics().then(
        (text) => res.writeHead(200, { "content-type": metrics.contentType }).end(text),
        (error: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`cannot collect metrics: ${(error as Error)?.message ?? String(error)}\n`),
      );
      return;
    }
    const ok =
      req.url === "/healthz" ? host?.healthy === true : req.url === "/readyz" ? host?.state === "serving" && host.healthy : undefined;
    if (ok === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
    res.end(
      JSON.stringify(
        host === undefined
          ? { state: "starting", healthy: false }
          : { hostId: host.hostId, state: host.state, healthy: host.healthy, load: host.load, capacity: host.capacity },
      ),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => reject(new UsageError(`--health-port ${port}: cannot listen (${error.code ?? error.message})`)));
    server.listen(port, () => resolve());
  });
  return { server, attach: (h) => (host = h) };
}

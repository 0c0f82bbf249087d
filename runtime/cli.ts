#!/usr/bin/env node
/**
 * `academy`: the command line of academy-nats.
 *
 *   academy host   --pool <name> --module <spec> [--capacity n] ...   serve a pool until SIGTERM
 *   academy hosts  [--pool <name>] [--json]                            list hosts
 *   academy agents [--pool <name>] [--host <id>] [--all] [--json]      list agents
 *
 * Every option also reads an environment variable (ACADEMY_<OPTION>, see `academy help`), so that
 * containers can be configured without a command line. Exit codes: 0 done (a host: drained), 1 an
 * error at run time or a forced stop, 2 bad usage or configuration.
 */
import { createServer } from "node:http";
import type { Server } from "node:http";
import { parseArgs } from "node:util";
import { pino } from "pino";
import type { Logger } from "pino";
import { AcademyError, InvalidConfigError, NatsExchangeFactory } from "../src/index.ts";
import type { NatsExchangeOptions, PoolBackend } from "../src/index.ts";
import { CLI_ENV, CLI_OPTIONS } from "./cli-options.ts";
import { RuntimeHost } from "./host.ts";
import { formatAge, formatTable, listAgentRows, listHostRows } from "./listing.ts";
import { libraryVersion } from "./version.ts";

const USAGE = `academy ${libraryVersion()}: agents on NATS JetStream

Usage:
  academy host   --pool <name> --module <spec> [--module <spec> ...] [options]
  academy host   --site <name> --remote-site cloud:hub --pool <name> --module <spec>   a host at an edge site
  academy hosts  [--pool <name>] [--json] [connection options]
  academy agents [--pool <name>] [--host <host id>] [--all] [--json] [connection options]

Connection options (every command):
  --servers <urls>       NATS URLs, comma-separated         ACADEMY_SERVERS (or NATS_URL); nats://127.0.0.1:4222
  --prefix <prefix>      prefix of streams and buckets      ACADEMY_PREFIX; academy
  --creds <file>         NATS credentials file               ACADEMY_CREDS
  --site <name>          this process's site (docs/EDGE.md): ACADEMY_SITE
                         prefix <name> in JetStream domain --domain
  --domain <domain>      the site's JetStream domain         ACADEMY_DOMAIN; the site's name
  --remote-site <name[:domain]>  another site reached (repeat) ACADEMY_REMOTE_SITES, comma-separated

Host options:
  --pool <name>          pool to join                        ACADEMY_POOL (required)
  --module <spec>        agent module (path or package)      ACADEMY_MODULES, comma-separated (required)
  --capacity <n>         most agents run at once             ACADEMY_CAPACITY; 100
  --replicas <n>         replicas of created streams/buckets ACADEMY_REPLICAS; 1
  --name <name>          display name                        ACADEMY_HOST_NAME; the machine's host name
  --heartbeat-ms <ms>    heartbeat interval                  ACADEMY_HEARTBEAT_MS; 2000
  --host-ttl-ms <ms>     silent hosts are reaped after       ACADEMY_HOST_TTL_MS; 6000
  --grace-ms <ms>        drain deadline after SIGTERM        ACADEMY_GRACE_MS; 30000
  --health-port <port>   serve /healthz and /readyz          ACADEMY_HEALTH_PORT
  --log-level <level>    pino level                          ACADEMY_LOG_LEVEL; info

SIGTERM (or SIGINT) drains a host: it takes no new launches, hands its agents to the other hosts of
the pool, and exits 0. A second signal, or --grace-ms passing, forces the exit (code 1); the pool
then restarts the remaining agents after --host-ttl-ms.
`;

type Values = ReturnType<typeof parseArgs<{ options: typeof CLI_OPTIONS; allowPositionals: true }>>["values"];
type OptionName = keyof typeof CLI_OPTIONS;

/** A problem with the command line or its configuration (exit code 2). */
class UsageError extends Error {}

/** Option value, else its environment variable ({@link CLI_ENV}), else undefined. */
function option(values: Values, name: OptionName): string | undefined {
  const value = values[name];
  if (typeof value === "string") return value;
  const env = CLI_ENV[name];
  const fromEnv = env === undefined ? undefined : process.env[env];
  return fromEnv === undefined || fromEnv === "" ? undefined : fromEnv;
}

function integerOption(values: Values, name: OptionName): number | undefined {
  const text = option(values, name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`--${name} must be a non-negative integer (got ${JSON.stringify(text)})`);
  return value;
}

/** Values of a repeatable option, else its environment variable as a comma-separated list. */
function listOption(values: Values, name: "module" | "remote-site"): string[] {
  const given = values[name];
  const env = CLI_ENV[name];
  const list = given ?? (env === undefined ? "" : (process.env[env] ?? "")).split(",");
  return list.map((item) => item.trim()).filter((item) => item !== "");
}

function exchangeOptions(values: Values): NatsExchangeOptions {
  const servers = option(values, "servers") ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";
  const site = option(values, "site");
  const prefix = option(values, "prefix");
  if (site !== undefined && prefix !== undefined && prefix !== site) {
    throw new UsageError(`--site ${site} is the prefix ${site}; it cannot go with --prefix ${prefix}`);
  }
  const domain = option(values, "domain") ?? site;
  const sites = listOption(values, "remote-site").map((spec) => {
    const [name = "", siteDomain = name] = spec.split(":");
    return { name, domain: siteDomain };
  });
  if (sites.length > 0 && domain === undefined) throw new UsageError("--remote-site needs --site (or --domain): this process's own site");
  return {
    servers: servers.split(",").map((s) => s.trim()).filter((s) => s !== ""),
    prefix: site ?? prefix,
    replicas: integerOption(values, "replicas"),
    credsFile: option(values, "creds"),
    ...(domain !== undefined && { domain }),
    ...(sites.length > 0 && { sites }),
    connectionOptions: { name: "academy-cli", maxReconnectAttempts: -1, reconnectTimeWait: 250 },
  };
}

async function runHost(values: Values): Promise<number> {
  const pool = option(values, "pool");
  if (pool === undefined) throw new UsageError("academy host needs --pool <name> (or ACADEMY_POOL)");
  const modules = listOption(values, "module");
  if (modules.length === 0) throw new UsageError("academy host needs --module <spec> (or ACADEMY_MODULES)");
  const logger = pino({ level: option(values, "log-level") ?? "info", base: { pid: process.pid } });
  const graceMs = integerOption(values, "grace-ms") ?? 30_000;
  const healthPort = integerOption(values, "health-port");
  const exchange = exchangeOptions(values);
  const connectionOptions = { ...exchange.connectionOptions, name: `academy-host-${pool}` };

  exitOnCrash(logger);
  const host = await RuntimeHost.start({
    pool,
    modules,
    capacity: integerOption(values, "capacity"),
    name: option(values, "name"),
    heartbeatMs: integerOption(values, "heartbeat-ms"),
    hostTtlMs: integerOption(values, "host-ttl-ms"),
    exchange: { ...exchange, connectionOptions, logger },
    logger,
  });
  const health = healthPort === undefined ? undefined : await serveHealth(host, healthPort);
  const exitCode = await drainOnSignal(host, logger, graceMs);
  health?.close();
  logger.flush();
  return exitCode;
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
    process.exit(1);
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
        resolve(1);
        return;
      }
      logger.info({ signal, graceMs }, "draining");
      setTimeout(() => {
        logger.warn({ graceMs }, "drain grace time passed: forcing exit; the pool restarts the remaining agents when this host is reaped");
        resolve(1);
      }, graceMs).unref();
      host.drain().then(
        () => resolve(0),
        (error: unknown) => {
          logger.error({ err: error }, "drain failed");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

/** `/healthz`: connected and heartbeating. `/readyz`: serving (not starting, not draining). */
function serveHealth(host: RuntimeHost, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const ok = req.url === "/healthz" ? host.healthy : req.url === "/readyz" ? host.state === "serving" && host.healthy : undefined;
    if (ok === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
    res.end(JSON.stringify({ hostId: host.hostId, state: host.state, healthy: host.healthy, load: host.load, capacity: host.capacity }));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, () => resolve(server));
  });
}

/** Run `use` with the host pools of the exchange the options name. */
async function withPools<T>(values: Values, use: (backend: PoolBackend) => Promise<T>): Promise<T> {
  // A listing is short-lived: it leaves relaying to the site's long-running processes.
  const factory = new NatsExchangeFactory({ ...exchangeOptions(values), retryWindowMs: 5_000, relay: false });
  try {
    return await use(await factory.poolBackend());
  } finally {
    await factory.close();
  }
}

/** Print rows as JSON (`--json`) or as a table. */
function printRows<T extends object>(values: Values, rows: readonly T[], what: string, columns: Parameters<typeof formatTable<T>>[1]): void {
  if (values.json === true) console.log(JSON.stringify(rows, null, 2));
  else console.log(rows.length === 0 ? `no ${what}` : formatTable(rows, columns));
}

async function listHosts(values: Values): Promise<number> {
  const rows = await withPools(values, (backend) => listHostRows(backend, { pool: option(values, "pool") }));
  printRows(values, rows, "hosts", [
    ["HOST", (r) => r.hostId],
    ["POOL", (r) => r.pool],
    ["STATE", (r) => r.state],
    ["LOAD", (r) => `${r.load}/${r.capacity}`],
    ["HEARTBEAT", (r) => `${formatAge(r.heartbeatAgeMs)} ago`],
    ["UP SINCE", (r) => r.startedAt],
    ["MACHINE", (r) => `${r.hostname}:${r.pid}`],
    ["VERSION", (r) => r.version],
  ]);
  return 0;
}

async function listAgents(values: Values): Promise<number> {
  const rows = await withPools(values, (backend) =>
    listAgentRows(backend, { pool: option(values, "pool"), host: values.host, all: values.all }),
  );
  printRows(values, rows, "agents", [
    ["AGENT", (r) => r.agentId],
    ["NAME", (r) => r.name],
    ["TYPE", (r) => r.type],
    ["STATUS", (r) => r.status],
    ["PLACEMENT", (r) => r.placement],
    ["POOL", (r) => r.pool],
    ["HOST", (r) => r.host],
    ["RETRIES", (r) => r.attempt],
  ]);
  return 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: CLI_OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`academy: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...extra] = positionals;
  if (values.version === true) {
    console.log(libraryVersion());
    return 0;
  }
  if (values.help === true || command === undefined || command === "help") {
    console.log(USAGE);
    return command === undefined && values.help !== true ? 2 : 0;
  }
  if (extra.length > 0) {
    console.error(`academy: unexpected argument ${JSON.stringify(extra[0])}\n\n${USAGE}`);
    return 2;
  }
  try {
    switch (command) {
      case "host":
        return await runHost(values);
      case "hosts":
        return await listHosts(values);
      case "agents":
        return await listAgents(values);
      default:
        console.error(`academy: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof InvalidConfigError && error.option === "credsFile") {
      // The exchange reads the file; say what went wrong in the command's terms.
      console.error(`academy: cannot read --creds ${option(values, "creds")}: ${(error.cause as Error | undefined)?.message ?? error.message}`);
      return 2;
    }
    if (error instanceof UsageError || error instanceof InvalidConfigError) {
      console.error(`academy: ${error.message}`);
      return 2;
    }
    const code = error instanceof AcademyError ? ` [${error.code}]` : "";
    console.error(`academy: ${(error as Error)?.name ?? "Error"}${code}: ${(error as Error)?.message ?? String(error)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
// Open handles (a NATS connection being closed, timers) must not keep a finished command alive.
setTimeout(() => process.exit(), 100).unref();

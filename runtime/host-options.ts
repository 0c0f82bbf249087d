/**
 * The options of a runtime host, and their resolution: defaults, and the checks made before the
 * host connects.
 */
import { hostname } from "node:os";
import type { AgentClass } from "../src/agent/agent-type.ts";
import { InvalidConfigError } from "../src/errors.ts";
import type { ExchangeFactory } from "../src/exchange/exchange-factory.ts";
import type { NatsExchangeOptions } from "../src/index.ts";
import { checkPool } from "../src/pool/pool-name.ts";
import type { Logger } from "../src/util/logger.ts";
import type { Registry } from "prom-client";
import type { HostSettings } from "./host-core.ts";

/** Options of `RuntimeHost.start`. */
export interface RuntimeHostOptions {
  /** The pool to join (`[A-Za-z0-9_-]`, 1-32 characters). */
  pool: string;
  /** Modules exporting the agent classes this host runs (paths, `file:` URLs, package names). */
  modules?: ReadonlyArray<string | URL>;
  /** Agent classes to run besides those of `modules` (for hosts embedded in a program). */
  classes?: ReadonlyArray<AgentClass>;
  /**
   * Most agents this host runs at once; further launches wait in the stream for another host or
   * a free slot.
   * @defaultValue 100
   */
  capacity?: number;
  /**
   * The exchange: a factory that serves host pools (`ExchangeFactory.poolBackend`, such as a
   * `NatsExchangeFactory`; not closed by the host), or options of a NATS exchange to make one.
   */
  exchange?: ExchangeFactory | NatsExchangeOptions;
  /**
   * Display name, shown by `academy hosts`; the host id is made from it.
   * @defaultValue the machine's host name
   */
  name?: string;
  /**
   * Interval of heartbeats (and, halved, of checks for silent hosts), in ms.
   * @defaultValue 1_000
   */
  heartbeatMs?: number;
  /**
   * A host silent this long is reaped and its agents restarted on other hosts, in ms. A host that
   * cannot heartbeat this long stops its agents itself (their mailboxes kept), since others are
   * about to restart them. Failover takes up to this plus half a heartbeat plus the agents' startup.
   * @defaultValue 3_000
   */
  hostTtlMs?: number;
  /**
   * Write heartbeats from a worker thread with a NATS connection of its own, so that a busy event
   * loop (a CPU-bound action, GC pressure) does not get a live host reaped; the thread stops
   * heartbeating when the event loop has not run for `hostTtlMs`, so a stuck host is still reaped.
   * Without a thread (false, or when it cannot start, e.g. on a factory built on an existing
   * connection), heartbeats are written from the event loop. docs/HOSTS.md 5.1.
   * @defaultValue true
   */
  heartbeatThread?: boolean;
  /**
   * Interval of the orphan sweep (placements whose host is gone, launches lost between two
   * writes), done by one host of the pool, in ms.
   * @defaultValue 30_000
   */
  sweepIntervalMs?: number;
  /**
   * The Prometheus registry (`prom-client`) to put the host's metrics on, for a program that
   * serves its own `/metrics` (several hosts may share one). The host's `metrics` property
   * returns it.
   * @defaultValue a registry of the host's own
   */
  metrics?: Registry;
  /**
   * Serve JSON calls to the agent types this host runs: a NATS micro service per type
   * (`ExchangeFactory.serveJsonCalls`; docs/PROTOCOL.md, *JSON entry point*). Its user needs to
   * subscribe to `<prefix>.json.>` and `$SRV.>`.
   * @defaultValue false
   */
  jsonCalls?: boolean;
  /** @defaultValue silent */
  logger?: Logger;
}

function positive(value: number | undefined, fallback: number, option: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new InvalidConfigError(`${option} must be a positive integer (got ${v})`, { option });
  return v;
}

function flag(value: boolean | undefined, fallback: boolean, option: string): boolean {
  const v = value ?? fallback;
  if (typeof v !== "boolean") throw new InvalidConfigError(`${option} must be true or false (got ${String(v)})`, { option });
  return v;
}

/**
 * The host's options with their defaults, checked.
 * @throws {InvalidConfigError} for a bad pool name, a count that is not a positive integer, or a
 *   time to live shorter than two heartbeats.
 */
export function resolveSettings(options: RuntimeHostOptions, classes: ReadonlyMap<string, AgentClass>): HostSettings {
  const settings: HostSettings = {
    pool: checkPool(options.pool),
    name: options.name ?? hostname(),
    capacity: positive(options.capacity, 100, "capacity"),
    heartbeatMs: positive(options.heartbeatMs, 1_000, "heartbeatMs"),
    hostTtlMs: positive(options.hostTtlMs, 3_000, "hostTtlMs"),
    heartbeatThread: flag(options.heartbeatThread, true, "heartbeatThread"),
    sweepIntervalMs: positive(options.sweepIntervalMs, 30_000, "sweepIntervalMs"),
    classes,
    jsonCalls: options.jsonCalls === true,
  };
  if (settings.hostTtlMs < 2 * settings.heartbeatMs) {
    throw new InvalidConfigError(`hostTtlMs (${settings.hostTtlMs}) must be at least twice heartbeatMs (${settings.heartbeatMs})`, {
      option: "hostTtlMs",
    });
  }
  return settings;
}

/**
 * What runtime hosts and host-pool executors exchange through NATS: launch requests (messages on
 * the launch stream), placements (one KV record per launched agent) and host records (one KV
 * record per host). All CBOR maps with a version field `v`; docs/PROTOCOL.md describes them for
 * other systems that publish launch requests. How a placement may change is `placement.ts`.
 */
import { resolveRuntimeConfig } from "../agent/runtime-config.ts";
import type { RuntimeConfig } from "../agent/runtime-config.ts";
import { MalformedMessageError } from "../errors.ts";
import { checkPool } from "./pool-name.ts";
import { decodeValue, encodeValue } from "../protocol/codec.ts";
import type { Failure } from "../protocol/failure.ts";
import { headersProblem } from "../protocol/headers.ts";
import type { MessageHeaders } from "../protocol/headers.ts";
import { PlacementState } from "./placement.ts";

/** Version of launch requests, placements and host records. */
export const POOL_RECORD_VERSION = 1;

const UID = /^[A-Za-z0-9_-]{1,64}$/;

/** Ask a pool to run an agent. Self-contained: a host needs nothing else to start it. */
export interface LaunchRequest {
  readonly v: number;
  /** The agent's mailbox uid; the agent must be registered. */
  readonly uid: string;
  readonly name?: string | undefined;
  /** Type name of the agent's class (`agentTypeName`): what a host looks up in its modules. */
  readonly type: string;
  /** The type's ancestry (own name first, ending with "Agent"), as registered. */
  readonly chain: readonly string[];
  readonly pool: string;
  /** Launch generation: 0 at first launch, one more at every hand-over (failover, drain, retry). */
  readonly gen: number;
  /** Failed runs so far (retries used). */
  readonly attempt: number;
  /** Constructor arguments: the CBOR encoding of an array (handles inside are bound on the host). */
  readonly args: Uint8Array;
  readonly config: RuntimeConfig;
  readonly maxRetries: number;
  readonly retryBackoffMs: number;
  /** When it was first launched, ms since the epoch. */
  readonly launchedAt: number;
  /**
   * Headers of the launch (docs/PROTOCOL.md 13.3), as a message's: the trace context of the
   * launch (`traceparent`, `tracestate`), so that the host's claim joins the launcher's trace.
   * Optional; the placement keeps them, so a restart elsewhere is claimed in the same trace.
   */
  readonly headers?: MessageHeaders | undefined;
}

/** The placement record of a launched agent (key `<pool>.<uid>` in the placements bucket). */
export interface Placement extends LaunchRequest {
  readonly state: PlacementState;
  /** The host running it (or waiting out its retry backoff); none while queued or final. */
  readonly host?: string | undefined;
  /** The last host that ran it. */
  readonly lastHost?: string | undefined;
  /** The error of the last failed run, or why the launch was rejected. */
  readonly error?: Failure | undefined;
  readonly updatedAt: number;
}

/** A runtime host's record (key `<hostId>` in the hosts bucket), rewritten at every heartbeat. */
export interface HostRecord {
  readonly v: number;
  readonly hostId: string;
  readonly name: string;
  readonly pool: string;
  readonly hostname: string;
  readonly pid: number;
  readonly capacity: number;
  /** Agents it runs now. */
  readonly load: number;
  /** Type names it can run (every agent class its modules export). */
  readonly types: readonly string[];
  /**
   * The ancestry of each type in `types` (own name first, ending with "Agent"), for launches by
   * type name, which register the agent without its class. Optional: hosts of version 0.1.0 do
   * not write it.
   */
  readonly chains?: Readonly<Record<string, readonly string[]>> | undefined;
  readonly startedAt: number;
  /** The host's clock at this heartbeat, ms since the epoch. */
  readonly heartbeatAt: number;
  readonly heartbeatMs: number;
  /** Silent this long, the host is reaped and its agents restarted elsewhere. */
  readonly ttlMs: number;
  /** Draining: takes no new launches. */
  readonly draining: boolean;
  /** Version of this library on the host. */
  readonly version: string;
  /**
   * Counts since the host started, as of this heartbeat: actions its agents ran to an end, and
   * those that failed (for rates, such as `academy dashboard`'s actions per second). Optional:
   * hosts of 0.1.0 do not write it.
   */
  readonly stats?: HostStats | undefined;
}

/** What a host has counted since it started (its record's `stats`). */
export interface HostStats {
  /** Actions its agents ran to an end (a result or an error). */
  readonly actions: number;
  /** Of those, the ones that ended with an error. */
  readonly failed: number;
}

function fail(what: string, detail: string): never {
  throw new MalformedMessageError(`Malformed ${what}: ${detail}`);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

/**
 * Check a decoded value is a launch request of this version, with usable fields.
 * @throws {MalformedMessageError} naming the first bad field.
 * @throws {InvalidConfigError} for a bad `config`.
 */
export function checkLaunchRequest(value: unknown, what = "launch request"): LaunchRequest {
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail(what, "not a map");
  const r = value as Record<string, unknown>;
  if (r.v !== POOL_RECORD_VERSION) fail(what, `version ${String(r.v)} (this host understands ${POOL_RECORD_VERSION})`);
  if (typeof r.uid !== "string" || !UID.test(r.uid)) fail(what, "uid must be 1-64 characters of [A-Za-z0-9_-]");
  if (r.name !== undefined && r.name !== null && typeof r.name !== "string") fail(what, "name must be a string");
  if (typeof r.type !== "string" || r.type === "") fail(what, "type must be a non-empty string");
  if (!Array.isArray(r.chain) || !r.chain.every((t) => typeof t === "string") || r.chain[0] !== r.type) {
    fail(what, "chain must be a list of type names starting with type");
  }
  if (typeof r.pool !== "string") fail(what, "pool must be a string");
  try {
    checkPool(r.pool);
  } catch (error) {
    fail(what, (error as Error).message);
  }
  for (const field of ["gen", "attempt", "maxRetries", "retryBackoffMs"] as const) {
    if (!isCount(r[field])) fail(what, `${field} must be a non-negative integer`);
  }
  if (!(r.args instanceof Uint8Array)) fail(what, "args must be a byte string (a CBOR-encoded array)");
  if (r.config !== undefined && (r.config === null || typeof r.config !== "object")) fail(what, "config must be a map");
  resolveRuntimeConfig((r.config ?? {}) as RuntimeConfig);
  if (typeof r.launchedAt !== "number") fail(what, "launchedAt must be a number");
  if (r.headers !== undefined && r.headers !== null) {
    const problem = headersProblem(r.headers);
    if (problem !== undefined) fail(what, `headers ${problem}`);
  }
  const { headers, ...rest } = r;
  return {
    ...(rest as unknown as LaunchRequest),
    name: (r.name as string | null | undefined) ?? undefined,
    // A copy: the decoded bytes are a view into the socket buffer they arrived in, which a kept
    // placement would otherwise hold alive (whole buffers, per agent).
    args: r.args.slice(),
    config: (r.config ?? {}) as RuntimeConfig,
    ...(headers !== undefined && headers !== null && { headers: headers as MessageHeaders }),
  };
}

/** The launch request part of a placement (what goes on the stream). */
export function launchRequestOf(placement: LaunchRequest): LaunchRequest {
  const { v, uid, name, type, chain, pool, gen, attempt, args, config, maxRetries, retryBackoffMs, launchedAt, headers } = placement;
  const request: LaunchRequest = { v, uid, name, type, chain, pool, gen, attempt, args, config, maxRetries, retryBackoffMs, launchedAt };
  return headers === undefined ? request : { ...request, headers };
}

export function encodeLaunchRequest(request: LaunchRequest): Uint8Array {
  return encodeValue(launchRequestOf(request));
}

/**
 * Decode a launch request from the stream.
 * @throws {MalformedMessageError} for bytes that are not a launch request of this version.
 */
export function decodeLaunchRequest(bytes: Uint8Array): LaunchRequest {
  let value: unknown;
  try {
    value = decodeValue(bytes);
  } catch (error) {
    throw new MalformedMessageError(`Malformed launch request: not CBOR (${(error as Error).message})`, { cause: error });
  }
  return checkLaunchRequest(value);
}

/** Decode a placement; undefined for anything that is not one. */
export function decodePlacement(bytes: Uint8Array): Placement | undefined {
  try {
    const value = decodeValue(bytes) as Partial<Placement>;
    const request = checkLaunchRequest(value, "placement");
    if (!Object.values(PlacementState).includes(value.state as PlacementState)) return undefined;
    return { ...value, ...request } as Placement;
  } catch {
    return undefined;
  }
}

/** Decode a host record; undefined for anything that is not one. */
export function decodeHostRecord(bytes: Uint8Array): HostRecord | undefined {
  try {
    const value = decodeValue(bytes) as Partial<HostRecord> | null;
    if (value === null || typeof value !== "object" || value.v !== POOL_RECORD_VERSION) return undefined;
    if (typeof value.hostId !== "string" || typeof value.pool !== "string" || !Array.isArray(value.types)) return undefined;
    if (!isCount(value.capacity) || !isCount(value.load) || !isCount(value.ttlMs)) return undefined;
    return value as HostRecord;
  } catch {
    return undefined;
  }
}

/**
 * The durable record of one agent's state, as stored (one KV value per agent on NATS, one map
 * entry in process): the state's value, the run that owns it, and the responses of the requests
 * applied to it within the duplicate window. Pure data and rules; docs/STATE.md section 3 fixes the
 * format.
 */
import { MalformedMessageError } from "../errors.ts";
import { decodeValue, encodeValue } from "../protocol/codec.ts";

/** Version of the state record format. */
export const STATE_RECORD_VERSION = 1;

/** A request applied to the state: its tag, when, and its encoded response (absent: not recorded). */
export interface AppliedRequest {
  readonly tag: string;
  /** When the write that recorded it was made (ms since the epoch). */
  readonly at: number;
  /**
   * The response body the request got, CBOR-encoded (`ResponseBody`); absent when the state was
   * saved from inside the action and the process stopped before the action ended.
   */
  readonly response: Uint8Array | undefined;
}

/** One agent's state record. */
export interface StateRecord {
  readonly v: typeof STATE_RECORD_VERSION;
  /** The run of the agent that owns the record (a random token per engine run). */
  readonly owner: string;
  /** The state's value, CBOR-encoded; absent until the first save. */
  readonly value: Uint8Array | undefined;
  /** Requests applied to the state within the duplicate window, oldest first. */
  readonly applied: readonly AppliedRequest[];
  /** When the record was last written (ms since the epoch). */
  readonly savedAt: number;
}

/** A stored record with the revision it was read at (the compare-and-set token of the next write). */
export interface VersionedBytes {
  readonly bytes: Uint8Array;
  readonly revision: number;
}

type WireApplied = [string, number, Uint8Array | null];
interface WireRecord {
  v: number;
  owner: string;
  value: Uint8Array | null;
  applied: WireApplied[];
  savedAt: number;
}

/** Encode a state record. @throws {SerializationError} */
export function encodeStateRecord(record: StateRecord): Uint8Array {
  const wire: WireRecord = {
    v: record.v,
    owner: record.owner,
    value: record.value ?? null,
    applied: record.applied.map((a) => [a.tag, a.at, a.response ?? null]),
    savedAt: record.savedAt,
  };
  return encodeValue(wire);
}

/**
 * Decode and check a state record.
 * @throws {MalformedMessageError} for bytes that are not a state record of this version.
 */
export function decodeStateRecord(bytes: Uint8Array): StateRecord {
  const wire = decodeValue(bytes) as Partial<WireRecord> | null;
  const bad = (what: string): MalformedMessageError => new MalformedMessageError(`Not a state record: ${what}`);
  if (typeof wire !== "object" || wire === null || Array.isArray(wire)) throw bad("not a map");
  if (wire.v !== STATE_RECORD_VERSION) throw bad(`version ${String(wire.v)}`);
  if (typeof wire.owner !== "string") throw bad("owner");
  if (wire.value !== null && !(wire.value instanceof Uint8Array)) throw bad("value");
  if (typeof wire.savedAt !== "number") throw bad("savedAt");
  if (!Array.isArray(wire.applied)) throw bad("applied");
  const applied: AppliedRequest[] = [];
  for (const entry of wire.applied as unknown[]) {
    if (
      !Array.isArray(entry) ||
      typeof entry[0] !== "string" ||
      typeof entry[1] !== "number" ||
      (entry[2] !== null && !(entry[2] instanceof Uint8Array))
    ) {
      throw bad("applied entry");
    }
    applied.push({ tag: entry[0], at: entry[1], response: (entry[2] as Uint8Array | null) ?? undefined });
  }
  return { v: STATE_RECORD_VERSION, owner: wire.owner, value: wire.value ?? undefined, applied, savedAt: wire.savedAt };
}

/**
 * The applied requests to keep in the next write: those younger than `windowMs` at `now`, at most
 * `max` (the newest), with `entries` added (each replacing an older entry of the same tag).
 */
export function keepApplied(
  applied: readonly AppliedRequest[],
  entries: readonly AppliedRequest[],
  now: number,
  windowMs: number,
  max: number,
): AppliedRequest[] {
  const replaced = new Set(entries.map((e) => e.tag));
  const kept = applied.filter((a) => now - a.at < windowMs && !replaced.has(a.tag));
  kept.push(...entries);
  return kept.length > max ? kept.slice(kept.length - max) : kept;
}

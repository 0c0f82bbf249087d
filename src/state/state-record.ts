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
  /** This entry's own encoding, as stored (kept so that each write does not encode it again). */
  encoded?: Uint8Array;
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

interface WireRecord {
  v: number;
  owner: string;
  value: Uint8Array | null;
  /** A byte string: the CBOR encoding of an array of `[tag, at, response | null]`. */
  applied: Uint8Array;
  savedAt: number;
}

/** The stored encoding of one applied request: CBOR `[tag, at, response | null]`. */
export function encodeAppliedRequest(entry: AppliedRequest): Uint8Array {
  return (entry.encoded ??= encodeValue([entry.tag, entry.at, entry.response ?? null]));
}

/** The CBOR header of an array of `length` items (major type 4). */
function arrayHeader(length: number): Uint8Array {
  if (length < 24) return Uint8Array.of(0x80 + length);
  if (length < 0x100) return Uint8Array.of(0x98, length);
  if (length < 0x10000) return Uint8Array.of(0x99, length >> 8, length & 0xff);
  return Uint8Array.of(0x9a, (length >>> 24) & 0xff, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff);
}

/**
 * Encode a state record. The applied requests are one CBOR array, put together from each entry's
 * encoding (made once per entry), so a write copies the window rather than encoding it again.
 * @throws {SerializationError}
 */
export function encodeStateRecord(record: StateRecord): Uint8Array {
  const parts = [arrayHeader(record.applied.length), ...record.applied.map(encodeAppliedRequest)];
  const wire: WireRecord = {
    v: record.v,
    owner: record.owner,
    value: record.value ?? null,
    applied: Buffer.concat(parts),
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
  if (!(wire.applied instanceof Uint8Array)) throw bad("applied");
  const entries = decodeValue(wire.applied);
  if (!Array.isArray(entries)) throw bad("applied");
  const applied: AppliedRequest[] = [];
  for (const entry of entries as unknown[]) {
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

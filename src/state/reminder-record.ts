/**
 * Reminders as stored: one record per (agent, name), key `<uid>.<name>`. Pure data and checks;
 * docs/STATE.md section 6 fixes the format.
 */
import { InvalidConfigError, MalformedMessageError } from "../errors.ts";
import { decodeValue, encodeValue } from "../protocol/codec.ts";
import { MessageType, requestMessage } from "../protocol/messages.ts";
import type { RequestMessage } from "../protocol/messages.ts";

/** Version of the reminder record format. */
export const REMINDER_RECORD_VERSION = 1;

/** What a scheduler does with due times that passed while no scheduler ran (or ran late). */
export const MisfirePolicy = {
  /** Fire once, for the latest missed due time, then go on from the next one. */
  FireOnce: "fire-once",
  /** Fire none of the missed due times; go on from the next one. */
  Skip: "skip",
  /** Fire every missed due time, in order (at most `MAX_CATCH_UP` of them, the latest). */
  CatchUp: "catch-up",
} as const;
/** A misfire policy. */
export type MisfirePolicy = (typeof MisfirePolicy)[keyof typeof MisfirePolicy];

/** How many missed due times `catch-up` fires at most (the latest ones). */
export const MAX_CATCH_UP = 1000;
/** Largest encoded payload of a reminder, in bytes. */
export const MAX_REMINDER_PAYLOAD_BYTES = 16 * 1024;
/** Shortest interval of a repeating reminder, in ms. */
export const MIN_REMINDER_INTERVAL_MS = 100;

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** One reminder. */
export interface ReminderRecord {
  readonly v: typeof REMINDER_RECORD_VERSION;
  /** The agent's uid. */
  readonly uid: string;
  /** The reminder's name, unique per agent. */
  readonly name: string;
  /** The action the reminder calls, with one argument: a `ReminderFire`. */
  readonly action: string;
  /** The payload, CBOR-encoded. */
  readonly payload: Uint8Array;
  /** The next due time (ms since the epoch). */
  readonly dueAt: number;
  /** Interval of a repeating reminder, in ms; undefined for a one-shot reminder. */
  readonly everyMs: number | undefined;
  readonly misfire: MisfirePolicy;
}

/** A stored reminder with its revision (the compare-and-set token of its next change). */
export interface VersionedReminder {
  readonly record: ReminderRecord;
  readonly revision: number;
}

/** What a reminder's action receives. */
export interface ReminderFire<P = unknown> {
  readonly name: string;
  /** The due time this fire is for (ms since the epoch); unique per reminder. */
  readonly dueAt: number;
  readonly payload: P;
}

/** Options of `agentReminders.set`. */
export interface ReminderOptions<P = unknown> {
  /** The action to call (it gets one argument, a {@link ReminderFire}). */
  action: string;
  /** Fire once at this time (a `Date` or ms since the epoch). One of `at` and `everyMs`. */
  at?: Date | number;
  /** Fire every `everyMs` ms (at least 100), first at `firstAt` (default: one interval from now). */
  everyMs?: number;
  /** First due time of a repeating reminder. @defaultValue now + everyMs */
  firstAt?: Date | number;
  /** A small value passed with every fire (at most 16 KiB encoded). @defaultValue undefined */
  payload?: P;
  /** @defaultValue "fire-once" */
  misfire?: MisfirePolicy;
}

/** The key of a reminder. */
export function reminderKey(uid: string, name: string): string {
  return `${uid}.${name}`;
}

/**
 * Check a reminder's name.
 * @throws {InvalidConfigError} unless it is 1-64 characters of `[A-Za-z0-9_-]`.
 */
export function checkReminderName(name: unknown): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new InvalidConfigError(`A reminder name must be 1-64 characters of [A-Za-z0-9_-] (got ${JSON.stringify(name)})`, { option: "name" });
  }
  return name;
}

function time(value: Date | number, option: string): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) throw new InvalidConfigError(`Reminder option ${option} must be a time (a Date or ms since the epoch)`, { option });
  return Math.round(ms);
}

/**
 * The record of a new reminder of agent `uid`.
 * @throws {InvalidConfigError} for a bad name, action, time, interval, policy, or a payload too large.
 * @throws {SerializationError} when the payload cannot be encoded.
 */
export function newReminder(uid: string, name: string, options: ReminderOptions, now: number): ReminderRecord {
  checkReminderName(name);
  if (typeof options !== "object" || options === null) throw new InvalidConfigError("Reminder options must be an object", { option: "options" });
  if (typeof options.action !== "string" || options.action === "") throw new InvalidConfigError("A reminder needs the name of the action it calls", { option: "action" });
  if ((options.at === undefined) === (options.everyMs === undefined)) {
    throw new InvalidConfigError("A reminder takes exactly one of `at` (once) and `everyMs` (repeating)", { option: "at" });
  }
  let everyMs: number | undefined;
  let dueAt: number;
  if (options.everyMs !== undefined) {
    if (typeof options.everyMs !== "number" || !Number.isSafeInteger(options.everyMs) || options.everyMs < MIN_REMINDER_INTERVAL_MS) {
      throw new InvalidConfigError(`everyMs must be an integer of at least ${MIN_REMINDER_INTERVAL_MS} (got ${String(options.everyMs)})`, { option: "everyMs" });
    }
    everyMs = options.everyMs;
    dueAt = options.firstAt === undefined ? now + everyMs : time(options.firstAt, "firstAt");
  } else {
    if (options.firstAt !== undefined) throw new InvalidConfigError("firstAt is for repeating reminders (everyMs)", { option: "firstAt" });
    dueAt = time(options.at!, "at");
  }
  const misfire = options.misfire ?? MisfirePolicy.FireOnce;
  if (!Object.values(MisfirePolicy).includes(misfire)) {
    throw new InvalidConfigError(`misfire must be one of ${Object.values(MisfirePolicy).join(", ")} (got ${JSON.stringify(misfire)})`, { option: "misfire" });
  }
  const payload = encodeValue(options.payload);
  if (payload.byteLength > MAX_REMINDER_PAYLOAD_BYTES) {
    throw new InvalidConfigError(`A reminder's payload is at most ${MAX_REMINDER_PAYLOAD_BYTES} bytes encoded (got ${payload.byteLength})`, { option: "payload" });
  }
  return { v: REMINDER_RECORD_VERSION, uid, name, action: options.action, payload, dueAt, everyMs, misfire };
}

interface WireReminder {
  v: number;
  uid: string;
  name: string;
  action: string;
  payload: Uint8Array;
  dueAt: number;
  everyMs: number | null;
  misfire: string;
}

/** Encode a reminder record. */
export function encodeReminder(record: ReminderRecord): Uint8Array {
  const wire: WireReminder = { ...record, everyMs: record.everyMs ?? null };
  return encodeValue(wire);
}

/**
 * Decode and check a reminder record.
 * @throws {MalformedMessageError} for bytes that are not a reminder record of this version.
 */
export function decodeReminder(bytes: Uint8Array): ReminderRecord {
  const wire = decodeValue(bytes) as Partial<WireReminder> | null;
  const bad = (what: string): MalformedMessageError => new MalformedMessageError(`Not a reminder record: ${what}`);
  if (typeof wire !== "object" || wire === null || Array.isArray(wire)) throw bad("not a map");
  if (wire.v !== REMINDER_RECORD_VERSION) throw bad(`version ${String(wire.v)}`);
  if (typeof wire.uid !== "string" || typeof wire.name !== "string" || !NAME.test(wire.name)) throw bad("uid or name");
  if (typeof wire.action !== "string" || !(wire.payload instanceof Uint8Array)) throw bad("action or payload");
  if (typeof wire.dueAt !== "number" || !Number.isFinite(wire.dueAt)) throw bad("dueAt");
  if (wire.everyMs !== null && (typeof wire.everyMs !== "number" || wire.everyMs < MIN_REMINDER_INTERVAL_MS)) throw bad("everyMs");
  if (!Object.values(MisfirePolicy).includes(wire.misfire as MisfirePolicy)) throw bad("misfire");
  return {
    v: REMINDER_RECORD_VERSION,
    uid: wire.uid,
    name: wire.name,
    action: wire.action,
    payload: wire.payload,
    dueAt: wire.dueAt,
    everyMs: wire.everyMs ?? undefined,
    misfire: wire.misfire as MisfirePolicy,
  };
}

/** The tag (and message id) of the request firing `record` for `dueAt`: one per due time. */
export function reminderTag(record: Pick<ReminderRecord, "uid" | "name">, dueAt: number): string {
  return `reminder:${record.uid}:${record.name}:${dueAt}`;
}

/** What to do with a reminder at `now`: the due times to fire, and the next due time (undefined: delete it). */
export interface FirePlan {
  readonly fire: readonly number[];
  readonly next: number | undefined;
}

/**
 * The plan for `record` at `now` (pure). Due times up to `now` are due; a due time more than
 * `lateMs` in the past was missed, and the misfire policy decides about missed ones: fire-once
 * fires the latest due time only, skip fires none of the missed (a due time not missed still
 * fires), catch-up fires them all (the latest {@link MAX_CATCH_UP}).
 */
export function planFires(record: Pick<ReminderRecord, "dueAt" | "everyMs" | "misfire">, now: number, lateMs: number): FirePlan {
  if (record.dueAt > now) return { fire: [], next: record.dueAt };
  const every = record.everyMs;
  let due: number[];
  let next: number | undefined;
  if (every === undefined) {
    due = [record.dueAt];
    next = undefined;
  } else {
    const count = Math.floor((now - record.dueAt) / every) + 1;
    const first = Math.max(0, count - MAX_CATCH_UP);
    due = [];
    for (let i = first; i < count; i++) due.push(record.dueAt + i * every);
    next = record.dueAt + count * every;
  }
  const missed = due.filter((d) => now - d > lateMs);
  if (missed.length === 0) return { fire: due, next };
  switch (record.misfire) {
    case MisfirePolicy.CatchUp:
      return { fire: due, next };
    case MisfirePolicy.Skip:
      return { fire: due.filter((d) => now - d <= lateMs), next };
    case MisfirePolicy.FireOnce:
      return { fire: [due[due.length - 1]!], next };
  }
}

/** The request that fires `record` for `dueAt`: the reminder's action with a {@link ReminderFire}, from nobody (no response). */
export function reminderRequest(record: ReminderRecord, dueAt: number): RequestMessage {
  const fire: ReminderFire = { name: record.name, dueAt, payload: decodeValue(record.payload) };
  return requestMessage({ type: MessageType.ActionRequest, action: record.action, args: [fire] }, reminderTag(record, dueAt), record.uid, undefined, undefined, undefined);
}

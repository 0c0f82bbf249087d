/**
 * What an agent uses to set, cancel and list its reminders (`this.agentReminders`).
 * docs/STATE.md section 6.
 */
import { decodeValue } from "../protocol/codec.ts";
import { checkReminderName, newReminder } from "./reminder-record.ts";
import type { MisfirePolicy, ReminderOptions, VersionedReminder } from "./reminder-record.ts";
import type { ReminderStore } from "./reminder-store.ts";

/** A reminder as its agent (or an operator) sees it. */
export interface ReminderInfo<P = unknown> {
  readonly name: string;
  readonly action: string;
  /** The next due time (ms since the epoch). */
  readonly dueAt: number;
  /** Interval of a repeating reminder, in ms (undefined: fires once). */
  readonly everyMs: number | undefined;
  readonly misfire: MisfirePolicy;
  readonly payload: P;
}

/** A stored reminder as {@link ReminderInfo}. */
export function reminderInfo(stored: VersionedReminder): ReminderInfo {
  const { name, action, dueAt, everyMs, misfire, payload } = stored.record;
  return { name, action, dueAt, everyMs, misfire, payload: decodeValue(payload) };
}

/** One agent's reminders. */
export class AgentReminders {
  readonly #uid: string;
  readonly #store: () => Promise<ReminderStore>;
  /** Whether this run set or cancelled any (then its reminders are deleted with its mailbox). */
  used = false;

  constructor(uid: string, store: () => Promise<ReminderStore>) {
    this.#uid = uid;
    this.#store = store;
  }

  /**
   * Set (or replace) the reminder `name`: it calls `options.action` with a `ReminderFire`, at
   * `options.at`, or every `options.everyMs` ms. It is stored durably and fires whether or not
   * the agent runs at the time (the request waits in its mailbox).
   * @throws {InvalidConfigError} for a bad name, action, time, interval, misfire policy, or a payload over 16 KiB.
   */
  async set<P>(name: string, options: ReminderOptions<P>): Promise<ReminderInfo<P>> {
    const record = newReminder(this.#uid, name, options, Date.now());
    this.used = true;
    const revision = await (await this.#store()).put(record);
    return reminderInfo({ record, revision }) as ReminderInfo<P>;
  }

  /** Cancel the reminder `name`. @returns whether there was one. */
  async cancel(name: string): Promise<boolean> {
    checkReminderName(name);
    this.used = true;
    return (await this.#store()).delete(this.#uid, name);
  }

  /** This agent's reminders, by name. */
  async list(): Promise<ReminderInfo[]> {
    const stored = await (await this.#store()).list(this.#uid);
    return stored.map(reminderInfo).sort((a, b) => a.name.localeCompare(b.name));
  }
}

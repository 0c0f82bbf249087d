/**
 * The storage and firing of reminders, implemented by each exchange
 * (`ExchangeFactory.reminderStore()`): a map and the in-process mailboxes locally, the KV bucket
 * `<prefix>_reminders` and the mailbox stream on NATS. docs/STATE.md section 6.
 */
import type { ReminderRecord, VersionedReminder } from "./reminder-record.ts";

/** A change of the reminders, as a scheduler's watch sees it. */
export interface ReminderChange {
  readonly key: string;
  /** The reminder now; undefined when it was deleted. */
  readonly reminder: VersionedReminder | undefined;
}

/** What firing a due time found. */
export const FireResult = {
  /** The request is in the agent's mailbox (or was already: same due time). */
  Sent: "sent",
  /** The agent's mailbox is terminated or missing: the reminder should go. */
  Gone: "gone",
} as const;
export type FireResult = (typeof FireResult)[keyof typeof FireResult];

/** The reminders of one exchange. */
export interface ReminderStore {
  /** Create or replace a reminder. @returns its revision. */
  put(record: ReminderRecord): Promise<number>;
  /** One reminder, or undefined. */
  get(uid: string, name: string): Promise<VersionedReminder | undefined>;
  /**
   * Delete a reminder: only if it is still at `revision` when given.
   * @returns false when it was not at `revision` (or did not exist); true when deleted.
   */
  delete(uid: string, name: string, revision?: number): Promise<boolean>;
  /** The reminders of agent `uid`. */
  list(uid: string): Promise<VersionedReminder[]>;
  /** Delete every reminder of agent `uid` (its mailbox was terminated). */
  deleteAll(uid: string): Promise<void>;
  /**
   * Move a reminder on to its next due time, if it is still at `revision`.
   * @returns the new revision, or undefined when it changed meanwhile (another scheduler moved it,
   *   or the agent replaced or cancelled it).
   */
  advance(record: ReminderRecord, dueAt: number, revision: number): Promise<number | undefined>;
  /**
   * Put the request firing `record` for `dueAt` into the agent's mailbox, de-duplicated per due
   * time (the same due time fired again within the exchange's duplicate window is stored once).
   */
  fire(record: ReminderRecord, dueAt: number): Promise<FireResult>;
  /**
   * Every reminder now, then every change, until the returned function is called.
   * @returns once the current reminders have been delivered to `listener`.
   */
  watch(listener: (change: ReminderChange) => void): Promise<() => void>;
}

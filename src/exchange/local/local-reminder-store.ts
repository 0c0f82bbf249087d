/**
 * Reminders in process: the same records, revisions and rules as the NATS bucket
 * (`nats-reminder-store.ts`), in a map kept with the `LocalExchange`; a fire stores the request in
 * the agent's mailbox once per due time (the in-process stand-in for the stream's
 * de-duplication window). Agents in worker threads reach the map through the exchange's port.
 */
import { BadEntityIdError, MailboxTerminatedError } from "../../errors.ts";
import { encodeMessage } from "../../protocol/codec.ts";
import { reminderKey, reminderRequest, reminderTag } from "../../state/reminder-record.ts";
import type { ReminderRecord, VersionedReminder } from "../../state/reminder-record.ts";
import { FireResult } from "../../state/reminder-store.ts";
import type { ReminderChange, ReminderStore } from "../../state/reminder-store.ts";

/** How long a fired due time is remembered, in ms (NATS's default duplicate window). */
const DUPLICATE_WINDOW_MS = 120_000;

/** The synchronous reminder map behind {@link LocalReminderStore} (one per `LocalExchange`). */
export class MemoryReminders {
  readonly #records = new Map<string, VersionedReminder>();
  readonly #listeners = new Set<(change: ReminderChange) => void>();
  /** Tags fired recently, with when. */
  readonly #fired = new Map<string, number>();
  readonly #send: (dest: string, bytes: Uint8Array) => void;
  #revision = 0;

  constructor(send: (dest: string, bytes: Uint8Array) => void) {
    this.#send = send;
  }

  put(record: ReminderRecord): number {
    return this.#set(record);
  }

  get(uid: string, name: string): VersionedReminder | undefined {
    return this.#records.get(reminderKey(uid, name));
  }

  delete(uid: string, name: string, revision?: number): boolean {
    const key = reminderKey(uid, name);
    const current = this.#records.get(key);
    if (current === undefined || (revision !== undefined && current.revision !== revision)) return false;
    this.#records.delete(key);
    this.#notify({ key, reminder: undefined });
    return true;
  }

  list(uid: string): VersionedReminder[] {
    return [...this.#records.values()].filter((r) => r.record.uid === uid);
  }

  deleteAll(uid: string): void {
    for (const stored of this.list(uid)) this.delete(uid, stored.record.name);
  }

  advance(record: ReminderRecord, dueAt: number, revision: number): number | undefined {
    const current = this.#records.get(reminderKey(record.uid, record.name));
    if (current === undefined || current.revision !== revision) return undefined;
    return this.#set({ ...current.record, dueAt });
  }

  fire(record: ReminderRecord, dueAt: number): FireResult {
    const tag = reminderTag(record, dueAt);
    const now = Date.now();
    for (const [fired, at] of this.#fired) {
      if (now - at < DUPLICATE_WINDOW_MS) break;
      this.#fired.delete(fired);
    }
    if (this.#fired.has(tag)) return FireResult.Sent;
    try {
      this.#send(record.uid, encodeMessage(reminderRequest(record, dueAt)));
    } catch (error) {
      if (error instanceof BadEntityIdError || error instanceof MailboxTerminatedError) return FireResult.Gone;
      throw error;
    }
    this.#fired.set(tag, now);
    return FireResult.Sent;
  }

  watch(listener: (change: ReminderChange) => void): () => void {
    for (const [key, reminder] of this.#records) listener({ key, reminder });
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #set(record: ReminderRecord): number {
    const key = reminderKey(record.uid, record.name);
    const revision = ++this.#revision;
    const reminder = { record, revision };
    this.#records.set(key, reminder);
    this.#notify({ key, reminder });
    return revision;
  }

  #notify(change: ReminderChange): void {
    for (const listener of [...this.#listeners]) listener(change);
  }
}

/** The operations agents use, local or across a worker's port. */
export interface RemindersApi {
  put(record: ReminderRecord): number | Promise<number>;
  get(uid: string, name: string): VersionedReminder | undefined | Promise<VersionedReminder | undefined>;
  delete(uid: string, name: string, revision?: number): boolean | Promise<boolean>;
  list(uid: string): VersionedReminder[] | Promise<VersionedReminder[]>;
  deleteAll(uid: string): void | Promise<void>;
}

/**
 * {@link ReminderStore} over the in-process map. In a worker thread (over the port) it has no
 * scheduler side: `advance`, `fire` and `watch` are for schedulers, which run in the main thread.
 */
export class LocalReminderStore implements ReminderStore {
  readonly #api: RemindersApi;
  readonly #local: MemoryReminders | undefined;

  constructor(api: RemindersApi, local: MemoryReminders | undefined) {
    this.#api = api;
    this.#local = local;
  }

  async put(record: ReminderRecord): Promise<number> {
    return this.#api.put(record);
  }

  async get(uid: string, name: string): Promise<VersionedReminder | undefined> {
    return this.#api.get(uid, name);
  }

  async delete(uid: string, name: string, revision?: number): Promise<boolean> {
    return this.#api.delete(uid, name, revision);
  }

  async list(uid: string): Promise<VersionedReminder[]> {
    return this.#api.list(uid);
  }

  async deleteAll(uid: string): Promise<void> {
    await this.#api.deleteAll(uid);
  }

  async advance(record: ReminderRecord, dueAt: number, revision: number): Promise<number | undefined> {
    return this.#scheduler().advance(record, dueAt, revision);
  }

  async fire(record: ReminderRecord, dueAt: number): Promise<FireResult> {
    return this.#scheduler().fire(record, dueAt);
  }

  async watch(listener: (change: ReminderChange) => void): Promise<() => void> {
    return this.#scheduler().watch(listener);
  }

  #scheduler(): MemoryReminders {
    if (this.#local === undefined) throw new BadEntityIdError("Reminders are fired from the main thread: a worker thread's exchange cannot schedule them");
    return this.#local;
  }
}

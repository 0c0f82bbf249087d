/**
 * Fires reminders (docs/STATE.md section 6): watches every reminder of an exchange, and when one
 * is due, re-reads it, puts a request for each due time into the agent's mailbox (one message id
 * per reminder and due time, so the stream stores it once however many schedulers fire it), then
 * moves the reminder on by compare-and-set. Runtime hosts run one; so does a manager that runs
 * agents itself. Several schedulers may run on one exchange: each due time still reaches the
 * mailbox once.
 */
import { silentLogger } from "../util/logger.ts";
import type { Logger } from "../util/logger.ts";
import { planFires } from "./reminder-record.ts";
import type { VersionedReminder } from "./reminder-record.ts";
import { FireResult } from "./reminder-store.ts";
import type { ReminderChange, ReminderStore } from "./reminder-store.ts";
import { timerDelay } from "../util/timers.ts";

/** Options of {@link ReminderScheduler.start}. */
export interface ReminderSchedulerOptions {
  /** @defaultValue silent */
  logger?: Logger;
  /**
   * How late a due time may be fired and still count as on time, in ms; later ones were missed
   * and follow the reminder's misfire policy.
   * @defaultValue 5_000
   */
  lateMs?: number;
  /**
   * Reminders handled at a time.
   * @defaultValue 256
   */
  concurrency?: number;
  /**
   * A due time further in the past than this is fired only after reading the reminder again:
   * this process's view of it may be stale (it was stopped, say), and a due time another scheduler
   * fired longer ago than the mailbox stream's duplicate window would be stored again. Keep it well
   * below that window (2 minutes by default); within it a stale view costs only a duplicate
   * publish, which the stream drops. In ms.
   * @defaultValue 60_000
   */
  freshReadAfterMs?: number;
}

/** How long a reminder whose handling failed waits before the next try, in ms. */
const RETRY_MS = 1_000;

interface Entry {
  reminder: VersionedReminder;
  busy: boolean;
  /** Not before this time (after a failure). */
  retryAt: number;
}

/** Fires the reminders of one exchange until closed. */
export class ReminderScheduler {
  readonly #store: ReminderStore;
  readonly #logger: Logger;
  readonly #lateMs: number;
  readonly #concurrency: number;
  readonly #freshReadAfterMs: number;
  readonly #entries = new Map<string, Entry>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #stopWatch: (() => void) | undefined;
  #closed = false;
  #ticking: Promise<void> | undefined;
  /** Requests this scheduler put into mailboxes (duplicates of other schedulers' included). */
  fired = 0;

  private constructor(store: ReminderStore, options: ReminderSchedulerOptions) {
    this.#store = store;
    this.#logger = (options.logger ?? silentLogger).child({ component: "reminders" });
    this.#lateMs = options.lateMs ?? 5_000;
    this.#concurrency = options.concurrency ?? 256;
    this.#freshReadAfterMs = options.freshReadAfterMs ?? 60_000;
  }

  /** Start firing the reminders of `store`; resolves once the current reminders are known. */
  static async start(store: ReminderStore, options: ReminderSchedulerOptions = {}): Promise<ReminderScheduler> {
    const scheduler = new ReminderScheduler(store, options);
    scheduler.#stopWatch = await store.watch((change) => scheduler.#onChange(change));
    scheduler.#schedule();
    return scheduler;
  }

  /** How many reminders it knows. */
  get size(): number {
    return this.#entries.size;
  }

  /** Stop firing (idempotent); waits for the reminders being handled. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopWatch?.();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#ticking;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #onChange(change: ReminderChange): void {
    const entry = this.#entries.get(change.key);
    if (change.reminder === undefined) this.#entries.delete(change.key);
    else if (entry === undefined) this.#entries.set(change.key, { reminder: change.reminder, busy: false, retryAt: 0 });
    else if (change.reminder.revision > entry.reminder.revision) {
      // Replaced (set again) or moved on elsewhere: its own due time from now on.
      entry.reminder = change.reminder;
      entry.retryAt = 0;
    }
    this.#schedule();
  }

  /** Set the timer to the earliest due reminder. */
  #schedule(): void {
    if (this.#closed) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const entry of this.#entries.values()) {
      if (entry.busy) continue;
      const at = Math.max(entry.reminder.record.dueAt, entry.retryAt);
      if (at < earliest) earliest = at;
    }
    if (earliest === this.#timerAt && this.#timer !== undefined) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = earliest;
    if (earliest === Number.POSITIVE_INFINITY) return;
    this.#timer = setTimeout(() => this.#tick(), timerDelay(earliest - Date.now()));
    this.#timer.unref();
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    if (this.#closed || this.#ticking !== undefined) return;
    this.#ticking = this.#fireDue().finally(() => {
      this.#ticking = undefined;
      this.#schedule();
    });
  }

  async #fireDue(): Promise<void> {
    const now = Date.now();
    const due = [...this.#entries.values()].filter((e) => !e.busy && e.reminder.record.dueAt <= now && e.retryAt <= now);
    for (const entry of due) entry.busy = true;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length && !this.#closed) {
        const entry = due[next++]!;
        try {
          entry.retryAt = 0;
          await this.#handle(entry);
        } catch (error) {
          entry.retryAt = Date.now() + RETRY_MS;
          this.#logger.warn({ err: error, agentId: entry.reminder.record.uid, reminder: entry.reminder.record.name }, "could not fire reminder; trying again");
        } finally {
          entry.busy = false;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, due.length) }, worker));
    for (const entry of due) entry.busy = false;
  }

  /** Fire one due reminder: its due times, then move it on (or delete it). */
  async #handle(entry: Entry): Promise<void> {
    const { uid, name } = entry.reminder.record;
    let fresh: VersionedReminder | undefined = entry.reminder;
    if (Date.now() - fresh.record.dueAt > this.#freshReadAfterMs) {
      // Long overdue: this process's view may be stale (it was stopped, say), and a due time that
      // another scheduler fired longer ago than the duplicate window must not be fired again.
      fresh = await this.#store.get(uid, name);
      if (fresh === undefined) {
        this.#entries.delete(`${uid}.${name}`);
        return;
      }
      entry.reminder = fresh;
    }
    const plan = planFires(fresh.record, Date.now(), this.#lateMs);
    for (const dueAt of plan.fire) {
      if ((await this.#store.fire(fresh.record, dueAt)) === FireResult.Gone) {
        this.#logger.info({ agentId: uid, reminder: name }, "reminder of a terminated or unknown agent deleted");
        await this.#store.delete(uid, name, fresh.revision);
        this.#forget(entry, fresh.revision);
        return;
      }
      this.fired++;
    }
    if (plan.fire.length === 0 && plan.next === fresh.record.dueAt) return;
    if (plan.next === undefined) {
      // Done (or another scheduler moved it on meanwhile: the watch brings its new state).
      await this.#store.delete(uid, name, fresh.revision);
      this.#forget(entry, fresh.revision);
      return;
    }
    const revision = await this.#store.advance(fresh.record, plan.next, fresh.revision);
    if (revision === undefined) {
      // Moved on by another scheduler, or replaced: wait for the watch rather than fire again.
      if (entry.reminder.revision === fresh.revision) entry.retryAt = plan.next;
    } else if (revision > entry.reminder.revision) {
      // (The watch may have brought a newer version already: keep that one.)
      entry.reminder = { record: { ...fresh.record, dueAt: plan.next }, revision };
    }
  }

  /** Drop a reminder this scheduler deleted at `revision`, unless the watch already brought a newer one. */
  #forget(entry: Entry, revision: number): void {
    const key = `${entry.reminder.record.uid}.${entry.reminder.record.name}`;
    if (this.#entries.get(key) === entry && entry.reminder.revision === revision) this.#entries.delete(key);
  }
}

/**
 * Reminders on NATS (`ReminderStore`): the KV bucket `<prefix>_reminders`, key `<uid>.<name>`,
 * history 1; a fire is a request published to the agent's mailbox subject with
 * `Nats-Msg-Id: reminder:<uid>:<name>:<dueAt>`, so the mailbox stream stores each due time once
 * within its duplicate window however many schedulers fire it. Provisioned on first use.
 * docs/NATS-LAYOUT.md section 16.
 */
import { Kvm } from "@nats-io/kv";
import type { KV, KvEntry } from "@nats-io/kv";
import { ExchangeNotFoundError } from "../../errors.ts";
import { MailboxStatus } from "../mailbox-status.ts";
import { decodeReminder, encodeReminder, reminderKey, reminderRequest } from "../../state/reminder-record.ts";
import type { ReminderRecord, VersionedReminder } from "../../state/reminder-record.ts";
import { FireResult } from "../../state/reminder-store.ts";
import type { ReminderChange, ReminderStore } from "../../state/reminder-store.ts";
import { followKv } from "./kv-follow.ts";
import { scanLatestEntries } from "./kv-scan.ts";
import { kvBucketOptions, openBucket } from "./nats-exchange.ts";
import type { NatsExchange } from "./nats-exchange.ts";
import { isWrongLastSequence } from "./nats-errors.ts";

const stores = new WeakMap<NatsExchange, Promise<NatsReminderStore>>();

/** The reminders bucket of one NATS exchange connection. */
export class NatsReminderStore implements ReminderStore {
  readonly #ctx: NatsExchange;
  readonly #kv: KV | undefined;

  private constructor(ctx: NatsExchange, kv: KV | undefined) {
    this.#ctx = ctx;
    this.#kv = kv;
  }

  /** The store of an exchange connection, its bucket provisioned on first use. */
  static for(ctx: NatsExchange): Promise<NatsReminderStore> {
    let store = stores.get(ctx);
    if (store === undefined) {
      store = NatsReminderStore.#open(ctx);
      stores.set(ctx, store);
      store.catch(() => stores.delete(ctx));
    }
    return store;
  }

  static async #open(ctx: NatsExchange): Promise<NatsReminderStore> {
    const kvm = new Kvm(ctx.js);
    const kv = await ctx
      .retry("provision reminders bucket", () => openBucket(kvm, ctx.jsm, ctx.layout.remindersBucket, kvBucketOptions(ctx.settings), ctx.provisioning))
      .catch((error: unknown) => {
        // Read-only tools on a prefix where no agent ever set a reminder: an empty store.
        if (error instanceof ExchangeNotFoundError && !ctx.provisioning.provision) return undefined;
        throw error;
      });
    return new NatsReminderStore(ctx, kv);
  }

  get #bucket(): KV {
    if (this.#kv === undefined) throw new ExchangeNotFoundError(`No reminders bucket ${this.#ctx.layout.remindersBucket} under prefix ${this.#ctx.settings.prefix}`, { prefix: this.#ctx.settings.prefix });
    return this.#kv;
  }

  async put(record: ReminderRecord): Promise<number> {
    const kv = this.#bucket;
    const bytes = encodeReminder(record);
    return this.#ctx.retry("set reminder", () => kv.put(reminderKey(record.uid, record.name), bytes));
  }

  async get(uid: string, name: string): Promise<VersionedReminder | undefined> {
    if (this.#kv === undefined) return undefined;
    const kv = this.#kv;
    const entry = await this.#ctx.retry("read reminder", () => kv.get(reminderKey(uid, name)));
    return entry === null ? undefined : versioned(entry);
  }

  async delete(uid: string, name: string, revision?: number): Promise<boolean> {
    if (this.#kv === undefined) return false;
    const kv = this.#kv;
    const key = reminderKey(uid, name);
    if (revision === undefined) {
      const current = await this.get(uid, name);
      if (current === undefined) return false;
      revision = current.revision;
    }
    const expected = revision;
    try {
      await this.#ctx.retry("delete reminder", () => kv.purge(key, { previousSeq: expected }));
      return true;
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw error;
    }
  }

  async list(uid: string): Promise<VersionedReminder[]> {
    if (this.#kv === undefined) return [];
    const ctx = this.#ctx;
    const entries = await ctx.retry("list reminders", () => scanLatestEntries(ctx.js, ctx.layout.remindersBucket, `${uid}.*`));
    const found: VersionedReminder[] = [];
    for (const [key, entry] of entries) {
      try {
        found.push({ record: decodeReminder(entry.value), revision: entry.revision });
      } catch (error) {
        ctx.logger.warn({ err: error, key }, "malformed reminder record skipped");
      }
    }
    return found;
  }

  async deleteAll(uid: string): Promise<void> {
    for (const stored of await this.list(uid)) await this.delete(uid, stored.record.name, stored.revision);
  }

  async advance(record: ReminderRecord, dueAt: number, revision: number): Promise<number | undefined> {
    const kv = this.#bucket;
    const bytes = encodeReminder({ ...record, dueAt });
    try {
      return await this.#ctx.retry("move reminder on", () => kv.update(reminderKey(record.uid, record.name), bytes, revision));
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
  }

  async fire(record: ReminderRecord, dueAt: number): Promise<FireResult> {
    const status = await this.#ctx.status(record.uid);
    if (status !== MailboxStatus.Active) return FireResult.Gone;
    // Marked as a re-publication (PROTOCOL.md 10.10): a due time whose fire was not moved on (a
    // scheduler that stopped in between, schedulers racing) can be fired again after the
    // stream's duplicate window, so its agent always reads the fire's result record.
    await this.#ctx.send(reminderRequest(record, dueAt), true);
    return FireResult.Sent;
  }

  async watch(listener: (change: ReminderChange) => void): Promise<() => void> {
    const kv = this.#bucket;
    return followKv(this.#ctx, "reminders", () => kv.watch({ key: ">" }), (entry) => {
      if (entry.operation !== "PUT") {
        listener({ key: entry.key, reminder: undefined });
        return;
      }
      try {
        listener({ key: entry.key, reminder: versioned(entry) });
      } catch (error) {
        this.#ctx.logger.warn({ err: error, key: entry.key }, "malformed reminder record skipped");
      }
    });
  }
}

function versioned(entry: KvEntry): VersionedReminder | undefined {
  if (entry.operation !== "PUT") return undefined;
  return { record: decodeReminder(entry.value), revision: entry.revision };
}

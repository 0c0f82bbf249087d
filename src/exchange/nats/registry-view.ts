/**
 * A per-connection, watch-fed copy of the registry bucket. It answers status checks on the send
 * path without a round trip, tells clients when a mailbox they wait on is terminated, and serves
 * `discover` from memory once caught up.
 *
 * Reads are linearizable for discovery: before answering, the view waits until it has applied
 * the bucket's last sequence as of the call (one stream-info round trip).
 */
import { MailboxStatus } from "../mailbox-status.ts";
import type { KV, KvWatchEntry } from "@nats-io/kv";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentId, EntityRole } from "../../identifiers.ts";
import type { Logger } from "../../util/logger.ts";
import { decodeRecord } from "./nats-registry.ts";
import type { MailboxRecord, RecordEntry } from "./nats-registry.ts";

interface Known {
  readonly record: MailboxRecord;
  readonly revision: number;
}

interface RevisionWaiter {
  readonly revision: number;
  resolve(reached: boolean): void;
}

/** How long `discover` waits for the view to catch up before using the index directly. */
const CATCH_UP_TIMEOUT_MS = 1000;
const RESTART_DELAY_MS = 500;

export class RegistryView {
  readonly #kv: KV;
  readonly #logger: Logger;
  readonly #known = new Map<string, Known>();
  /** Active agents by every type name in their ancestry. */
  readonly #byType = new Map<string, Set<string>>();
  readonly #terminationListeners = new Set<(uid: string) => void>();
  /** Answers of `discover` by query, until the next change of an agent's record (ids are immutable). */
  readonly #discovered = new Map<string, AgentId[]>();
  readonly #isClosed: () => boolean;
  /** The site put on the ids this view returns (undefined: none). */
  readonly #site: string | undefined;
  #waiters: RevisionWaiter[] = [];
  #syncWaiters: Array<(synced: boolean) => void> = [];
  #appliedRevision = 0;
  #syncTarget = Number.POSITIVE_INFINITY;
  #synced = false;
  #started = false;
  #closed = false;
  #stopWatch: (() => void) | undefined;

  /**
   * `isClosed` tells whether the connection is gone for good (then the view stops watching);
   * `site` is put on the ids `discover` returns (the site whose registry `kv` holds or mirrors).
   */
  constructor(kv: KV, logger: Logger, isClosed: () => boolean = () => false, site?: string) {
    this.#kv = kv;
    this.#logger = logger;
    this.#isClosed = isClosed;
    this.#site = site;
  }

  /** Whether the initial load has completed (the view holds every record). */
  get synced(): boolean {
    return this.#synced;
  }

  /** Start watching (idempotent; the first status or discover call starts it). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    void this.#watchLoop();
  }

  /** Status from memory; undefined when this view does not know the mailbox. */
  status(uid: string): MailboxStatus | undefined {
    return this.#known.get(uid)?.record.status;
  }

  /**
   * Active agents of a type, from memory after catching up with the bucket.
   * @param syncTimeoutMs - how long to wait for the initial load if it has not completed (0: do not wait).
   * @returns undefined when the view cannot answer yet (not synced, or not caught up in time).
   */
  async discover(typeName: string, allowSubclasses: boolean, syncTimeoutMs = 0): Promise<AgentId[] | undefined> {
    if (!this.#synced && !(syncTimeoutMs > 0 && (await this.#waitForSync(syncTimeoutMs)))) return undefined;
    const status = await this.#kv.status();
    const target = status.streamInfo.state.last_seq;
    if (!(await this.#waitForRevision(target, CATCH_UP_TIMEOUT_MS))) return undefined;
    const cacheKey = `${allowSubclasses ? "+" : "="}${typeName}`;
    let found = this.#discovered.get(cacheKey);
    if (found === undefined) {
      found = [];
      for (const uid of this.#byType.get(typeName) ?? []) {
        const known = this.#known.get(uid);
        if (known === undefined) continue;
        if (allowSubclasses || known.record.type === typeName) found.push(new AgentId(uid, known.record.name, this.#site));
      }
      this.#discovered.set(cacheKey, found);
    }
    return [...found];
  }

  /** Apply a record this process wrote or read (so its own writes are visible at once). */
  apply(entry: RecordEntry): void {
    this.#applyRecord(entry.record.uid, entry.record, entry.revision);
  }

  /**
   * Call `listener(uid)` whenever a mailbox becomes terminated (once the view is started; a client
   * starts it with its first status check, i.e. its first send).
   */
  onTerminated(listener: (uid: string) => void): () => void {
    this.#terminationListeners.add(listener);
    return () => this.#terminationListeners.delete(listener);
  }

  close(): void {
    this.#closed = true;
    this.#stopWatch?.();
    for (const waiter of this.#waiters) waiter.resolve(false);
    this.#waiters = [];
    for (const resolve of this.#syncWaiters) resolve(false);
    this.#syncWaiters = [];
  }

  async #watchLoop(): Promise<void> {
    while (!this.#closed) {
      try {
        if (!this.#synced) {
          const status = await this.#kv.status();
          this.#syncTarget = status.streamInfo.state.last_seq;
          this.#checkSynced();
        }
        const watch = await this.#kv.watch({
          key: ">",
          ...(this.#appliedRevision > 0 ? { resumeFromRevision: this.#appliedRevision + 1 } : {}),
        });
        this.#stopWatch = () => watch.stop();
        if (this.#closed) watch.stop();
        for await (const entry of watch) this.#applyEntry(entry);
      } catch (error) {
        if (this.#closed) return;
        this.#logger.warn({ err: error }, "registry watch failed; restarting");
      }
      if (this.#isClosed()) {
        this.close();
        return;
      }
      if (!this.#closed) await sleep(RESTART_DELAY_MS);
    }
  }

  #applyEntry(entry: KvWatchEntry): void {
    if (entry.operation === "PUT") {
      const record = decodeRecord(entry.value);
      if (record !== undefined) this.#applyRecord(entry.key, record, entry.revision);
    } else {
      this.#forget(entry.key);
    }
    this.#advance(entry.revision);
    if (!this.#synced && entry.delta === 0) this.#syncTarget = Math.min(this.#syncTarget, entry.revision);
    this.#checkSynced();
  }

  #applyRecord(uid: string, record: MailboxRecord, revision: number): void {
    const previous = this.#known.get(uid);
    if (previous !== undefined && previous.revision >= revision) return;
    this.#known.set(uid, { record, revision });
    if (record.role === EntityRole.Agent) this.#discovered.clear();
    const chain = record.role === EntityRole.Agent ? (record.chain ?? []) : [];
    for (const type of chain) {
      let members = this.#byType.get(type);
      if (record.status === MailboxStatus.Active) {
        if (members === undefined) this.#byType.set(type, (members = new Set()));
        members.add(uid);
      } else {
        members?.delete(uid);
      }
    }
    if (record.status === MailboxStatus.Terminated && previous?.record.status !== MailboxStatus.Terminated) {
      for (const listener of [...this.#terminationListeners]) listener(uid);
    }
  }

  #forget(uid: string): void {
    const previous = this.#known.get(uid);
    if (previous === undefined) return;
    this.#known.delete(uid);
    this.#discovered.clear();
    for (const type of previous.record.chain ?? []) this.#byType.get(type)?.delete(uid);
  }

  #advance(revision: number): void {
    if (revision <= this.#appliedRevision) return;
    this.#appliedRevision = revision;
    if (this.#waiters.length === 0) return;
    const waiting: RevisionWaiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.revision <= revision) waiter.resolve(true);
      else waiting.push(waiter);
    }
    this.#waiters = waiting;
  }

  #checkSynced(): void {
    if (!this.#synced && this.#appliedRevision >= this.#syncTarget) {
      this.#synced = true;
      this.#logger.debug({ records: this.#known.size, revision: this.#appliedRevision }, "registry view synced");
      for (const resolve of this.#syncWaiters) resolve(true);
      this.#syncWaiters = [];
    }
  }

  /** Resolves true once the initial load has completed, false after `timeoutMs` or at close. */
  #waitForSync(timeoutMs: number): Promise<boolean> {
    if (this.#synced) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const settle = (synced: boolean): void => {
        clearTimeout(timer);
        resolve(synced);
      };
      const timer = setTimeout(() => {
        this.#syncWaiters = this.#syncWaiters.filter((w) => w !== settle);
        resolve(false);
      }, timeoutMs);
      this.#syncWaiters.push(settle);
    });
  }

  #waitForRevision(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.#appliedRevision >= revision) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      const waiter: RevisionWaiter = {
        revision,
        resolve: (reached) => {
          clearTimeout(timer);
          resolve(reached);
        },
      };
      this.#waiters.push(waiter);
    });
  }
}

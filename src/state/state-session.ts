/**
 * One run's hold on an agent's state record: the load that takes ownership (a compare-and-set
 * write that marks the record with this run's token, so that no earlier run can write after it),
 * the serialized compare-and-set writes, and the applied requests that make a redelivered request
 * be answered from the record instead of run again. docs/STATE.md sections 2-4.
 */
import { randomUUID } from "node:crypto";
import { StateConflictError, StateTooLargeError } from "../errors.ts";
import type { HandleBinder } from "../protocol/codec.ts";
import type { Logger } from "../util/logger.ts";
import type { PersistentState } from "./persistent-state.ts";
import { STATE_RECORD_VERSION, decodeStateRecord, encodeStateRecord, keepApplied } from "./state-record.ts";
import type { AppliedRequest, StateRecord } from "./state-record.ts";
import type { StateStore } from "./state-store.ts";

/** Attempts of the ownership write when other runs race for the record. */
const LOAD_ATTEMPTS = 5;
/** Responses larger than this are not kept in the record (the request is kept, without response). */
export const MAX_RECORDED_RESPONSE_BYTES = 64 * 1024;

/** One queued write: the request it records (if any), whether it writes the current value. */
interface WriteJob {
  readonly entry: AppliedRequest | undefined;
  /** Write the current value (else the last written one, with only the entry added). */
  readonly current: boolean;
  /** The write that took this job, once one did. */
  taken: Promise<void> | undefined;
}

/** What the session needs from the engine. */
export interface StateSessionHooks {
  /** The tag of this agent's action running in the current async context, if any. */
  currentTag(): string | undefined;
  /** A write was refused: another run owns the record. Called once. */
  onConflict(error: StateConflictError): void;
}

/** A request found in the record: applied already, with its response when it was recorded. */
export interface RecordedOutcome {
  /** The encoded response body; undefined when the process stopped before the action ended. */
  readonly response: Uint8Array | undefined;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** One run's hold on one agent's state record. */
export class StateSession {
  readonly uid: string;
  /** This run's ownership token. */
  readonly owner = randomUUID();
  readonly #store: StateStore;
  readonly #state: PersistentState<unknown>;
  readonly #hooks: StateSessionHooks;
  readonly #logger: Logger;
  #revision = 0;
  #value: Uint8Array | undefined;
  #applied: AppliedRequest[] = [];
  readonly #appliedByTag = new Map<string, AppliedRequest>();
  /** Tags of actions that saved explicitly and have not ended yet. */
  readonly #saving = new Set<string>();
  #writes: Promise<unknown> = Promise.resolve();
  /** Writes queued and not yet taken by a running write. */
  readonly #waiting: WriteJob[] = [];
  #fenced: StateConflictError | undefined;

  constructor(uid: string, store: StateStore, state: PersistentState<unknown>, hooks: StateSessionHooks, logger: Logger) {
    this.uid = uid;
    this.#store = store;
    this.#state = state;
    this.#hooks = hooks;
    this.#logger = logger;
  }

  get revision(): number {
    return this.#revision;
  }

  get hasValue(): boolean {
    return this.#value !== undefined;
  }

  /** The refusal that fenced this run off, if one did. */
  get fenced(): StateConflictError | undefined {
    return this.#fenced;
  }

  /**
   * Read the record and take it over: rewrite it with this run's owner token by compare-and-set
   * (create it when there is none). From then on any earlier run's write fails. Then hand the value
   * to the agent's state object.
   * @throws {StateConflictError} when other runs keep taking it over first.
   * @throws {MalformedMessageError} when the stored record is not a state record.
   */
  async load(binder: HandleBinder): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.#store.get(this.uid);
      const now = Date.now();
      try {
        if (current === undefined) {
          const record: StateRecord = { v: STATE_RECORD_VERSION, owner: this.owner, value: undefined, applied: [], savedAt: now };
          this.#revision = await this.#store.create(this.uid, encodeStateRecord(record));
          this.#take(record);
        } else {
          const stored = decodeStateRecord(current.bytes);
          const record: StateRecord = { ...stored, owner: this.owner, savedAt: now };
          this.#revision = await this.#store.update(this.uid, encodeStateRecord(record), current.revision);
          this.#take(record);
          this.#logger.debug({ previousOwner: stored.owner, revision: this.#revision }, "agent state loaded");
        }
        break;
      } catch (error) {
        if (!(error instanceof StateConflictError) || attempt >= LOAD_ATTEMPTS) throw error;
      }
    }
    this.#state.attach(this, this.#value, binder);
  }

  #take(record: StateRecord): void {
    this.#value = record.value;
    this.#applied = [...record.applied];
    this.#appliedByTag.clear();
    for (const entry of this.#applied) this.#appliedByTag.set(entry.tag, entry);
  }

  /** The outcome of request `tag` if it was applied to the state already (within the window). */
  recorded(tag: string): RecordedOutcome | undefined {
    const entry = this.#appliedByTag.get(tag);
    return entry === undefined ? undefined : { response: entry.response };
  }

  /**
   * Write the current value (explicit `save()`); inside an action, the action's request is
   * recorded as applied (its response follows when the action ends).
   */
  save(): Promise<void> {
    const tag = this.#hooks.currentTag();
    if (tag !== undefined) this.#saving.add(tag);
    return this.#enqueue({ entry: tag === undefined ? undefined : { tag, at: Date.now(), response: undefined }, current: true, taken: undefined });
  }

  /**
   * The action of request `tag` ended with `response` (encoded): write the value (if it changed and
   * `autoSave` is on) together with the request's record, in one compare-and-set, if either is
   * needed. Called before the response is sent. Commits that wait for the same write are grouped:
   * one write carries the value and every ended request that changed it.
   * @returns whether the request's response is now in the record.
   * @throws {StateConflictError} when another run owns the record.
   */
  async commit(tag: string, response: Uint8Array): Promise<boolean> {
    const saved = this.#saving.delete(tag);
    const autoSave = this.#state.options.autoSave;
    if (!saved && (!autoSave || sameBytes(this.#state.encodeCurrent(), this.#value))) return false;
    const kept = response.length <= MAX_RECORDED_RESPONSE_BYTES ? response : undefined;
    await this.#enqueue({ entry: { tag, at: Date.now(), response: kept }, current: autoSave, taken: undefined });
    return kept !== undefined;
  }

  /**
   * Delete the record (the agent's mailbox was terminated), unless another run owns it now.
   * @returns whether it was deleted.
   */
  async delete(): Promise<boolean> {
    await this.#writes.catch(() => undefined);
    if (this.#fenced !== undefined) return false;
    return this.#store.delete(this.uid, this.#revision);
  }

  /**
   * Queue a write. Writes run one at a time; each takes every job waiting at that moment, so a job
   * may find its entry written by an earlier one (it then settles with that write).
   */
  #enqueue(job: WriteJob): Promise<void> {
    this.#waiting.push(job);
    const run = (): Promise<void> => {
      if (job.taken !== undefined) return job.taken;
      const jobs = this.#waiting.splice(0);
      const current = jobs.some((j) => j.current);
      const entries = jobs.flatMap((j) => (j.entry === undefined ? [] : [j.entry]));
      const write = this.#write(current ? this.#state.encodeCurrent() : this.#value, entries);
      for (const j of jobs) j.taken = write;
      return write;
    };
    const next = this.#writes.then(run, run);
    this.#writes = next.catch(() => undefined);
    return next;
  }

  async #write(value: Uint8Array | undefined, entries: readonly AppliedRequest[]): Promise<void> {
    if (this.#fenced !== undefined) throw this.#fenced;
    const now = Date.now();
    const applied = keepApplied(this.#applied, entries, now, this.#state.options.dedupeWindowMs, this.#state.options.dedupeMax);
    const record: StateRecord = { v: STATE_RECORD_VERSION, owner: this.owner, value, applied, savedAt: now };
    const bytes = encodeStateRecord(record);
    if (bytes.length > this.#store.maxRecordBytes) {
      throw new StateTooLargeError(
        `The state record of agent ${this.uid} would be ${bytes.length} bytes; the store takes at most ${this.#store.maxRecordBytes}`,
        { agentId: this.uid, size: bytes.length, limit: this.#store.maxRecordBytes },
      );
    }
    try {
      this.#revision = await this.#store.update(this.uid, bytes, this.#revision);
    } catch (error) {
      if (error instanceof StateConflictError) {
        this.#fenced = error;
        this.#hooks.onConflict(error);
      }
      throw error;
    }
    this.#value = value;
    // The index follows the window: entries that left it go, the new ones come in.
    const kept = new Set(applied);
    for (const old of this.#applied) if (!kept.has(old) && this.#appliedByTag.get(old.tag) === old) this.#appliedByTag.delete(old.tag);
    for (const entry of entries) this.#appliedByTag.set(entry.tag, entry);
    this.#applied = applied;
  }
}

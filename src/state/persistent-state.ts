/**
 * An agent's durable state, as the agent sees it: a typed value declared as a field
 * (`readonly state = durableState({ count: 0 })`), loaded before `agentOnStartup`, saved with
 * `await this.state.save()` and, by default, at the end of every action that changed it.
 * docs/STATE.md explains the choice against Academy's `FileState`, Dapr's state manager and
 * Orleans' `IPersistentState`.
 */
import { AgentDefinitionError, AgentStateError, InvalidConfigError } from "../errors.ts";
import type { HandleBinder } from "../protocol/codec.ts";
import { decodeValue, encodeValue } from "../protocol/codec.ts";
import type { StateSession } from "./state-session.ts";

/** Options of {@link durableState}. */
export interface DurableStateOptions {
  /**
   * Save at the end of every action that changed the value (compared by its encoding), in the
   * same write as the action's response record, before the response is sent. `false`: only
   * `save()` writes.
   * @defaultValue true
   */
  autoSave?: boolean;
  /**
   * Keep the record when the agent's mailbox is terminated (for inspection with `academy state`);
   * by default it is deleted then.
   * @defaultValue false
   */
  keepOnTerminate?: boolean;
  /**
   * How long the record remembers the requests applied to the state, with their responses, so
   * that a redelivered request is answered from the record instead of being applied twice, in ms.
   * Keep it at least the exchange's duplicate window.
   * @defaultValue 120_000
   */
  dedupeWindowMs?: number;
  /**
   * Most requests remembered (the newest are kept). Every write carries them, so they are what a
   * save costs beyond the value (about 80 bytes each with a small response); keep it well above
   * the actions an agent runs at once (docs/STATE.md, *Growth*).
   * @defaultValue 256
   */
  dedupeMax?: number;
}

/** {@link DurableStateOptions}, resolved. */
export interface ResolvedDurableStateOptions {
  readonly autoSave: boolean;
  readonly keepOnTerminate: boolean;
  readonly dedupeWindowMs: number;
  readonly dedupeMax: number;
}

const STATE_BRAND = Symbol.for("academy-nats.PersistentState");

function resolveOptions(options: DurableStateOptions): ResolvedDurableStateOptions {
  const positive = (name: string, value: number | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidConfigError(`durableState option ${name} must be a positive integer (got ${String(value)})`, { option: name });
    }
    return value;
  };
  const flag = (name: string, value: boolean | undefined, fallback: boolean): boolean => {
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") throw new InvalidConfigError(`durableState option ${name} must be a boolean`, { option: name });
    return value;
  };
  return {
    autoSave: flag("autoSave", options.autoSave, true),
    keepOnTerminate: flag("keepOnTerminate", options.keepOnTerminate, false),
    dedupeWindowMs: positive("dedupeWindowMs", options.dedupeWindowMs, 120_000),
    dedupeMax: positive("dedupeMax", options.dedupeMax, 256),
  };
}

/**
 * An agent's durable state. Read and change `value`; `save()` writes it (compare-and-set on the
 * revision this run last read or wrote). Usable from `agentOnStartup` on, until the agent stops.
 */
export class PersistentState<T> {
  readonly options: ResolvedDurableStateOptions;
  readonly #initial: () => T;
  #value: T | undefined;
  #session: StateSession | undefined;

  /** Use {@link durableState}. */
  constructor(initial: T | (() => T), options: DurableStateOptions = {}) {
    this.options = resolveOptions(options);
    this.#initial = typeof initial === "function" ? (initial as () => T) : () => structuredClone(initial);
    // The initial value must be storable: fail when the agent is defined, not at its first save.
    encodeValue(this.#initial());
  }

  /**
   * The state's value: what was stored, or the initial value when nothing was.
   * @throws {AgentStateError} before the agent's state was loaded (before startup) or after it stopped.
   */
  get value(): T {
    if (this.#session === undefined) throw new AgentStateError("The agent's state is loaded at startup; it is not available before or after a run");
    return this.#value as T;
  }

  set value(value: T) {
    if (this.#session === undefined) throw new AgentStateError("The agent's state is loaded at startup; it is not available before or after a run");
    this.#value = value;
  }

  /** The record's revision this run last read or wrote (undefined before the load). */
  get revision(): number | undefined {
    return this.#session?.revision;
  }

  /** Whether a value has ever been saved (Orleans' `RecordExists`). */
  get recordExists(): boolean {
    return this.#session?.hasValue ?? false;
  }

  /**
   * Write the value now. Inside an action the write also records that action's request as
   * applied, so a redelivery of it is not run again (docs/STATE.md, *Effectively once*).
   * @throws {StateConflictError} when another run of this agent owns the record now (the agent is
   *   being stopped).
   * @throws {StateTooLargeError} when the record would exceed the store's limit (nothing written).
   * @throws {SerializationError} when the value cannot be encoded.
   */
  async save(): Promise<void> {
    await this.#live().save();
  }

  /**
   * Reset the value to the initial value and write that (the record keeps its ownership and
   * the requests it remembers). @throws as {@link save}.
   */
  async clear(): Promise<void> {
    const session = this.#live();
    this.#value = this.#initial();
    await session.save();
  }

  #live(): StateSession {
    if (this.#session === undefined) throw new AgentStateError("The agent's state is not loaded (the agent is not running)");
    return this.#session;
  }

  /** @internal The encoding of the current value. */
  encodeCurrent(): Uint8Array {
    return encodeValue(this.#value);
  }

  /** @internal Attach a loaded session: `bytes` is the stored value (undefined: use the initial one). */
  attach(session: StateSession, bytes: Uint8Array | undefined, binder: HandleBinder): void {
    this.#value = bytes === undefined ? this.#initial() : (decodeValue(bytes, binder) as T);
    this.#session = session;
  }

  /** @internal The run ended. */
  detach(): void {
    this.#session = undefined;
    this.#value = undefined;
  }
}
Object.defineProperty(PersistentState.prototype, STATE_BRAND, { value: true });

/**
 * Declare an agent's durable state, as a field of the agent class:
 *
 * ```ts
 * class Counter extends Agent {
 *   readonly state = durableState({ count: 0 });
 *   @action async increment(by = 1) { return (this.state.value.count += by); } // saved at the end
 * }
 * ```
 *
 * `initial` (a value, cloned for each run, or a function making one) is the value when nothing
 * was stored. One durable state per agent.
 * @throws {InvalidConfigError} for invalid options.
 * @throws {SerializationError} when the initial value cannot be encoded.
 */
export function durableState<T>(initial: T | (() => T), options: DurableStateOptions = {}): PersistentState<T> {
  return new PersistentState(initial, options);
}

/** Whether `value` is a {@link PersistentState} (of any copy of this library). */
export function isPersistentState(value: unknown): value is PersistentState<unknown> {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[STATE_BRAND] === true;
}

/**
 * The durable state an agent declares, if any.
 * @throws {AgentDefinitionError} when it declares more than one.
 */
export function declaredState(agent: object): PersistentState<unknown> | undefined {
  let found: PersistentState<unknown> | undefined;
  for (const key of Object.keys(agent)) {
    const value = (agent as Record<string, unknown>)[key];
    if (!isPersistentState(value)) continue;
    if (found !== undefined && found !== value) {
      throw new AgentDefinitionError(`Agent ${agent.constructor.name} declares more than one durableState (found a second one in '${key}'); keep one state object`);
    }
    found = value;
  }
  return found;
}

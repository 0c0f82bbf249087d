/**
 * The load of the crash scenarios: callers making a fixed number of calls, a few in flight each,
 * round robin over the agents, each call with a unique id that the agents record in the execution
 * ledger. It measures answered and failed calls and the longest stall (no call completing while
 * calls were outstanding), sampled every 50 ms so that a stall shows while it lasts.
 */
import { randomUUID } from "node:crypto";
import type { Handle } from "../../src/index.ts";
import { Agent, action } from "../../src/index.ts";
import { recordExecution } from "./ledger.ts";

let ledgerPath = "";

/** Where the in-process {@link ChaosProbe}s record their executions. */
export function useLedger(path: string): void {
  ledgerPath = path;
}

/** The agent the crash scenarios call: each execution of `hit` is recorded, then answered. */
export class ChaosProbe extends Agent {
  @action async hit(id: string): Promise<string> {
    recordExecution(ledgerPath, id);
    if (process.env["CHAOS_DEBUG"] !== undefined) process.stderr.write(`EXEC ${id} ${Date.now()} ${this.agentId.uid} ${this.actionContext?.tag}\n`);
    return id;
  }
}

/** Options of {@link CallLoad}. */
export interface CallLoadOptions {
  /** Calls in all. */
  readonly total: number;
  /** Calls each caller keeps in flight. */
  readonly inFlight: number;
  /** Timeout of one call, in ms (a call that times out counts as failed). */
  readonly timeoutMs: number;
}

/** Calls from several callers, each to the agents in turn. */
export class CallLoad {
  /** Ids of the calls made, in the order they were made. */
  readonly ids: string[] = [];
  answered = 0;
  failed = 0;
  readonly failures: string[] = [];
  maxStallMs = 0;
  #outstanding = 0;
  #lastCompletion = Date.now();
  readonly #callers: ReadonlyArray<ReadonlyArray<Handle<ChaosProbe>>>;
  readonly #options: CallLoadOptions;

  /** @param callers - for each caller, its handles to the agents. */
  constructor(callers: ReadonlyArray<ReadonlyArray<Handle<ChaosProbe>>>, options: CallLoadOptions) {
    this.#callers = callers;
    this.#options = options;
  }

  /** Calls completed (answered or failed). */
  get completed(): number {
    return this.answered + this.failed;
  }

  /** Make every call; resolves when all have completed. */
  async run(): Promise<void> {
    const stallTimer = setInterval(() => this.#sampleStall(), 50);
    try {
      const perCaller = Math.ceil(this.#options.total / this.#callers.length);
      await Promise.all(
        this.#callers.map(async (handles, c) => {
          let next = 0;
          const worker = async (): Promise<void> => {
            while (next < perCaller && this.ids.length < this.#options.total) {
              const n = next++;
              await this.#call(handles[(n + c) % handles.length]!);
            }
          };
          await Promise.all(Array.from({ length: this.#options.inFlight }, worker));
        }),
      );
    } finally {
      clearInterval(stallTimer);
      this.#sampleStall();
    }
  }

  async #call(handle: Handle<ChaosProbe>): Promise<void> {
    const id = randomUUID();
    this.ids.push(id);
    if (this.#outstanding++ === 0) this.#lastCompletion = Date.now();
    try {
      const answer = await handle.with({ timeoutMs: this.#options.timeoutMs }).hit(id);
      if (answer === id) this.answered++;
      else {
        this.failed++;
        this.failures.push(`wrong answer for ${id}: ${String(answer)}`);
      }
    } catch (error) {
      this.failed++;
      this.failures.push(`${(error as Error).name}: ${(error as Error).message}`);
    } finally {
      this.#outstanding--;
      this.#sampleStall();
      this.#lastCompletion = Date.now();
    }
  }

  #sampleStall(): void {
    if (this.#outstanding > 0) this.maxStallMs = Math.max(this.maxStallMs, Date.now() - this.#lastCompletion);
  }
}

/** Resolves once `check()` holds, polling every 50 ms; rejects after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The result window the agents of a crash scenario use: the library's default, or
 * `CHAOS_RESULT_WINDOW_MS` from the environment (0 shows what the scenario finds without result
 * records).
 */
export function chaosResultWindowMs(): number | undefined {
  const value = process.env["CHAOS_RESULT_WINDOW_MS"];
  return value === undefined ? undefined : Number(value);
}

/**
 * The heartbeat of a host in a worker thread (`host-heartbeat-worker.ts`), with a NATS connection
 * of its own, so that the host's event loop being busy (a CPU-bound action, GC pressure) does not
 * delay its heartbeats and get it reaped while alive. The main thread keeps what the record says
 * (posted to the thread at every tick, with a shared timestamp: when that is a ttl old, the thread
 * stops heartbeating and the host is reaped as if dead). docs/HOSTS.md 5.1.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { WorkerFactoryDescriptor } from "../src/exchange/exchange-factory.ts";
import type { HostRecord } from "../src/pool/records.ts";

/** What the main thread passes to the heartbeat thread (`workerData`). */
export interface HeartbeatData {
  readonly factory: Pick<WorkerFactoryDescriptor, "module" | "data">;
  readonly record: HostRecord;
  readonly heartbeatMs: number;
  readonly hostTtlMs: number;
  /** One BigInt64: when the main thread last ticked (ms since the epoch). */
  readonly mainSeen: SharedArrayBuffer;
}

export type ToHeartbeatThread =
  | { readonly type: "record"; readonly record: HostRecord }
  | { readonly type: "write"; readonly id: number; readonly record: HostRecord }
  | { readonly type: "resume"; readonly record: HostRecord; readonly revision: number }
  | { readonly type: "stop" };

export type FromHeartbeatThread =
  | { readonly type: "ready" }
  | { readonly type: "failed-to-start"; readonly message: string }
  /** A heartbeat got through; `at` is when it was sent (ms since the epoch). */
  | { readonly type: "beat"; readonly revision: number; readonly at: number }
  | { readonly type: "failed"; readonly message: string; readonly silentMs: number }
  | { readonly type: "lost"; readonly reason: string; readonly message?: string }
  | { readonly type: "written"; readonly id: number; readonly revision?: number | undefined; readonly error?: string }
  | { readonly type: "stopped"; readonly revision: number };

/** What the thread tells the host. */
export interface HeartbeatEvents {
  /** A heartbeat got through at `at`; the record is at `revision`. */
  beat(revision: number, at: number): void;
  /** A heartbeat failed; the thread tries again at the next one. */
  failed(message: string, silentMs: number): void;
  /** The record is lost (reaped, or silent for a ttl): the thread pauses until {@link HeartbeatThread.resume}. */
  lost(reason: string, message: string | undefined): void;
  /** The thread ended without being stopped (it crashed): no more heartbeats from it. */
  exited(code: number): void;
}

const FROM_SOURCE = /\.ts$/.test(new URL(import.meta.url).pathname);
const ENTRY = new URL(`./host-heartbeat-worker${FROM_SOURCE ? ".ts" : ".js"}`, import.meta.url);

/**
 * The thread's code. Built (dist/), the worker module. Run from the TypeScript sources (tests,
 * benchmarks, `npm run academy`), a script that registers tsx in the thread first: on Node 20,
 * `--import tsx` registers its loader in the main thread only.
 */
function threadCode(): { code: URL | string; eval: boolean } {
  if (!FROM_SOURCE) return { code: ENTRY, eval: false };
  // The ESM entry of tsx's API (require.resolve would give its CommonJS one).
  const manifest = createRequire(import.meta.url).resolve("tsx/package.json");
  const exports = (JSON.parse(readFileSync(manifest, "utf8")) as { exports: Record<string, { import: { default: string } }> }).exports;
  const tsx = new URL(exports["./esm/api"]!.import.default, pathToFileURL(manifest)).href;
  return { code: `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(ENTRY.href)}); });`, eval: true };
}

/** The main thread's side of the heartbeat thread. */
export class HeartbeatThread {
  readonly #worker: Worker;
  readonly #mainSeen: BigInt64Array;
  readonly #tick: NodeJS.Timeout;
  readonly #record: () => HostRecord;
  readonly #writes = new Map<number, (result: { revision?: number | undefined; error?: string }) => void>();
  #nextWrite = 0;
  #stopped: ((revision: number) => void) | undefined;
  #exited = false;
  #stopping = false;

  private constructor(worker: Worker, mainSeen: BigInt64Array, record: () => HostRecord, tickMs: number) {
    this.#worker = worker;
    this.#mainSeen = mainSeen;
    this.#record = record;
    this.#tick = setInterval(() => this.#ticked(), tickMs);
    this.#tick.unref();
  }

  /**
   * Start the thread and wait until it has its connection. It writes nothing until
   * {@link HeartbeatThread.resume} gives it the revision to write on.
   * @throws {Error} when it cannot start (its module cannot load, it cannot connect): the host
   *   then heartbeats from its event loop.
   */
  static async start(
    factory: WorkerFactoryDescriptor,
    settings: { heartbeatMs: number; hostTtlMs: number },
    record: () => HostRecord,
    events: HeartbeatEvents,
  ): Promise<HeartbeatThread> {
    const mainSeen = new BigInt64Array(new SharedArrayBuffer(8));
    Atomics.store(mainSeen, 0, BigInt(Date.now()));
    const workerData: HeartbeatData = {
      factory: { module: factory.module, data: factory.data },
      record: record(),
      heartbeatMs: settings.heartbeatMs,
      hostTtlMs: settings.hostTtlMs,
      mainSeen: mainSeen.buffer as SharedArrayBuffer,
    };
    const { code, eval: isScript } = threadCode();
    const worker = new Worker(code, { eval: isScript, workerData, transferList: [...factory.transfer], name: "academy host heartbeat" });
    worker.unref();
    // The main thread ticks four times per heartbeat: its stamp is at most a quarter heartbeat old.
    const thread = new HeartbeatThread(worker, mainSeen, record, Math.max(50, Math.floor(settings.heartbeatMs / 4)));
    let ready = false;
    try {
      await new Promise<void>((resolve, reject) => {
        worker.on("message", (message: FromHeartbeatThread) => {
          switch (message.type) {
            case "ready":
              ready = true;
              return resolve();
            case "failed-to-start":
              return reject(new Error(`heartbeat thread could not start: ${message.message}`));
            case "beat":
              return events.beat(message.revision, message.at);
            case "failed":
              return events.failed(message.message, message.silentMs);
            case "lost":
              return events.lost(message.reason, message.message);
            case "written":
              thread.#writes.get(message.id)?.(message);
              thread.#writes.delete(message.id);
              return;
            case "stopped":
              thread.#stopped?.(message.revision);
              return;
          }
        });
        worker.on("error", (error) => reject(error));
        worker.on("exit", (code) => {
          thread.#exited = true;
          clearInterval(thread.#tick);
          for (const settle of thread.#writes.values()) settle({ error: "heartbeat thread exited" });
          thread.#writes.clear();
          reject(new Error(`heartbeat thread exited with code ${code}`));
          if (ready && !thread.#stopping) events.exited(code);
        });
      });
    } catch (error) {
      clearInterval(thread.#tick);
      await worker.terminate();
      throw error;
    }
    return thread;
  }

  /** Whether the thread still runs. */
  get alive(): boolean {
    return !this.#exited;
  }

  /** The main thread is alive: stamp the shared clock and pass on the record as of now. */
  #ticked(): void {
    Atomics.store(this.#mainSeen, 0, BigInt(Date.now()));
    this.#worker.postMessage({ type: "record", record: this.#record() } satisfies ToHeartbeatThread);
  }

  /**
   * Write the record now, in turn with the heartbeats.
   * @returns the new revision, or undefined if the record changed or is gone.
   * @throws {Error} when the write failed.
   */
  write(): Promise<number | undefined> {
    if (this.#exited) return Promise.reject(new Error("heartbeat thread exited"));
    const id = this.#nextWrite++;
    return new Promise((resolve, reject) => {
      this.#writes.set(id, (result) => (result.error === undefined ? resolve(result.revision) : reject(new Error(result.error))));
      this.#worker.postMessage({ type: "write", id, record: this.#record() } satisfies ToHeartbeatThread);
    });
  }

  /** Heartbeat (at once, then every interval) on the record at `revision`: after the start, and after the host rejoined under a new id. */
  resume(revision: number): void {
    this.#worker.postMessage({ type: "resume", record: this.#record(), revision } satisfies ToHeartbeatThread);
  }

  /**
   * Stop heartbeating and end the thread.
   * @returns the revision of the record the thread last wrote (undefined if the thread had exited).
   */
  async stop(): Promise<number | undefined> {
    this.#stopping = true;
    clearInterval(this.#tick);
    if (this.#exited) return undefined;
    const stopped = new Promise<number>((resolve) => (this.#stopped = resolve));
    this.#worker.postMessage({ type: "stop" } satisfies ToHeartbeatThread);
    const exited = new Promise<undefined>((resolve) => this.#worker.once("exit", () => resolve(undefined)));
    const revision = await Promise.race([stopped, exited]);
    await this.#worker.terminate();
    return revision;
  }
}

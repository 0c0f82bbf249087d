/**
 * The main module of a host's heartbeat thread (started by `host-heartbeat-thread.ts`; not part of
 * the public API): it rewrites the host's record every `heartbeatMs` over a NATS connection of its
 * own, so that a busy event loop on the host's main thread (a CPU-bound action, a long GC pause)
 * does not make the host look dead. The record's content comes from the main thread (posted at
 * each of its ticks); the main thread also stamps a shared clock at each tick. When that stamp is
 * a ttl old (the main thread is frozen or stuck), this thread stops heartbeating, so the host is
 * reaped as if it were dead. docs/HOSTS.md 5.1.
 *
 * Every write of the record goes through this thread while it runs (periodic ones, and those the
 * main thread asks for), one at a time, so that they never race on the record's revision.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";
import { WORKER_FACTORY_EXPORT } from "../src/exchange/exchange-factory.ts";
import type { ExchangeFactory, RebuildWorkerFactory } from "../src/exchange/exchange-factory.ts";
import type { PoolBackend } from "../src/pool/pool-backend.ts";
import { silentLogger } from "../src/util/logger.ts";
import type { HeartbeatData, ToHeartbeatThread, FromHeartbeatThread } from "./host-heartbeat-thread.ts";
import type { HostRecord } from "../src/pool/records.ts";

const port = parentPort as MessagePort;
const data = workerData as HeartbeatData;
const mainSeen = new BigInt64Array(data.mainSeen);

function post(message: FromHeartbeatThread): void {
  port.postMessage(message);
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

let factory: ExchangeFactory | undefined;
let backend: PoolBackend;
try {
  const module = (await import(data.factory.module)) as Record<string, unknown>;
  const rebuild = module[WORKER_FACTORY_EXPORT] as RebuildWorkerFactory | undefined;
  if (typeof rebuild !== "function") throw new Error(`${data.factory.module} does not export ${WORKER_FACTORY_EXPORT}`);
  factory = rebuild(data.factory.data, silentLogger);
  if (factory.poolBackend === undefined) throw new Error("the exchange does not serve host pools");
  backend = await factory.poolBackend();
} catch (error) {
  post({ type: "failed-to-start", message: describe(error) });
  await factory?.close().catch(() => undefined);
  process.exit(0);
}

let record: HostRecord = data.record;
let revision = 0;
/** When a write last got through (ms since the epoch). */
let lastWritten = Date.now();
/**
 * No periodic writes until `resume` (with the revision to write on): at first (the event loop
 * heartbeats until this thread is ready), and when the record was lost (reaped, or no write got
 * through for a ttl).
 */
let paused = true;
let stopping = false;
/** Writes, one at a time. */
let chain: Promise<unknown> = Promise.resolve();

function serial<T>(work: () => Promise<T>): Promise<T> {
  const next = chain.then(work, work);
  chain = next.catch(() => undefined);
  return next;
}

/** Write the record once; the new revision, or undefined when it changed or is gone (reaped). */
async function write(): Promise<number | undefined> {
  // The time it was sent: peers see the write after that, so the host's lease runs from it.
  const sentAt = Date.now();
  const next = await backend.updateHost({ ...record, heartbeatAt: sentAt }, revision);
  if (next !== undefined) {
    revision = next;
    lastWritten = sentAt;
  }
  return next;
}

async function beat(): Promise<void> {
  if (paused || stopping) return;
  const silentMainMs = Date.now() - Number(Atomics.load(mainSeen, 0));
  // The main thread is stuck: stop vouching for it, so that the pool reaps this host.
  if (silentMainMs >= data.hostTtlMs) return;
  try {
    const written = await write();
    if (written === undefined) {
      paused = true;
      post({ type: "lost", reason: "another host reaped this one (its heartbeats were late)" });
    } else {
      post({ type: "beat", revision: written, at: lastWritten });
    }
  } catch (error) {
    const silentMs = Date.now() - lastWritten;
    if (silentMs >= data.hostTtlMs) {
      paused = true;
      post({ type: "lost", reason: `no heartbeat got through for ${silentMs} ms`, message: describe(error) });
    } else {
      post({ type: "failed", message: describe(error), silentMs });
    }
  }
}

const timer = setInterval(() => void serial(beat), data.heartbeatMs);

port.on("message", (message: ToHeartbeatThread) => {
  switch (message.type) {
    case "record":
      record = message.record;
      return;
    case "write":
      record = message.record;
      void serial(async () => {
        try {
          post({ type: "written", id: message.id, revision: await write() });
        } catch (error) {
          post({ type: "written", id: message.id, error: describe(error) });
        }
      });
      return;
    case "resume":
      void serial(async () => {
        record = message.record;
        revision = message.revision;
        lastWritten = Date.now();
        paused = false;
        await beat(); // at once: the event loop stopped heartbeating for this thread, or the host rejoined
      });
      return;
    case "stop":
      stopping = true;
      clearInterval(timer);
      void serial(async () => {
        await factory?.close().catch(() => undefined);
        post({ type: "stopped", revision });
        port.close();
      });
      return;
  }
});

post({ type: "ready" });

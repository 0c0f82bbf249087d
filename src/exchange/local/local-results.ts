/**
 * The in-process exchange's result records (effectively-once execution, docs/PROTOCOL.md section
 * 10.10): bytes by key in memory, each kept for the window and then forgotten, as a KV bucket with
 * that max age keeps them on NATS.
 */
import type { ResultBytes } from "../result-store.ts";

interface StoredResult {
  readonly bytes: Uint8Array;
  readonly expiresAt: number;
}

/** Result records in memory, oldest first; expired ones are dropped as new ones come in. */
export class LocalResultTable {
  readonly windowMs: number;
  readonly maxRecordBytes: number;
  /** By key, in the order they were written (a rewrite moves a key to the end). */
  readonly #records = new Map<string, StoredResult>();

  constructor(windowMs: number, maxRecordBytes: number) {
    this.windowMs = windowMs;
    this.maxRecordBytes = maxRecordBytes;
  }

  /** How many records are kept now (expired ones not yet dropped included). */
  get size(): number {
    return this.#records.size;
  }

  get(key: string): Uint8Array | undefined {
    const stored = this.#records.get(key);
    if (stored === undefined) return undefined;
    if (stored.expiresAt <= Date.now()) {
      this.#records.delete(key);
      return undefined;
    }
    return stored.bytes;
  }

  put(key: string, bytes: Uint8Array): void {
    const now = Date.now();
    this.#records.delete(key);
    this.#records.set(key, { bytes, expiresAt: now + this.windowMs });
    for (const [oldest, stored] of this.#records) {
      if (stored.expiresAt > now) break;
      this.#records.delete(oldest);
    }
  }
}

/** A {@link ResultBytes} over a table in this thread. */
export function tableResultBytes(table: LocalResultTable): ResultBytes {
  return {
    windowMs: table.windowMs,
    maxRecordBytes: table.maxRecordBytes,
    get: async (key) => table.get(key),
    put: async (key, bytes) => table.put(key, bytes),
  };
}

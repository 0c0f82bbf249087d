/**
 * Following a KV watch for as long as its owner wants it: a watch ends when the connection drops
 * or a leader changes, so it is opened again (where it resumes is the opener's choice) until it is
 * stopped or the connection closes for good.
 */
import type { KvEntry } from "@nats-io/kv";
import { setTimeout as sleep } from "node:timers/promises";
import type { NatsExchange } from "./nats-exchange.ts";

const RESTART_DELAY_MS = 500;

/** A KV watch, as `KV.watch` returns it. */
export type KvWatch = AsyncIterable<KvEntry> & { stop(): void };

/**
 * Feed every entry of a KV watch to `onEntry`, reopening the watch with `open` whenever it fails,
 * until the returned stop function is called or the connection closes. Resolves once the first
 * watch is in place.
 * @param what - what is watched, for logs ("hosts", "placements").
 */
export async function followKv(
  ctx: NatsExchange,
  what: string,
  open: () => Promise<KvWatch>,
  onEntry: (entry: KvEntry) => void,
): Promise<() => void> {
  let stopped = false;
  let current = await ctx.retry(`watch ${what}`, open);
  void (async () => {
    while (!stopped) {
      try {
        for await (const entry of current) onEntry(entry);
      } catch (error) {
        ctx.logger.warn({ err: error }, `${what} watch failed; restarting`);
      }
      if (stopped || ctx.nc.isClosed()) return;
      await sleep(RESTART_DELAY_MS);
      try {
        current = await open();
        if (stopped) current.stop();
      } catch (error) {
        ctx.logger.warn({ err: error }, `could not restart the ${what} watch`);
      }
    }
  })();
  return () => {
    stopped = true;
    current.stop();
  };
}

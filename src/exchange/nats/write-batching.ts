/**
 * One socket write per event-loop turn for the exchange's connection.
 *
 * nats.js writes its outbound buffer in a microtask after the first command of a batch, so that
 * the commands queued in one synchronous run go out together. On the message path the commands of
 * one call are a few microtasks apart (an agent reads its result record, publishes the response,
 * writes the record, acknowledges the request; the caller publishes the next request and
 * acknowledges the response), so each became a socket write of its own: the largest single item of
 * a durable call's CPU profile (about a fifth, `writeBuffer`). This gathers every buffer nats.js
 * hands its transport during one turn and writes them once, with `setImmediate`, after the turn's
 * microtasks, in order. Commands are neither reordered nor dropped; a turn's writes leave at its
 * end instead of at its first microtask checkpoint.
 *
 * It reaches into nats.js's connection (`protocol.transport.send`), which has no public hook for
 * this: if the shape is not the expected one (another nats.js version), nothing is changed. A
 * reconnect makes a new transport, which is wrapped when the reconnect is reported.
 */
import type { NatsConnection } from "@nats-io/nats-core";

interface Transport {
  send(frame: Uint8Array): void;
  close?(error?: Error): Promise<void>;
}

const BATCHED = Symbol("academy.batchedWrites");

/** The transport nats.js writes to, if the connection has the shape this version of nats.js has. */
function transportOf(nc: NatsConnection): (Transport & { [BATCHED]?: true }) | undefined {
  const protocol = (nc as unknown as { protocol?: { transport?: unknown } }).protocol;
  const transport = protocol?.transport as (Transport & { [BATCHED]?: true }) | undefined;
  return transport !== undefined && typeof transport.send === "function" ? transport : undefined;
}

/** Wrap the connection's current transport (idempotent). Returns whether its writes are batched. */
export function batchTransportWrites(nc: NatsConnection): boolean {
  const transport = transportOf(nc);
  if (transport === undefined) return false;
  if (transport[BATCHED] === true) return true;
  const send = transport.send.bind(transport);
  let frames: Uint8Array[] = [];
  let bytes = 0;
  const flush = (): void => {
    const pending = frames;
    frames = [];
    const size = bytes;
    bytes = 0;
    if (pending.length === 1) {
      send(pending[0]!);
      return;
    }
    const joined = new Uint8Array(size);
    let offset = 0;
    for (const frame of pending) {
      joined.set(frame, offset);
      offset += frame.length;
    }
    send(joined);
  };
  transport.send = (frame: Uint8Array): void => {
    frames.push(frame);
    bytes += frame.length;
    if (frames.length === 1) setImmediate(() => frames.length > 0 && flush());
  };
  // Closing (nc.close(), drain) writes what this turn queued first.
  const close = transport.close?.bind(transport);
  if (close !== undefined) {
    transport.close = (error?: Error): Promise<void> => {
      if (frames.length > 0) flush();
      return close(error);
    };
  }
  transport[BATCHED] = true;
  return true;
}

/**
 * Batch the connection's writes per event-loop turn, now and after every reconnect, until the
 * connection closes.
 * @returns whether the connection's writes are batched (false: an unexpected nats.js shape).
 */
export function batchWrites(nc: NatsConnection): boolean {
  if (!batchTransportWrites(nc)) return false;
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "reconnect") batchTransportWrites(nc);
    }
  })().catch(() => undefined);
  return true;
}

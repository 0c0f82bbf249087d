/**
 * The caller side of a stream on its own: frames put in order by seq, duplicates dropped, an
 * early frame held until the ones before it, credits granted per half window, a second run of
 * the generator refused once items were taken, and frames beyond the credit refused.
 */
import { describe, expect, test } from "vitest";
import { AgentId, MalformedMessageError, StreamInterruptedError } from "../../src/index.ts";
import type { ResponseMessage } from "../../src/index.ts";
import { PendingStream } from "../../src/exchange/pending-stream.ts";
import type { StreamOwner } from "../../src/exchange/pending-stream.ts";

function harness(window: number): { stream: PendingStream; credits: number[]; cancels: number; frame: (run: string, seq: number, items: unknown[]) => boolean; end: (run: string, count: number) => boolean } {
  const credits: number[] = [];
  const state = { cancels: 0 };
  const owner: StreamOwner = {
    open: () => {},
    release: () => {},
    cancel: () => {
      state.cancels++;
    },
    credit: (_, credit) => credits.push(credit),
  };
  const agentId = AgentId.create();
  const stream = new PendingStream(owner, { type: "action-request", tag: "t1", dest: agentId.uid, action: "s", args: [], stream: window }, agentId, window, undefined, {});
  stream.start(undefined, undefined);
  const frame = (run: string, seq: number, items: unknown[]): boolean =>
    stream.receive({ type: "stream-items", tag: "t1", dest: "", run, seq, items } as ResponseMessage);
  const end = (run: string, count: number): boolean => stream.receive({ type: "stream-end", tag: "t1", dest: "", run, count, result: "r" } as ResponseMessage);
  return {
    stream,
    credits,
    get cancels() {
      return state.cancels;
    },
    frame,
    end,
  };
}

async function drain(stream: PendingStream): Promise<{ items: unknown[]; value: unknown }> {
  const items: unknown[] = [];
  for (;;) {
    const step = await stream.next();
    if (step.done === true) return { items, value: step.value };
    items.push(step.value);
  }
}

describe("PendingStream", () => {
  test("out-of-order, duplicate and overlapping frames come out in order, each item once", async () => {
    const h = harness(16);
    expect(h.frame("a", 3, [3, 4])).toBe(false); // early: held
    expect(h.frame("a", 0, [0, 1])).toBe(false);
    expect(h.frame("a", 0, [0, 1])).toBe(false); // duplicate
    expect(h.frame("a", 1, [1, 2, 3])).toBe(false); // overlaps both sides
    expect(h.end("a", 7)).toBe(false); // the end before its last items: waits for them
    expect(h.frame("a", 5, [5, 6])).toBe(true);
    expect(await drain(h.stream)).toEqual({ items: [0, 1, 2, 3, 4, 5, 6], value: "r" });
  });

  test("credit goes back every half window of items taken", async () => {
    const h = harness(4);
    h.frame("a", 0, [0, 1, 2, 3]);
    await h.stream.next();
    expect(h.credits).toEqual([]);
    await h.stream.next();
    expect(h.credits).toEqual([6]);
    h.frame("a", 4, [4, 5]);
    await h.stream.next();
    await h.stream.next();
    expect(h.credits).toEqual([6, 8]);
    expect(h.stream.buffered).toBe(2);
  });

  test("a frame beyond the credit fails the stream", async () => {
    const h = harness(2);
    h.frame("a", 0, [0, 1, 2]);
    await expect(h.stream.next()).rejects.toBeInstanceOf(MalformedMessageError);
  });

  test("a second run is taken up before any item arrived, refused after", async () => {
    const before = harness(8);
    before.frame("a", 2, [2]); // held, not yet in order
    expect(before.frame("b", 0, [0])).toBe(true); // another run once something was received: interrupted
    await expect(before.stream.next()).rejects.toBeInstanceOf(StreamInterruptedError);
    expect(before.cancels).toBe(1);

    const fresh = harness(8);
    expect(fresh.frame("b", 0, [0, 1])).toBe(false);
    expect(fresh.end("b", 2)).toBe(true);
    expect(await drain(fresh.stream)).toEqual({ items: [0, 1], value: "r" });

    const after = harness(8);
    after.frame("a", 0, [0, 1]);
    expect(await after.stream.next()).toEqual({ done: false, value: 0 });
    after.frame("b", 0, [0, 1, 2]);
    const error = await after.stream.next().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamInterruptedError);
    expect((error as StreamInterruptedError).received).toBe(2);
    expect(after.cancels).toBe(1);
  });

  test("next() called again before the last one settled queues, as a generator's does", async () => {
    const h = harness(8);
    const first = h.stream.next();
    const second = h.stream.next();
    const third = h.stream.next();
    h.frame("a", 0, [0, 1]);
    h.end("a", 2);
    expect(await Promise.all([first, second, third])).toEqual([
      { done: false, value: 0 },
      { done: false, value: 1 },
      { done: true, value: "r" },
    ]);
    expect(await h.stream.next()).toEqual({ done: true, value: undefined });
  });

  test("closed before it was read: no request goes out, and it reads as ended", async () => {
    const h = harness(4);
    const opened: number[] = [];
    const agentId = h.stream.agentId;
    const fresh = new PendingStream(
      { open: () => opened.push(1), release: () => {}, cancel: () => {}, credit: () => {} },
      { type: "action-request", tag: "t2", dest: agentId.uid, action: "s", args: [], stream: 4 },
      agentId,
      4,
      undefined,
      {},
    );
    expect(await fresh.return()).toEqual({ done: true, value: undefined });
    expect(await fresh.next()).toEqual({ done: true, value: undefined });
    expect(opened).toEqual([]);
    expect(fresh.closed).toBe(true);
  });
});

import { describe, expect, test } from "vitest";
import { NEW_READER, advance, mayBeDuplicate, restart } from "../../src/exchange/duplicate-rule.ts";
import type { DeliveryFacts, ReaderProgress } from "../../src/exchange/duplicate-rule.ts";
import { parseAckReply } from "../../src/exchange/nats/ack-reply.ts";

const first = (streamSeq: number, pending: number): DeliveryFacts => ({ streamSeq, pending, deliveryCount: 1 });

/** Feed deliveries through a reader; return which were judged possible duplicates. */
function run(deliveries: readonly DeliveryFacts[], start: ReaderProgress = NEW_READER): { checked: boolean[]; progress: ReaderProgress } {
  let progress = start;
  const checked: boolean[] = [];
  for (const delivery of deliveries) {
    checked.push(mayBeDuplicate(progress, delivery));
    progress = advance(progress, delivery);
  }
  return { checked, progress };
}

describe("duplicate rule (PROTOCOL.md 10.10)", () => {
  test("steady state: first deliveries in order to a caught-up reader are not checked", () => {
    const { checked } = run([first(1, 0), first(2, 0), first(3, 0), first(7, 0)]);
    // The first delivery is checked (the reader has not caught up before it), then none.
    expect(checked).toEqual([true, false, false, false]);
  });

  test("rule 2: a new reader checks every delivery up to and including the first with nothing pending", () => {
    const { checked, progress } = run([first(4, 3), first(5, 2), first(6, 1), first(7, 0), first(8, 0)]);
    expect(checked).toEqual([true, true, true, true, false]);
    expect(progress).toEqual({ highestSeen: 8, caughtUp: true, catchUpSeq: 0 });
  });

  test("rule 1: a delivery at or below the highest sequence seen is checked, even with a delivery count of 1", () => {
    const { checked } = run([first(1, 0), first(2, 0), first(3, 0), first(2, 1), first(3, 0), first(4, 0)]);
    expect(checked).toEqual([true, false, false, true, true, false]);
  });

  test("rule 3: a re-published request is checked", () => {
    const { progress } = run([first(1, 0)]);
    expect(mayBeDuplicate(progress, { ...first(2, 0), resent: true })).toBe(true);
    expect(mayBeDuplicate(progress, { ...first(2, 0), resent: false })).toBe(false);
  });

  test("rule 4: a delivery count other than 1 is checked", () => {
    const { progress } = run([first(1, 0)]);
    expect(mayBeDuplicate(progress, { streamSeq: 2, pending: 0, deliveryCount: 2 })).toBe(true);
    // Unknown facts (an ack subject that could not be read) are checked.
    expect(mayBeDuplicate(progress, { streamSeq: 2, pending: 0, deliveryCount: -1 })).toBe(true);
    expect(mayBeDuplicate(progress, { streamSeq: -1, pending: 0, deliveryCount: 1 })).toBe(true);
  });

  test("an unknown pending count never makes a reader caught up", () => {
    const { checked } = run([first(1, -1), first(2, -1)]);
    expect(checked).toEqual([true, true]);
  });

  test("a consumer made anew (restart) catches up again and keeps the sequences seen", () => {
    const caughtUp = run([first(1, 0), first(2, 0)]).progress;
    const renewed = restart(caughtUp, 3);
    expect(renewed).toEqual({ highestSeen: 2, caughtUp: false, catchUpSeq: 3 });
    // A message the earlier consumer held comes again, then one the stream held: both checked.
    const { checked } = run([first(2, 1), first(3, 0), first(4, 0)], renewed);
    expect(checked).toEqual([true, true, false]);
  });

  test("rule 2 on a lagging replica: nothing pending is not caught up before the leader's last sequence of the subject", () => {
    // The replica serving the consumer has not yet applied sequences 5-6 (the leader's last is 6).
    const { checked, progress } = run([first(3, 1), first(4, 0), first(5, 1), first(6, 0), first(7, 0)], restart(NEW_READER, 6));
    expect(checked).toEqual([true, true, true, true, false]);
    expect(progress.caughtUp).toBe(true);
    // Unreadable: every delivery of the consumer is checked.
    expect(run([first(1, 0), first(2, 0)], restart(NEW_READER, Number.POSITIVE_INFINITY)).checked).toEqual([true, true]);
  });

  test("advance returns the same object when nothing changes", () => {
    const progress = run([first(5, 0)]).progress;
    expect(advance(progress, first(3, 2))).toBe(progress);
  });
});

describe("ack subject facts", () => {
  test("the 9-token form nats-server 2.9 sends", () => {
    expect(parseAckReply("$JS.ACK.academy_mbox.c_abc.3.1042.17.1700000000000000000.5")).toEqual({ deliveryCount: 3, streamSeq: 1042, pending: 5 });
  });

  test("the long forms with domain and account hash (with and without a trailing token)", () => {
    expect(parseAckReply("$JS.ACK.hub.ACCHASH.mbox.cons.1.77.9.1700000000000000000.0")).toEqual({ deliveryCount: 1, streamSeq: 77, pending: 0 });
    expect(parseAckReply("$JS.ACK.hub.ACCHASH.mbox.cons.2.78.10.1700000000000000000.4.xyz")).toEqual({ deliveryCount: 2, streamSeq: 78, pending: 4 });
  });

  test("anything else reads as unknown (-1), never as a first delivery", () => {
    const unknown = { deliveryCount: -1, streamSeq: -1, pending: -1 };
    expect(parseAckReply(undefined)).toEqual(unknown);
    expect(parseAckReply("")).toEqual(unknown);
    expect(parseAckReply("_INBOX.abc.def")).toEqual(unknown);
    expect(parseAckReply("$JS.ACK.s.c.1.2.3")).toEqual(unknown);
    expect(parseAckReply("$JS.ACK.a.b.c.d.e.f.g.h.i.j.k.l.m")).toEqual(unknown);
    expect(parseAckReply("$JS.ACK.s.c.x.2.3.4.5").deliveryCount).toBe(-1);
    expect(parseAckReply("$JS.ACK.s.c.1..3.4.5").streamSeq).toBe(-1);
    expect(parseAckReply("$JS.ACK.s.c.1.2.3.4.-5").pending).toBe(-1);
  });
});

/**
 * Which deliveries of an action request can be duplicates, so that only those pay for reading
 * their result record before the action runs (docs/PROTOCOL.md section 10.10). Pure functions over
 * plain numbers; a mailbox reader (on NATS, `nats-mailbox.ts`) keeps the two facts of its progress
 * and calls them once per delivery.
 *
 * A duplicate of a request reaches a reader of a stream-backed mailbox in exactly these ways:
 *
 * 1. The stream gives a message back to the same reader (ack wait, nak, consumer state rolled back
 *    by a server crash, a new consumer leader that had not replicated the ack). The message was
 *    delivered to this reader before, so its stream sequence is at most the highest this reader
 *    has been delivered: first deliveries come in increasing stream order.
 * 2. A message delivered to an earlier reader of the mailbox and not acknowledged. It was in the
 *    stream before this reader's consumer existed, so its sequence is at most the last sequence
 *    the mailbox's subject held at the stream leader once the consumer was made (`catchUpSeq`),
 *    and it is delivered before the consumer has caught up: before (or as) the first delivery
 *    with nothing pending after it and a sequence of at least `catchUpSeq`. (The pending count
 *    alone is counted by the replica that serves the consumer, which may lag the leader on a
 *    cluster; the leader's last sequence does not.)
 * 3. The same request published again (a new sequence) after the stream's duplicate window: every
 *    re-publication after the first attempt carries the `Academy-Resent` NATS header.
 * 4. A delivery count above 1 (implied by 1 and 2; kept as a cheap second guard).
 *
 * Everything else is a first delivery, in order, of a message first published after this reader
 * caught up: it cannot have been handled before.
 */

/** What one reader knows of its progress through its mailbox. */
export interface ReaderProgress {
  /** Highest stream sequence delivered to this reader (0: none yet). */
  readonly highestSeen: number;
  /**
   * This reader's consumer has delivered a message with nothing pending after it: every message
   * the stream held when the consumer was made has been delivered to it.
   */
  readonly caughtUp: boolean;
  /**
   * The last stream sequence of the mailbox's subject at the stream leader, read once the
   * consumer was made: the reader has not caught up before it is delivered a message at least this
   * high (0: no bound; the mailbox was empty).
   */
  readonly catchUpSeq: number;
}

/** The facts of one delivery that the rule reads. */
export interface DeliveryFacts {
  /** The message's stream sequence (0 or less: unknown). */
  readonly streamSeq: number;
  /** Messages left in the stream for this consumer after this one (negative: unknown). */
  readonly pending: number;
  /** 1 on the first delivery by this consumer. */
  readonly deliveryCount: number;
  /** The message carries the re-publication mark (`Academy-Resent`); absent: false. */
  readonly resent?: boolean;
}

/** A reader that has been delivered nothing yet (each new consumer starts here). */
export const NEW_READER: ReaderProgress = { highestSeen: 0, caughtUp: false, catchUpSeq: 0 };

/**
 * Whether `delivery` may be a duplicate of a request already handled, given the reader's progress
 * before it. True for any fact the rule cannot read (an unknown sequence or pending count).
 */
export function mayBeDuplicate(progress: ReaderProgress, delivery: DeliveryFacts): boolean {
  return (
    delivery.resent === true ||
    delivery.deliveryCount !== 1 ||
    !progress.caughtUp ||
    !(delivery.streamSeq > 0) ||
    delivery.streamSeq <= progress.highestSeen
  );
}

/** The reader's progress after `delivery` (the same object when nothing changes). */
export function advance(progress: ReaderProgress, delivery: DeliveryFacts): ReaderProgress {
  const highestSeen = delivery.streamSeq > progress.highestSeen ? delivery.streamSeq : progress.highestSeen;
  const caughtUp = progress.caughtUp || (delivery.pending === 0 && delivery.streamSeq >= progress.catchUpSeq);
  if (highestSeen === progress.highestSeen && caughtUp === progress.caughtUp) return progress;
  return { highestSeen, caughtUp, catchUpSeq: progress.catchUpSeq };
}

/**
 * The progress of a reader whose consumer was made anew (take-over, a consumer lost and made
 * again): it must catch up again, to `catchUpSeq` (the last sequence of its subject at the stream
 * leader, read after the consumer was made; `Infinity` when it could not be read: every delivery
 * of this consumer is then checked); the sequences it saw stay seen.
 */
export function restart(progress: ReaderProgress, catchUpSeq: number): ReaderProgress {
  return { highestSeen: progress.highestSeen, caughtUp: false, catchUpSeq };
}

/**
 * The delivery facts a JetStream message carries in its reply (ack) subject, read without
 * `JsMsg.info` (which splits the subject and builds a ten-field object per message): the delivery
 * count, the stream sequence and the number of messages still pending for the consumer.
 *
 * Two forms (nats-server's `ackReplySubject`): `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.
 * <cseq>.<ts>.<pending>` (9 tokens, what 2.9 sends) and `$JS.ACK.<domain>.<account hash>.<stream>.
 * <consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>]` (11 or 12 tokens). Stream and
 * consumer names hold no dots.
 */

/** The facts read from an ack subject; -1 for any that could not be read. */
export interface AckReplyFacts {
  deliveryCount: number;
  streamSeq: number;
  pending: number;
}

const DOT = 46;

/** Parse a non-negative decimal integer in `s[from, to)`; -1 if it is not one. */
function integerAt(s: string, from: number, to: number): number {
  if (to <= from || to - from > 16) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/**
 * Read the delivery count, stream sequence and pending count of a JetStream delivery from its
 * reply subject. Every field is -1 when the subject is not an ack subject of a known form.
 */
export function parseAckReply(reply: string | undefined): AckReplyFacts {
  const facts: AckReplyFacts = { deliveryCount: -1, streamSeq: -1, pending: -1 };
  if (reply === undefined || !reply.startsWith("$JS.ACK.")) return facts;
  // Positions of the dots after "$JS.ACK" (at most 12 tokens: 11 dots).
  const dots: number[] = [];
  for (let i = 3; i < reply.length; i++) {
    if (reply.charCodeAt(i) === DOT) {
      dots.push(i);
      if (dots.length > 11) return facts;
    }
  }
  const tokens = dots.length + 1;
  // Index (0-based) of the <delivered> token: 4 in the short form, 6 in the long ones.
  let delivered: number;
  if (tokens === 9) delivered = 4;
  else if (tokens === 11 || tokens === 12) delivered = 6;
  else return facts;
  const start = (token: number): number => dots[token - 1]! + 1;
  const end = (token: number): number => (token < dots.length ? dots[token]! : reply.length);
  facts.deliveryCount = integerAt(reply, start(delivered), end(delivered));
  facts.streamSeq = integerAt(reply, start(delivered + 1), end(delivered + 1));
  facts.pending = integerAt(reply, start(delivered + 4), end(delivered + 4));
  return facts;
}

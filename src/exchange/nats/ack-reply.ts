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
 * Runs once per delivery: one pass over the subject, no array and no closure per call.
 */
export function parseAckReply(reply: string | undefined): AckReplyFacts {
  const facts: AckReplyFacts = { deliveryCount: -1, streamSeq: -1, pending: -1 };
  if (reply === undefined || !reply.startsWith("$JS.ACK.")) return facts;
  // Find the dots from the one after "$JS" (at most 12 tokens: 11 dots), keeping the positions
  // of the 4th to the 11th (dotN): token k (0-based) runs from just after the kth dot to the
  // (k + 1)th dot, or to the end for the last token.
  let dots = 0;
  let dot4 = 0, dot5 = 0, dot6 = 0, dot7 = 0, dot8 = 0, dot10 = 0, dot11 = 0;
  for (let i = reply.indexOf(".", 3); i !== -1; i = reply.indexOf(".", i + 1)) {
    if (++dots > 11) return facts;
    if (dots === 4) dot4 = i;
    else if (dots === 5) dot5 = i;
    else if (dots === 6) dot6 = i;
    else if (dots === 7) dot7 = i;
    else if (dots === 8) dot8 = i;
    else if (dots === 10) dot10 = i;
    else if (dots === 11) dot11 = i;
  }
  const tokens = dots + 1;
  if (tokens === 9) {
    // $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    facts.deliveryCount = integerAt(reply, dot4 + 1, dot5);
    facts.streamSeq = integerAt(reply, dot5 + 1, dot6);
    facts.pending = integerAt(reply, dot8 + 1, reply.length);
  } else if (tokens === 11 || tokens === 12) {
    // $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>]
    facts.deliveryCount = integerAt(reply, dot6 + 1, dot7);
    facts.streamSeq = integerAt(reply, dot7 + 1, dot8);
    facts.pending = integerAt(reply, dot10 + 1, tokens === 11 ? reply.length : dot11);
  }
  return facts;
}

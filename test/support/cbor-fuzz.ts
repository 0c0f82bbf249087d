/**
 * Seeded mutation of valid messages, for the decoder guard's fuzz test and bench/decoder.ts.
 * Deterministic: the same seed gives the same inputs.
 */
import { Buffer } from "node:buffer";
import { AgentId, UserId } from "../../src/identifiers.ts";
import { HandleReference, encodeMessage, encodeValue } from "../../src/protocol/codec.ts";
import type { Message } from "../../src/protocol/messages.ts";

/** mulberry32: a small seeded generator of floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A handle as the codec sees one (a handle class of its own, as in protocol.test.ts). */
export class TestHandle extends HandleReference {
  constructor(readonly agentId: AgentId) {
    super();
  }
}

/**
 * Valid messages the library writes, each about `size` bytes: action requests and responses with
 * every kind of value the codec carries (ids, handles, bytes, records, dates, sets, maps, bigints),
 * a launch-request-like record with a large Uint8Array, and plain nested values.
 */
export function seedMessages(size: number): Uint8Array[] {
  const agent = new AgentId("7d7a5f3c-7f0a-4a8e-9b53-0c6f7d0b1e2a", "counter");
  const user = new UserId("0b4f2c1e-5d6a-4e7f-8a9b-1c2d3e4f5a6b");
  const routing = { tag: "f0e1d2c3-b4a5-4697-8877-665544332211", dest: agent.uid, src: user.uid };
  const count = Math.max(1, Math.floor(size / 40));
  const records = Array.from({ length: count }, (_, i) => ({ id: i, name: `agent-${i}`, score: i / 7, ok: i % 2 === 0 }));
  const messages: Message[] = [
    { type: "ping-request", ...routing },
    { type: "action-request", ...routing, action: "store", args: [records] },
    {
      type: "action-request",
      ...routing,
      action: "mixed",
      args: [
        agent,
        user,
        new TestHandle(agent),
        new Uint8Array(Math.floor(size / 4)).fill(3),
        new Date(1_700_000_000_123),
        new Set(["a", "b", 3]),
        new Map<unknown, unknown>([["k", 1], [2, [true, null]]]),
        2n ** 100n,
        -(2n ** 70n),
        { nested: { deeper: [[1, 2], [3, [4, [5]]]], text: "é✓".repeat(Math.floor(size / 16)) } },
        new Float64Array(Math.floor(size / 64)).fill(0.25),
      ],
    },
    { type: "action-response", tag: routing.tag, dest: user.uid, src: agent.uid, result: records.map((r) => [r.id, r.name]) },
    { type: "error-response", tag: routing.tag, dest: user.uid, src: agent.uid, error: { type: "ValueError", message: "x".repeat(Math.floor(size / 2)), code: "E" } },
  ];
  const launch = { v: 1, agentType: "Counter", uid: agent.uid, args: encodeValue([1, "two", { three: 3 }]), payload: Buffer.alloc(Math.floor(size / 2), 9) };
  return [...messages.map(encodeMessage), encodeValue(launch)];
}

/** Byte sequences worth splicing in: tags, breaks, long lengths, indefinite headers. */
const DICTIONARY: readonly number[][] = [
  [0xc2], [0xc3], [0xc1], [0xc0], [0xc4, 0x82], [0xd8, 0x1b], [0xd8, 0x1c], [0xd8, 0x1d], [0xd8, 0x33], [0xc6],
  [0xd8, 0x40], [0xd8, 0x56], [0xd8, 0x52], [0xd9, 0x01, 0x02], [0xd9, 0x01, 0x03], [0xd9, 0xdf, 0xff], [0xd9, 0xdf, 0xf9],
  [0xd9, 0xac, 0x00], [0xd9, 0xac, 0x02], [0xd9, 0xd9, 0xf7], [0xd8, 0xe1], [0x9f], [0xbf], [0xff], [0x5f], [0x7f],
  [0x5a, 0x00, 0x10, 0x00, 0x00], [0x9b, 0, 0, 0, 1, 0, 0, 0, 0], [0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0xf8, 0x10], [0xf0], [0xfc], [0x1f], [0xf9, 0x7c, 0x00], [0xfb], [0x1b],
];

/** One to eight random edits of `input`: byte flips, splices from the dictionary, deletions, copies, runs. */
export function mutate(input: Uint8Array, random: () => number): Uint8Array {
  let out = Buffer.from(input);
  const at = (): number => Math.floor(random() * (out.length + 1));
  const edits = 1 + Math.floor(random() * 8);
  for (let e = 0; e < edits; e++) {
    const choice = random();
    const i = at();
    if (choice < 0.3 && out.length > 0) {
      out[Math.min(i, out.length - 1)] = Math.floor(random() * 256);
    } else if (choice < 0.55) {
      const word = DICTIONARY[Math.floor(random() * DICTIONARY.length)]!;
      out = Buffer.concat([out.subarray(0, i), Buffer.from(word), out.subarray(i)]);
    } else if (choice < 0.7) {
      const n = Math.floor(random() * 64);
      out = Buffer.concat([out.subarray(0, i), out.subarray(Math.min(out.length, i + n))]);
    } else if (choice < 0.85) {
      // Copy a slice elsewhere (duplicates items, breaks lengths).
      const from = at();
      const n = Math.floor(random() * 256);
      out = Buffer.concat([out.subarray(0, i), out.subarray(from, from + n), out.subarray(i)]);
    } else {
      // Overwrite a run with one byte: dense nesting, dense tags, dense small items.
      const run = Math.floor(random() * Math.min(out.length, 200_000));
      const byte = [0x81, 0xc2, 0x40, 0xa0, 0x80, 0xd8, 0xc1, 0x00, 0x9f, 0xbf][Math.floor(random() * 10)]!;
      out.fill(byte, Math.min(i, out.length), Math.min(out.length, i + run));
    }
  }
  return out;
}

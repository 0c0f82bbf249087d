/**
 * The decoder guard (src/protocol/cbor-guard.ts, cbor-cost.ts) as decodeValue runs it: every
 * construct it refuses, refused quickly; every value the library sends, still decoded; mutated
 * messages never worse than refused. No network.
 *
 * Times are bounded at 500 ms, ten times the bench's target (bench/decoder.ts: 50 ms per MiB), so
 * that a loaded machine cannot fail them; the unguarded times noted below (cbor-x 1.6.9, Node 20,
 * a 2-core VM) are seconds to hours, so without the guard these tests fail or time out.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { Decoder, Tag } from "cbor-x";
import { describe, expect, test } from "vitest";
import { AgentId, IncompatibleProtocolError, MalformedMessageError, SerializationError, UserId } from "../../src/index.ts";
import { CborLimits, estimateCborCost, scanCbor } from "../../src/protocol/cbor-guard.ts";
import { Cost } from "../../src/protocol/cbor-cost.ts";
import { decodeMessage, decodeValue, encodeMessage, encodeValue } from "../../src/protocol/codec.ts";
import type { Message } from "../../src/protocol/messages.ts";
import { TestHandle, mutate, seedMessages, seededRandom } from "../support/cbor-fuzz.ts";
import {
  INPUT_CLASSES,
  array,
  bytes,
  cat,
  collidingBignum,
  collidingInt32,
  filled,
  int,
  map,
  packedConcat,
  recordDefinition,
  repeated,
  sharedValueBomb,
  tag,
  text,
  uint,
} from "../support/cbor-inputs.ts";

const MiB = 1024 * 1024;
/** What one decode may cost, in CPU time (the slowest large value here takes about 100 ms). */
const BOUND_MS = 500;

/**
 * CPU time this test process has used, in ms. The bounds measure the work a decode does, which
 * wall time overstates on a loaded machine (a test process preempted mid-decode); each file runs
 * in a process of its own (pool: forks), so no other test's work is counted.
 */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ""), "hex");

/** decodeValue refuses `input` with a MalformedMessageError matching `reason`, within BOUND_MS of CPU time. */
function expectRefused(input: Uint8Array, reason: RegExp): void {
  const start = cpuMs();
  let error: unknown;
  try {
    decodeValue(input);
  } catch (e) {
    error = e;
  }
  const ms = cpuMs() - start;
  expect(error).toBeInstanceOf(MalformedMessageError);
  expect((error as Error).message).toMatch(reason);
  expect(ms).toBeLessThan(BOUND_MS);
}

/** cbor-x alone, configured as the codec (a fresh decoder: records would persist in a shared one). */
const unguarded = (): Decoder => new Decoder({ useRecords: false, mapsAsObjects: true } as ConstructorParameters<typeof Decoder>[0]);

describe("refused: superlinear or explosive constructs", () => {
  test("a bignum over 64 bytes, at any size (unguarded: 1 MiB takes minutes)", () => {
    // Unguarded: 100 KiB took 1.1-2.3 s, quadratic, so 1 MiB takes about 2-4 minutes (8 MiB, hours).
    expectRefused(tag(2, bytes(Buffer.alloc(MiB, 0xff))), /byte 1: a bignum of 1048576 bytes; at most 64/);
    expectRefused(tag(3, bytes(Buffer.alloc(65, 1))), /bignum of 65 bytes/);
    // cbor-x reads any byte-length content, so a typed array around the bytes must not get past.
    expectRefused(tag(2, tag(64, bytes(Buffer.alloc(MiB, 0xff)))), /a bignum \(tag 2, 3\) holds a byte string/);
    expectRefused(tag(2, text("12")), /holds a byte string/);
  });

  test("bignums up to 64 bytes decode exactly", () => {
    const max = (1n << 512n) - 1n;
    expect(decodeValue(tag(2, bytes(Buffer.alloc(64, 0xff))))).toBe(max);
    expect(decodeValue(tag(3, bytes(Buffer.alloc(64, 0xff))))).toBe(-1n - max);
    expect(decodeValue(encodeValue(-(2n ** 300n)))).toBe(-(2n ** 300n));
    expect(decodeValue(encodeValue([2n ** 64n, 5n]))).toEqual([2n ** 64n, 5n]);
  });

  test("record definitions: refused, so one message cannot change how later ones decode", () => {
    const define = recordDefinition(0xe000, ["polluted"], [uint(1)]);
    const use = hex("d9e000 81 05");
    // Unguarded, the decoder keeps the definition: a later, unrelated message decodes by it.
    const decoder = unguarded();
    (decoder as Decoder & { structures: unknown[] }).structures = [];
    expect(decoder.decode(define)).toEqual({ polluted: 1 });
    expect(decoder.decode(use)).toEqual({ polluted: 5 });

    expectRefused(define, /tag 57343 \(record definition/);
    expectRefused(use, /tag 57344 \(record/);
    expectRefused(hex("d9dffe 83 19e000 8161 61 00"), /tag 57342/);
    expectRefused(hex("d869 83 19e000 8161 61 01"), /tag 105/);
    expectRefused(hex("d9dff9 82 00 f6"), /tag 57337 \(record definition or bundled strings/);
    // 20,000 definitions at distinct ids (unguarded: 33 ms, and 240,000 slots kept after it).
    expectRefused(filled(MiB, (i) => recordDefinition(0xe000 + 100_000 + i * 7, [`k${i}`], [])), /record/);
  });

  test("shared values (tags 28/29): 386 bytes would decode to a 2^40-leaf value", () => {
    const bomb = sharedValueBomb(40);
    // Unguarded, it decodes (0.3 ms) into a DAG that any walk (re-encoding, logging) expands.
    const dag = unguarded().decode(bomb) as unknown[][];
    expect(dag[39]![0]).toBe(dag[39]![1]);
    expect(encodeValue(dag.slice(0, 12)).length).toBeGreaterThan(2 ** 11);
    expectRefused(bomb, /tag 28 \(shared value/);
    expectRefused(hex("82 d81c 80 d81d 00"), /tag 28/);
    expectRefused(hex("d81d 00"), /tag 29/);
  });

  test("packed values (tags 51, 6, prefix and suffix references): unguarded, 40 KiB take 1.8 s", () => {
    // Unguarded, the 1 MiB input below ran a test worker out of its 4 GB heap in 20 s.
    expectRefused(packedConcat(MiB), /tag 51 \(packed values/);
    expectRefused(hex("c6 00"), /tag 6 \(packed/);
    for (const t of [216, 223, 225, 255, 27647, 28671, 28704, 32767, 1811939328, 2147483647]) {
      expectRefused(tag(t, hex("80")), new RegExp(`tag ${t} \\(packed prefix or suffix`));
    }
    expectRefused(tag(0x53687264, hex("f6")), /shared data/);
  });

  test("string and bundled-string references (tags 25, 256, 14, 15)", () => {
    expectRefused(tag(256, array([text("a"), tag(25, uint(0))])), /tag 256 \(string reference/);
    expectRefused(tag(25, uint(0)), /tag 25/);
    expectRefused(tag(14, uint(3)), /tag 14 \(bundled string/);
    expectRefused(tag(15, uint(3)), /tag 15/);
  });

  test("Sets and Maps of keys chosen to collide in V8's unseeded number hash (unguarded: 30-70 s at 1 MiB)", () => {
    // Unguarded: 200 KiB of colliding bigints took 0.8-1.4 s, 64 KiB of colliding int32 0.2-0.3 s; both quadratic.
    expectRefused(tag(258, filled(MiB, collidingBignum)), /budget/);
    const keys = collidingInt32(65536);
    expectRefused(tag(258, filled(MiB, (i) => int(keys[i]!))), /budget/);
    expectRefused(tag(259, map(keys.slice(0, 20_000).map((k) => [int(k), hex("f6")] as const))), /budget/);
    // The same keys in an array, or as a plain object's keys (strings, hashed with a seed), are fine.
    expect((decodeValue(array(keys.slice(0, 20_000).map(int))) as number[]).length).toBe(20_000);
    expect(Object.keys(decodeValue(map(keys.slice(0, 2_000).map((k) => [int(k), hex("f6")] as const))) as object)).toHaveLength(2_000);
  });

  test("nesting deeper than 256 (unguarded: a stack overflow from a few thousand levels)", () => {
    const nested = (depth: number): Buffer => cat(Buffer.alloc(depth, 0x81), uint(0));
    expect(() => unguarded().decode(nested(20_000))).toThrow(RangeError);
    expectRefused(nested(MiB), /byte 256: nesting deeper than 256/);
    expectRefused(cat(Buffer.alloc(3 * 300).fill(hex("d9d9f7")), uint(0)), /nesting deeper than 256/);
    expectRefused(cat(Buffer.alloc(300, 0xbf), uint(0)), /nesting deeper than 256/);
    expect(decodeValue(nested(CborLimits.maxDepth))).toBeInstanceOf(Array);
    let value: unknown = 0;
    for (let i = 0; i < 120; i++) value = { a: [value] };
    expect(decodeValue(encodeValue(value))).toEqual(value);
  });

  test("declared lengths beyond the remaining bytes", () => {
    expectRefused(hex("9a ffffffff 00"), /byte 0: truncated: an array of 4294967295 items has 1 bytes left/);
    expectRefused(hex("9b 00000001 00000000"), /truncated: an array/);
    expectRefused(hex("ba 7fffffff 00 00"), /truncated: a map of 2147483647 entries/);
    expectRefused(hex("5a 00100000 00"), /truncated: a string of 1048576 bytes/);
    expectRefused(hex("7b 0000000100000000"), /truncated: a string/);
    expectRefused(hex("82 01"), /truncated: an array of 2 items has 1 bytes left/);
    expectRefused(hex("9f 01"), /byte 2: truncated: an item is missing/);
    expectRefused(hex("19 01"), /truncated: an item's argument/);
  });

  test("runs of small integers and simple values in arrays (read by a loop of their own) end where the array does", () => {
    expect(decodeValue(hex("83 01 02 03"))).toEqual([1, 2, 3]);
    expect(decodeValue(hex("82 83 01 02 03 82 f5 f6"))).toEqual([[1, 2, 3], [true, null]]);
    expect(decodeValue(hex("9f 01 02 f4 ff"))).toEqual([1, 2, false]);
    expect(decodeValue(hex("9f 9f 01 ff 02 ff"))).toEqual([[1], 2]);
    expect(decodeValue(hex("84 01 02 63 61 62 63 03"))).toEqual([1, 2, "abc", 3]);
    expectRefused(hex("83 01 02"), /truncated/);
    expectRefused(hex("82 01 02 03"), /byte 3: 1 bytes after the end of the item/);
    expectRefused(hex("9f 01 02"), /byte 3: truncated: an item is missing/);
    expectRefused(hex("83 01 1c 02"), /byte 2: reserved additional information 28/);
    // The same cost as item by item: an array, then one unit a small item.
    const items = 10_000;
    expect(estimateCborCost(cat(hex("99 2710"), Buffer.alloc(items, 0x05)))).toBe(Cost.array + items * Cost.scalar);
    expect(estimateCborCost(cat(hex("9f"), Buffer.alloc(items, 0xf6), hex("ff")))).toBe(Cost.array + items * Cost.scalar);
  });

  test("not well-formed or not accepted: reserved values, stray breaks, indefinite strings, trailing bytes", () => {
    expectRefused(new Uint8Array(0), /byte 0: no data/);
    expectRefused(hex("1c"), /reserved additional information 28/);
    expectRefused(hex("ff"), /break \(0xff\) outside/);
    expectRefused(hex("bf 61 61 ff"), /indefinite-length map ends after a key/);
    expectRefused(hex("5f 41 00 ff"), /indefinite length is not accepted for major type 2/);
    expectRefused(hex("7f 61 61 ff"), /major type 3/);
    expectRefused(hex("df 00"), /major type 6/);
    expectRefused(hex("01 02"), /byte 1: 1 bytes after the end of the item/);
    for (const simple of ["e0", "f3", "f8 20", "f8 ff", "f8 14"]) expectRefused(hex(simple), /simple value/);
  });

  test("tags whose content cbor-x would misread", () => {
    expectRefused(tag(0, uint(5)), /a date \(tag 0\) holds a text string/);
    expectRefused(tag(1, text("x")), /a date \(tag 1\)/);
    expectRefused(tag(1, uint(2n ** 40n)), /a date \(tag 1\)/);
    expectRefused(tag(4, array([uint(1)])), /array of two items/);
    expectRefused(tag(4, array([text("1"), uint(1)])), /integers or bignums only/);
    expectRefused(tag(27, array([uint(1), text("m")])), /text strings only/);
    expectRefused(tag(27, text("Error")), /an Error or RegExp \(tag 27\) holds an array/);
    expectRefused(tag(258, map([[text("a"), uint(1)]])), /a Set \(tag 258\) holds an array/);
    expectRefused(tag(259, array([uint(1)])), /a Map \(tag 259\) holds a map/);
    expectRefused(tag(259, tag(258, array([map([[text("a"), uint(1)]])]))), /a Map \(tag 259\) holds a map/);
    expectRefused(tag(86, array([uint(1)])), /a typed array \(RFC 8746 tag\) holds a byte string/);
  });
});

describe("refused: too costly for their size", () => {
  // Each class fills 1 MiB with one small item whose decode costs far more than its bytes.
  // Unguarded at 1 MiB: Errors 1.2-2 s, empty byte strings 0.2-0.5 s, empty Float64Arrays 0.3-0.8 s,
  // Dates, empty maps, maps {0: 0} and objects of ever new keys 0.1-0.5 s; 8 MiB take 8 times as long.
  const hostile = INPUT_CLASSES.filter((c) => c.verdict === "refused");
  test.each(hostile.map((c) => [c.name, c] as const))("%s, 1 MiB", (_, input) => {
    expectRefused(input.build(MiB), /./);
  });

  test("a small message may still hold a few costly items", () => {
    const errors = Array.from({ length: 100 }, (_, i) => new Error(`e${i}`));
    expect(decodeValue(encodeValue(errors))).toHaveLength(100);
    expect(decodeValue(encodeValue(new Set(Array.from({ length: 1000 }, (_, i) => i * 7))))).toBeInstanceOf(Set);
    // 6 units each: about 10,900 empty byte strings fit the minimum budget of 65,536 units.
    expect(decodeValue(repeated(hex("40"), 10_000))).toHaveLength(9_998);
    expectRefused(repeated(hex("40"), 12_000), /budget of 65536 units for 12000 bytes/);
    expectRefused(repeated(hex("40"), 120_000), /budget of 120000 units/);
  });
});

describe("decoded: everything the library sends", () => {
  const agent = new AgentId("a-uid", "alice");
  const user = new UserId("u-uid");

  test("ids, handles, bytes, dates, sets, maps, typed arrays, errors, regexps and plain values round-trip", () => {
    const value = {
      agent,
      user,
      nested: { deep: [[1, [2, [3, { x: null, y: undefined, z: true }]]]], text: "héllo ✓ 🎉" },
      numbers: [0, -1, 23, 24, 255, 65_536, -(2 ** 31), 2 ** 40, 1.5, -0.25, Number.MAX_VALUE, Infinity, -Infinity],
      bigints: [5n, -5n, 2n ** 63n, -(2n ** 64n), 2n ** 511n],
      bytes: new Uint8Array([1, 2, 3, 255]),
      empty: new Uint8Array(0),
      buffer: Buffer.from("buf"),
      dates: [new Date(0), new Date(1_700_000_000_123), new Date(1_700_000_000_000)],
      set: new Set(["a", 1, 2n, null]),
      map: new Map<unknown, unknown>([["k", 1], [2, [true]], [3.5, "f"], [new Uint8Array([1]), "b"]]),
      typed: [new Float64Array([1.5, -2]), new Float32Array([0.5]), new Int32Array([-7]), new Uint16Array([9]), new BigInt64Array([-3n]), new Int8Array([-1]), new Uint8ClampedArray([300])],
      regexp: /a+b/gi,
      error: new TypeError("bad"),
      tagged: new Tag({ any: "thing" }, 1234),
      big: Array.from({ length: 100_000 }, (_, i) => i),
    };
    const decoded = decodeValue(encodeValue(value)) as typeof value;
    expect(decoded.agent).toBeInstanceOf(AgentId);
    expect([decoded.agent.uid, decoded.agent.name]).toEqual(["a-uid", "alice"]);
    expect(decoded.user).toBeInstanceOf(UserId);
    expect(decoded.nested).toEqual(value.nested);
    expect(decoded.numbers).toEqual(value.numbers);
    expect(decoded.bigints).toEqual(value.bigints);
    expect([...decoded.bytes]).toEqual([1, 2, 3, 255]);
    expect(decoded.empty).toHaveLength(0);
    expect(Buffer.from(decoded.buffer).toString()).toBe("buf");
    expect(decoded.dates).toEqual(value.dates);
    expect(decoded.set).toEqual(value.set);
    expect([...decoded.map.keys()].slice(0, 3)).toEqual(["k", 2, 3.5]);
    for (const [i, typed] of value.typed.entries()) {
      expect(decoded.typed[i]!.constructor).toBe(typed.constructor);
      expect([...decoded.typed[i]!]).toEqual([...typed]);
    }
    expect(decoded.regexp).toEqual(/a+b/gi);
    expect(decoded.error).toBeInstanceOf(Error);
    expect(decoded.error.message).toBe("bad");
    expect(decoded.tagged).toEqual(new Tag({ any: "thing" }, 1234));
    expect(decoded.big).toEqual(value.big);
  });

  test("handles bind to the receiving client", () => {
    const bytes = encodeValue([new TestHandle(agent)]);
    const bound = decodeValue(bytes, { getHandle: (id) => new TestHandle(id) }) as TestHandle[];
    expect(bound[0]).toBeInstanceOf(TestHandle);
    expect(bound[0]!.agentId.uid).toBe("a-uid");
    expectRefused(tag(44034, uint(1)), /Malformed id tag content/);
  });

  test("every message type, and a launch request's args as bytes", () => {
    const routing = { tag: "t1", dest: "a1", src: "u1" };
    const args = encodeValue([1, "two", { three: new Date(3) }, new Uint8Array(70_000)]);
    const messages: Message[] = [
      { type: "action-request", ...routing, action: "run", args: [args, agent, new TestHandle(agent)] },
      { type: "ping-request", ...routing },
      { type: "cancel-request", ...routing, target: "t0" },
      { type: "shutdown-request", ...routing, terminate: true },
      { type: "action-response", ...routing, result: { rows: Array.from({ length: 5000 }, (_, i) => ({ id: i, name: `n${i}` })) } },
      { type: "success-response", ...routing },
      { type: "error-response", ...routing, error: { type: "Error", message: "m", code: "C" } },
    ];
    for (const message of messages) {
      const decoded = decodeMessage(encodeMessage(message));
      expect(decoded.type).toBe(message.type);
    }
    const request = decodeMessage(encodeMessage(messages[0]!)) as Extract<Message, { type: "action-request" }>;
    const inner = decodeValue(request.args[0] as Uint8Array) as unknown[];
    expect(inner.slice(0, 3)).toEqual([1, "two", { three: new Date(3) }]);
    expect(inner[3]).toHaveLength(70_000);
  });

  test("what foreign encoders write: indefinite lengths, half floats, tag 0 dates, decimal fractions, self-described CBOR, unknown tags", () => {
    expect(decodeValue(hex("bf 61 61 9f 01 f9 3e00 ff ff"))).toEqual({ a: [1, 1.5] });
    expect(decodeValue(tag(0, text("2024-01-02T03:04:05Z")))).toEqual(new Date("2024-01-02T03:04:05Z"));
    expect(decodeValue(tag(1, hex("fb 41d9a4ec1c000000")))).toBeInstanceOf(Date);
    expect(decodeValue(tag(4, array([int(-2), uint(27315)])))).toBe(273.15);
    expect(decodeValue(tag(4, array([int(-1), tag(2, bytes(Buffer.alloc(16, 1)))])))).toBeTypeOf("number");
    expect(decodeValue(tag(55799, map([[text("v"), uint(1)]])))).toEqual({ v: 1 });
    expect(decodeValue(tag(37, bytes(Buffer.alloc(16, 7))))).toEqual(new Tag(Buffer.alloc(16, 7), 37));
    expect(decodeValue(tag(1_000_000, text("x")))).toEqual(new Tag("x", 1_000_000));
    expect(decodeValue(tag(64, bytes(Buffer.from([1, 2]))))).toEqual(new Uint8Array([1, 2]));
  });

  test("large legitimate values of every input class decode", () => {
    for (const input of INPUT_CLASSES.filter((c) => c.verdict === "decoded")) {
      const bytes = input.build(MiB);
      const start = cpuMs();
      expect(() => decodeValue(bytes), input.name).not.toThrow();
      expect(cpuMs() - start, input.name).toBeLessThan(BOUND_MS);
    }
  });
});

describe("every tag cbor-x gives a meaning is either checked or refused", () => {
  test("a tag the guard lets through as is decodes to a plain cbor-x Tag", () => {
    // If an upgrade of cbor-x interprets a new tag, this fails until the guard classifies it.
    const edges = [0x1_0000, 0x5368_7263, 0x5368_7265, 1811939327, 2147483648, 0xffff_ffff];
    const tags = [...Array.from({ length: 0x1_0000 }, (_, i) => i), ...edges];
    let passed = 0;
    for (const t of tags) {
      const input = tag(t, hex("f6"));
      try {
        scanCbor(input);
      } catch (error) {
        expect(error).toBeInstanceOf(MalformedMessageError);
        continue;
      }
      passed++;
      if (t === 55799) expect(decodeValue(input)).toBeNull();
      else if (t >= 44032 && t <= 44034) expect(() => decodeValue(input)).toThrow(MalformedMessageError);
      else expect(decodeValue(input), `tag ${t}`).toEqual(new Tag(null, t));
    }
    expect(passed).toBeGreaterThan(50_000);
  });
});

describe("maps read as objects", () => {
  test("__proto__, constructor and prototype keys cannot pollute prototypes", () => {
    const hostile = [
      map([[text("__proto__"), map([[text("polluted"), Buffer.from([0xf5])]])]]),
      cat(hex("bf"), text("__proto__"), map([[text("polluted"), hex("f5")]]), hex("ff")),
      map([[text("a"), map([[text("__proto__"), map([[text("polluted"), hex("f5")]])]])]]),
      map([[text("constructor"), map([[text("prototype"), map([[text("polluted"), hex("f5")]])]])]]),
      encodeValue(JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}')),
    ];
    for (const bytes of hostile) {
      const decoded = decodeValue(bytes) as Record<string, unknown>;
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty("polluted");
      expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    }
    // cbor-x renames an own "__proto__" key "__proto_" (it never sets a prototype); "constructor" stays an own key.
    expect(decodeValue(hostile[0]!)).toEqual({ __proto_: { polluted: true } });
    expect(Object.hasOwn(decodeValue(hostile[3]!) as object, "constructor")).toBe(true);
    // In a Map (tag 259) the key is just a key.
    expect(decodeValue(tag(259, map([[text("__proto__"), uint(1)]])))).toEqual(new Map([["__proto__", 1]]));
  });

  test("keys that are not text become strings; keys that are arrays or maps are refused", () => {
    expect(decodeValue(map([[uint(1), text("a")], [hex("f5"), uint(2)], [hex("f6"), uint(3)], [tag(2, bytes(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0]))), uint(4)]]))).toEqual({
      "1": "a",
      true: 2,
      null: 3,
      "18446744073709551616": 4,
    });
    expect(() => decodeValue(map([[array([uint(1)]), uint(1)]]))).toThrow(MalformedMessageError);
    expect(() => decodeValue(map([[map([]), uint(1)]]))).toThrow(MalformedMessageError);
  });
});

describe("the sender refuses what receivers would refuse", () => {
  test("encodeValue throws SerializationError instead of sending an undecodable value", () => {
    expect(() => encodeValue(2n ** 600n)).toThrow(SerializationError);
    let deep: unknown = 0;
    for (let i = 0; i < 300; i++) deep = [deep];
    expect(() => encodeValue(deep)).toThrow(/nesting deeper than 256/);
    expect(() => encodeValue(new Set(collidingInt32(5000)))).toThrow(SerializationError);
    expect(() => encodeMessage({ type: "action-request", tag: "t", dest: "d", action: "a", args: [2n ** 1000n] })).toThrow(SerializationError);
  });
});

describe("fuzz: mutated valid messages", () => {
  /** A message whose decoding must not change, whatever came before it. */
  const canary = encodeMessage({ type: "action-request", tag: "c", dest: "d", src: "s", action: "a", args: [{ k: [1, 2] }, new Map([[1, 2]])] });
  const expected = decodeMessage(canary);

  function check(input: Uint8Array): number {
    const start = cpuMs();
    try {
      decodeMessage(input);
    } catch (error) {
      if (!(error instanceof MalformedMessageError || error instanceof IncompatibleProtocolError)) throw error;
      // What passes the scan never overflows the stack in cbor-x.
      expect((error as Error).cause).not.toBeInstanceOf(RangeError);
    }
    const ms = cpuMs() - start;
    expect(decodeMessage(canary)).toEqual(expected);
    return ms;
  }

  test("small and medium messages: 3000 inputs, each decoded or refused with a typed error", () => {
    const random = seededRandom(1);
    const seeds = [...seedMessages(256), ...seedMessages(4096), ...seedMessages(65_536)];
    let worst = 0;
    for (let i = 0; i < 3000; i++) worst = Math.max(worst, check(mutate(seeds[i % seeds.length]!, random)));
    expect(worst).toBeLessThan(BOUND_MS);
  });

  test("1 MiB messages: 30 inputs, each within the bound", () => {
    const random = seededRandom(2);
    const seeds = seedMessages(MiB);
    let worst = 0;
    for (let i = 0; i < 30; i++) worst = Math.max(worst, check(mutate(seeds[i % seeds.length]!, random)));
    expect(worst).toBeLessThan(BOUND_MS);
  });

  test("estimates are deterministic: the same input, the same cost", () => {
    const input = seedMessages(65_536)[1]!;
    expect(estimateCborCost(input)).toBe(estimateCborCost(input));
    expect(estimateCborCost(input)).toBeLessThan(input.length);
  });
});

describe("no path decodes CBOR around the guard", () => {
  test("only src/protocol/codec.ts imports cbor-x in src/ and runtime/", () => {
    const root = join(import.meta.dirname, "../..");
    const files = (dir: string): string[] =>
      readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
    const importers = [...files("src"), ...files("runtime")].filter((f) => /from\s+["']cbor-x["']|require\(["']cbor-x["']\)|import\(["']cbor-x["']\)/.test(readFileSync(join(root, f), "utf8")));
    expect(importers).toEqual([join("src", "protocol", "codec.ts")]);
  });
});

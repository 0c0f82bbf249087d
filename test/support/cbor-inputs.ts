/**
 * Hand-built CBOR for the decoder guard's tests and bench/decoder.ts: a small writer, and a
 * catalogue of input classes (hostile and legitimate) that fill a given size.
 */
import { Buffer } from "node:buffer";

/** Initial byte and argument of a data item, in the shortest form (bigint: 8-byte argument). */
export function head(major: number, arg: number | bigint): Buffer {
  if (typeof arg === "bigint") {
    const b = Buffer.alloc(9);
    b[0] = (major << 5) | 27;
    b.writeBigUInt64BE(arg, 1);
    return b;
  }
  if (arg < 24) return Buffer.from([(major << 5) | arg]);
  if (arg < 0x100) return Buffer.from([(major << 5) | 24, arg]);
  if (arg < 0x10000) return Buffer.from([(major << 5) | 25, arg >> 8, arg & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(arg, 1);
  return b;
}

export const cat = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts);
const concat = (parts: readonly Uint8Array[]): Buffer => Buffer.concat(parts);
export const uint = (n: number | bigint): Buffer => head(0, n);
/** A CBOR integer for any int32 (major type 0 or 1). */
export const int = (n: number): Buffer => (n >= 0 ? head(0, n) : head(1, -1 - n));
export const text = (s: string): Buffer => {
  const b = Buffer.from(s, "utf8");
  return cat(head(3, b.length), b);
};
export const bytes = (b: Uint8Array): Buffer => cat(head(2, b.length), b);
export const array = (items: readonly Uint8Array[]): Buffer => concat([head(4, items.length), ...items]);
export const map = (entries: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Buffer =>
  concat([head(5, entries.length), ...entries.flat()]);
export const tag = (t: number, content: Uint8Array): Buffer => cat(head(6, t), content);
/** An indefinite-length array (0x9f ... 0xff). */
export const indefinite = (items: readonly Uint8Array[]): Buffer => concat([Buffer.from([0x9f]), ...items, Buffer.from([0xff])]);

/** An indefinite-length array of copies of `item`, as many as fit in `size` bytes. */
export function repeated(item: Uint8Array, size: number): Buffer {
  const n = Math.max(1, Math.floor((size - 2) / item.length));
  const out = Buffer.alloc(2 + n * item.length);
  out[0] = 0x9f;
  for (let i = 0; i < n; i++) out.set(item, 1 + i * item.length);
  out[out.length - 1] = 0xff;
  return out;
}

/** An indefinite-length array of `make(i)` for i = 0, 1, ... while they fit in `size` bytes. */
export function filled(size: number, make: (i: number) => Uint8Array): Buffer {
  const out = Buffer.alloc(size);
  out[0] = 0x9f;
  let length = 1;
  for (let i = 0; ; i++) {
    const item = make(i);
    if (length + item.length + 1 > size) break;
    out.set(item, length);
    length += item.length;
  }
  out[length++] = 0xff;
  return out.subarray(0, length);
}

// V8 hashes a Smi or an int32-valued number with ComputeUnseededHash (src/utils/utils.h), and
// OrderedHashSet/Map take the bucket from the hash's low bits. Every step of that hash is
// invertible, so int32 keys whose hashes end in 16 zero bits are computed, not searched for.
const inverse32 = (a: number): number => {
  // Newton's iteration for the inverse of an odd number modulo 2^32.
  let x = a;
  for (let i = 0; i < 5; i++) x = Math.imul(x, 2 - Math.imul(a, x));
  return x >>> 0;
};
const unshiftRight = (y: number, shift: number): number => {
  let x = y;
  for (let i = 0; i < 32 / shift; i++) x = y ^ (x >>> shift);
  return x >>> 0;
};
function invertUnseededHash(hash: number): number {
  let h = unshiftRight(hash, 16);
  h = Math.imul(h, inverse32(2057)) >>> 0;
  h = unshiftRight(h, 4);
  h = Math.imul(h, inverse32(5)) >>> 0;
  h = unshiftRight(h, 12);
  return Math.imul((h + 1) >>> 0, inverse32(32767)) | 0;
}

/** `count` (at most 65536) distinct int32 values that V8 puts in one bucket of any Set or Map. */
export function collidingInt32(count: number): number[] {
  return Array.from({ length: count }, (_, j) => invertUnseededHash((j << 16) >>> 0));
}

/**
 * CBOR for the bignum (tag 2) (j + 1) * 2^64: V8 hashes a bigint by its lowest 64 bits only, so
 * all of them collide.
 */
export function collidingBignum(j: number): Buffer {
  const magnitude = Buffer.alloc(11);
  magnitude.writeUIntBE(j + 1, 0, 3);
  return tag(2, bytes(magnitude));
}

/** A tag 28/29 value (value sharing) of `depth` levels whose tree has 2^depth leaves. */
export function sharedValueBomb(depth: number): Buffer {
  const levels = [tag(28, Buffer.from([0x80]))];
  for (let i = 1; i < depth; i++) levels.push(tag(28, array([tag(29, uint(i - 1)), tag(29, uint(i - 1))])));
  return array(levels);
}

/** cbor-x packed values (tag 51) whose prefix reference (tag 225) copies a large array per use. */
export function packedConcat(size: number): Buffer {
  const half = Math.floor(size / 2);
  const prefix = cat(head(4, half - 8), Buffer.alloc(half - 8, 0));
  const uses = Math.floor((size - half - 16) / 3);
  const rump = cat(head(4, uses), Buffer.alloc(uses * 3).fill(Buffer.from([0xd8, 0xe1, 0x80])));
  return cat(Buffer.from([0xd8, 0x33, 0x84]), array([uint(0)]), array([Buffer.from([0xf6]), prefix]), Buffer.from([0x80]), rump);
}

/** A cbor-x record definition (tag 0xdfff) of record `id` with keys `keys`, and one instance. */
export function recordDefinition(id: number, keys: readonly string[], values: readonly Uint8Array[]): Buffer {
  return cat(Buffer.from([0xd9, 0xdf, 0xff]), head(4, 2 + values.length), uint(id), array(keys.map(text)), ...values);
}

/** How the guard is expected to treat a class of input. */
export type Verdict = "decoded" | "refused";

/** A class of input that the bench measures and the tests check. */
export interface InputClass {
  readonly name: string;
  /** What the guarded decoder does with it at 1 MiB and above. */
  readonly verdict: Verdict;
  /** The input, about `size` bytes. */
  build(size: number): Uint8Array;
  /**
   * Largest size at which the unguarded decoder is measured (it would take minutes beyond); the
   * bench scales the figure to 1 MiB by `scaling`.
   */
  readonly probeSize?: number;
  readonly scaling?: "quadratic" | "linear";
}

const KiB = 1024;
const ascii = (i: number): string => `agent-${i.toString(36)}`;

/**
 * The classes: every construct cbor-x decodes superlinearly or with a large cost per byte (all
 * refused at 1 MiB), then legitimate large values (all decoded).
 */
export const INPUT_CLASSES: readonly InputClass[] = [
  { name: "bignum (tag 2), one", verdict: "refused", build: (size) => tag(2, bytes(Buffer.alloc(size - 8, 0xff))), probeSize: 100 * KiB, scaling: "quadratic" },
  { name: "bignum in a typed array (tag 2 of tag 64)", verdict: "refused", build: (size) => tag(2, tag(64, bytes(Buffer.alloc(size - 10, 0xff)))), probeSize: 100 * KiB, scaling: "quadratic" },
  { name: "bignums of 64 bytes, dense", verdict: "refused", build: (size) => repeated(tag(2, bytes(Buffer.alloc(64, 0xff))), size) },
  { name: "Set of colliding bigints", verdict: "refused", build: (size) => tag(258, filled(size - 3, collidingBignum)), probeSize: 200 * KiB, scaling: "quadratic" },
  {
    name: "Set of colliding int32",
    verdict: "refused",
    build: (size) => {
      const keys = collidingInt32(65536);
      return tag(258, filled(size - 3, (i) => int(keys[i % keys.length]!)));
    },
    probeSize: 64 * KiB,
    scaling: "quadratic",
  },
  {
    name: "Map of colliding int32 keys",
    verdict: "refused",
    build: (size) => {
      const keys = collidingInt32(65536);
      const n = Math.min(65536, Math.floor((size - 8) / 6));
      return tag(259, concat([head(5, n), ...keys.slice(0, n).map((k) => cat(int(k), Buffer.from([0xf6])))]));
    },
    probeSize: 64 * KiB,
    scaling: "quadratic",
  },
  { name: "shared values (tags 28/29), 2^40 leaves", verdict: "refused", build: () => sharedValueBomb(40) },
  { name: "packed values (tag 51) + prefix copies", verdict: "refused", build: packedConcat, probeSize: 40 * KiB, scaling: "quadratic" },
  {
    name: "record definitions (tag 0xdfff)",
    verdict: "refused",
    build: (size) => filled(size, (i) => recordDefinition(0xe000 + (i % 8000), [`k${i}`], [uint(1)])),
  },
  { name: "nested arrays (0x81...)", verdict: "refused", build: (size) => cat(Buffer.alloc(size - 1, 0x81), uint(0)) },
  { name: "nested tags (55799...)", verdict: "refused", build: (size) => cat(Buffer.alloc(size - 1 - ((size - 1) % 3)).fill(Buffer.from([0xd9, 0xd9, 0xf7])), uint(0)) },
  { name: "array of 2^32-1 items, no data", verdict: "refused", build: () => Buffer.from([0x9a, 0xff, 0xff, 0xff, 0xff, 0x00]) },
  { name: "Errors (tag 27), dense", verdict: "refused", build: (size) => repeated(Buffer.from([0xd8, 0x1b, 0x82, 0x60, 0x60]), size) },
  { name: "RegExps (tag 27), dense", verdict: "refused", build: (size) => repeated(tag(27, array([text("RegExp"), text("a"), text("")])), size) },
  { name: "decimal fractions (tag 4), dense", verdict: "refused", build: (size) => repeated(Buffer.from([0xc4, 0x82, 0x21, 0x19, 0x6a, 0xb3]), size) },
  { name: "empty byte strings, dense", verdict: "refused", build: (size) => repeated(Buffer.from([0x40]), size) },
  { name: "empty Float64Arrays (tag 86), dense", verdict: "refused", build: (size) => repeated(Buffer.from([0xd8, 0x56, 0x40]), size) },
  { name: "Dates (tag 1), dense", verdict: "refused", build: (size) => repeated(Buffer.from([0xc1, 0x00]), size) },
  { name: "empty maps, dense", verdict: "refused", build: (size) => repeated(Buffer.from([0xa0]), size) },
  { name: "maps {0: 0}, dense", verdict: "refused", build: (size) => repeated(Buffer.from([0xa1, 0x00, 0x00]), size) },
  { name: "empty arrays, dense", verdict: "refused", build: (size) => repeated(Buffer.from([0x80]), size) },
  { name: "empty Sets (tag 258), dense", verdict: "refused", build: (size) => repeated(Buffer.from([0xd9, 0x01, 0x02, 0x80]), size) },
  {
    // The cost is the receiving client's, which makes a handle per new id (the bench decodes without one).
    name: "handles (tag 44034) of new ids",
    verdict: "refused",
    build: (size) => filled(size, (i) => (i % 2 ? text(`padding-${i % 10}`) : tag(44034, array([text(i.toString(36))])))),
  },

  { name: "one byte string", verdict: "decoded", build: (size) => bytes(Buffer.alloc(size - 5, 7)) },
  { name: "one text string, non-ASCII", verdict: "decoded", build: (size) => text("é".repeat(Math.floor((size - 5) / 2))) },
  { name: "integers 0-23, dense", verdict: "decoded", build: (size) => filled(size, (i) => uint(i % 24)) },
  { name: "float64s", verdict: "decoded", build: (size) => filled(size, (i) => cat(Buffer.from([0xfb]), f64(i + 0.5))) },
  { name: "half floats", verdict: "decoded", build: (size) => repeated(Buffer.from([0xf9, 0x3e, 0x00]), size) },
  // A generic Tag object costs about 80 ns: a MiB of nothing else (350,000 of them) is refused; the
  // same tags around 10-byte strings (80,000 in a MiB) are decoded.
  { name: "unknown tags (cbor-x Tag objects), dense", verdict: "refused", build: (size) => repeated(Buffer.from([0xd8, 0x64, 0x00]), size) },
  { name: "unknown tags (cbor-x Tag objects) of short strings", verdict: "decoded", build: (size) => filled(size, (i) => tag(100, text(`tagged-${String(i % 1000).padStart(3, "0")}`))) },
  { name: "short strings", verdict: "decoded", build: (size) => filled(size, (i) => text(ascii(i))) },
  {
    name: "records {id, name, ok}",
    verdict: "decoded",
    build: (size) => filled(size, (i) => map([[text("id"), uint(i)], [text("name"), text(ascii(i))], [text("ok"), Buffer.from([0xf5])]])),
  },
  { name: "rows [x, y, z]", verdict: "decoded", build: (size) => filled(size, (i) => array([uint(i % 1000), uint(i % 7), uint(i % 100)])) },
  { name: "object of short distinct keys", verdict: "refused", build: (size) => objectOf(size, (i) => `key-${i}`) },
  { name: "objects with distinct shapes", verdict: "refused", build: (size) => filled(size, (i) => map([[text(`k${i}`), uint(0)]])) },
  { name: "object keyed by UUIDs", verdict: "decoded", build: (size) => objectOf(size, uuidLike) },
  { name: "Set of strings", verdict: "decoded", build: (size) => tag(258, filled(size - 3, (i) => text(`member-${i}`))) },
  { name: "Uint8Arrays of 1 KiB", verdict: "decoded", build: (size) => filled(size, (i) => bytes(Buffer.alloc(1024, i & 0xff))) },
];

/** One object of about `size` bytes with the keys `key(0)`, `key(1)`, ... and small integer values. */
function objectOf(size: number, key: (i: number) => string): Buffer {
  const entries: Array<readonly [Uint8Array, Uint8Array]> = [];
  for (let i = 0, length = 5; ; i++) {
    const entry = [text(key(i)), uint(i % 24)] as const;
    if (length + entry[0].length + entry[1].length > size) break;
    entries.push(entry);
    length += entry[0].length + entry[1].length;
  }
  return map(entries);
}

/** A UUID-shaped string made from `i` (deterministic). */
function uuidLike(i: number): string {
  const hex = (n: number, width: number): string => (n >>> 0).toString(16).padStart(width, "0").slice(-width);
  const a = Math.imul(i + 1, 0x9e3779b1);
  const b = Math.imul(i + 7, 0x85ebca6b);
  return `${hex(a, 8)}-${hex(b, 4)}-4${hex(b >>> 16, 3)}-8${hex(a >>> 8, 3)}-${hex(i, 12)}`;
}

function f64(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(value, 0);
  return b;
}

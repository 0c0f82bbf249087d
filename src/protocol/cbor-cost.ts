/**
 * The decode-cost model of the CBOR guard (cbor-guard.ts): what each item costs cbor-x 1.6.9 and
 * V8 to build, in units of about one small integer (30-40 ns on the reference machine, a 2-core
 * VM). Figures from bench/decoder.ts: the per-item time of cbor-x at 1 MiB, garbage collection
 * included, in a fresh process. Copying bytes and decoding UTF-8 (under 5 ns per byte) are not
 * charged; the budget they share is linear in the input's size.
 *
 * Two costs depend on more than the item itself, and are estimated here with state per nesting
 * level and per scan (no allocation):
 * - objects: V8 gives an object a hidden class per distinct sequence of keys, and creating one
 *   takes about 1 µs; a key never seen before takes about 0.4 µs to intern. A small cache of
 *   recently seen (shape, key) hashes tells new ones from repeated ones, so that an array of
 *   records with the same keys costs little and objects with ever new keys cost what they do;
 * - `Set`s and `Map`s: V8 hashes numbers and bigints without a seed, so keys chosen to collide
 *   make each insertion walk all the keys before it (quadratic). Such keys are charged by their
 *   rank in their collection.
 */

/** Cost of each kind of item, in units. */
export const Cost = {
  /** An integer below 2^64, float or simple value. */
  scalar: 1,
  /** An integer with an 8-byte argument: cbor-x makes it a bigint. */
  int64: 2,
  /** A text string: 1, plus 1 per byte up to 2 (short non-ASCII strings take a slower path). */
  text: 1,
  /** A byte string: a `Buffer` view, 100-200 ns whatever its length. */
  bytes: 6,
  array: 2,
  /** A map read as an object. */
  map: 5,
  /** Storing a key into an object. */
  entry: 1,
  /** A key of an object that is not text: cbor-x turns it into a string, often an array index. */
  nonTextKey: 6,
  /** A key whose (shape, key) pair was not seen before in this input: a new hidden class. */
  newShape: 30,
  /** A key past {@link FAST_KEYS} not seen before in this input: interning it (about 0.25 µs). */
  newKey: 8,
  /** Adding a key to a `Set` or `Map` (hashing it). */
  collectionEntry: 3,
  /** Any tag: an extension call or a generic `Tag` object. */
  tag: 1,
  /**
   * A tag cbor-x does not interpret, beyond {@link tag}: a generic `Tag` object around its content
   * (about 80 ns a tag in all).
   */
  genericTag: 2,
  /** Date (tag 0 or 1). */
  date: 6,
  /** Bignum: this much plus one per byte of magnitude. */
  bignum: 4,
  /** Decimal fraction or bigfloat (tags 4, 5). */
  decimal: 4,
  /** Typed array (RFC 8746 tags), plus one per 8 bytes (big-endian arrays are converted). */
  typedArray: 20,
  /** `Set` (tag 258) or `Map` (tag 259). */
  collection: 10,
  /** `Error` or `RegExp` (tag 27): capturing a stack trace takes about 9 µs. */
  error: 300,
  /** Agent id or user id (tags 44032, 44033). */
  id: 8,
  /**
   * Handle (tag 44034): the receiving client makes (and keeps) a handle, a proxy, per new agent
   * id: 1.5-5 µs.
   */
  handle: 100,
} as const;

/**
 * Keys of an object up to this many get a hidden class each; V8 stores further keys in a
 * dictionary, where only a key's first appearance costs more.
 */
const FAST_KEYS = 16;

/**
 * In a `Set` or a `Map`, the i-th key (from 0) that V8 hashes without a seed costs `i >> shift`
 * units more, for the keys before it that its insertion may walk: about 2 ns a step for integers
 * below 2^32 (shift 4), up to 7 ns for bigints (shift 2, also for floats, simple values and tags).
 */
const INT_KEY_SHIFT = 4;
const OTHER_KEY_SHIFT = 2;

/**
 * Hashes of the (shape, key) pairs seen in this scan: open addressing, up to {@link PROBES} slots
 * from the hash's own. An entry is current when its generation is this scan's; nothing is cleared
 * between scans. With a few hundred distinct shapes, as real payloads have, the probes make the
 * estimate independent of the hash seed in practice (a pair is lost only when five fall in four
 * slots), so that sender and receiver agree. When the slots of a pair are all taken, it replaces
 * the first: past a few thousand pairs (a large dictionary, a flood of new shapes) the estimate
 * forgets some, and only charges more.
 */
const CACHE_SIZE = 4096;
const PROBES = 4;
const seen = new Int32Array(CACHE_SIZE);
const seenGeneration = new Int32Array(CACHE_SIZE);
let generation = 0;
/**
 * A seed per process, so that a sender cannot choose keys whose hashes equal those of keys seen
 * before, making new shapes look seen (the estimate would be low; the cost still linear).
 */
const SEED = (Math.random() * 0x1_0000_0000) | 0;

/** The shape of an object without keys. */
export const EMPTY_SHAPE = SEED;

/** Start estimating a new input: forgets the shapes seen in earlier ones. */
export function beginEstimate(): void {
  generation = (generation + 1) | 0;
}

/**
 * The shape of an object (of shape `shape`) after its `index`-th key, the item
 * `bytes[start..end)`: a hash of all its keys while it has up to {@link FAST_KEYS}, of the key
 * alone after that.
 */
export function shapeAfterKey(shape: number, index: number, bytes: Uint8Array, start: number, end: number): number {
  let h = index < FAST_KEYS ? shape : SEED;
  let i = start;
  // Four bytes a step; the key's header byte (with its length) is part of the range.
  for (; i + 4 <= end; i += 4) {
    h = Math.imul(h ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)), 0x0100_0193);
    h ^= h >>> 13;
  }
  for (; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x0100_0193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b_3c6d);
  return h ^ (h >>> 12);
}

/**
 * Cost of the `index`-th key of an object that leads to `shape`. `known` is false for keys that
 * are arrays, maps or tags (cbor-x refuses them as keys, except bignums): they count as new.
 */
export function objectKeyCost(shape: number, index: number, known: boolean): number {
  const fresh = Cost.entry + (index < FAST_KEYS ? Cost.newShape : Cost.newKey);
  if (!known) return fresh;
  for (let probe = 0; probe < PROBES; probe++) {
    const slot = (shape + probe) & (CACHE_SIZE - 1);
    if (seenGeneration[slot] !== generation) {
      seen[slot] = shape;
      seenGeneration[slot] = generation;
      return fresh;
    }
    if (seen[slot] === shape) return Cost.entry;
  }
  // All taken by other pairs: this one replaces the first.
  seen[shape & (CACHE_SIZE - 1)] = shape;
  return fresh;
}

/**
 * Cost of a key of a `Set` or `Map`: `rank` is its rank (from 0) among the keys of its collection
 * that V8 hashes without a seed (numbers, bigints, simple values, tagged items), or -1 for a key
 * hashed with a seed (text) or by identity (byte strings, arrays, maps). `integer` for an integer
 * below 2^32, whose comparisons are cheaper.
 */
export function collectionKeyCost(rank: number, integer: boolean): number {
  return Cost.collectionEntry + (rank < 0 ? 0 : rank >> (integer ? INT_KEY_SHIFT : OTHER_KEY_SHIFT));
}

/**
 * A one-pass check of CBOR bytes before cbor-x decodes them, so that no input costs more than
 * linear time (with a small constant) to decode. `decodeValue` (codec.ts) runs it on every path:
 * mailboxes, launch requests, KV records, dead letters, worker messages.
 *
 * cbor-x 1.6.9 gives some inputs superlinear or explosive cost, and some a large constant per
 * byte (figures from bench/decoder.ts on a 2-core machine):
 * - a bignum (tag 2/3) is built byte by byte with BigInt shifts: 100 KB take about 1 s, 1 MiB
 *   minutes (quadratic);
 * - record definitions (tags 0xdff9-0xffff, 105) are kept in the decoder across messages: one
 *   message changes how later ones decode, and ids without bound grow memory;
 * - value sharing (tags 28/29) and packed values (tags 51, 6, the prefix/suffix ranges) turn a
 *   few hundred bytes into a value exponentially larger, or copy arrays per reference (80 KB
 *   take 10 s);
 * - V8 hashes numbers and bigints in a `Set` or `Map` without a seed, so keys chosen to collide
 *   make a tag 258/259 collection quadratic (40,000 bigint keys: 5 s);
 * - nesting a few thousand levels deep overflows the stack;
 * - some items cost far more than their size: an `Error` (tag 27) about 9 µs for 5 bytes, an
 *   empty byte string or typed array 0.2-0.7 µs for 1-3 bytes.
 *
 * The check refuses the first kinds outright (which tags, and what their content must be:
 * cbor-tags.ts), bounds bignums and depth, and charges every item an estimated cost
 * (cbor-cost.ts) against a budget proportional to the input's size. It allocates nothing per
 * item: a few typed arrays, one slot per nesting level, are reused by every call. What it accepts and
 * refuses is specified in docs/PROTOCOL.md section 4.4; keep both in step.
 */
import { MalformedMessageError } from "../errors.ts";
import { Cost, EMPTY_SHAPE, beginEstimate, collectionKeyCost, objectKeyCost, shapeAfterKey } from "./cbor-cost.ts";
import { MAX_BIGNUM_BYTES, TagClass, classifyTag, tagContentCost, tagContentProblem, tagCost } from "./cbor-tags.ts";

/** What the guard accepts; see docs/PROTOCOL.md section 4.4. */
export const CborLimits = {
  /**
   * Largest magnitude of a bignum (tags 2 and 3), in bytes: integers up to 512 bits. cbor-x builds
   * a bignum with one BigInt shift per byte, so its cost grows with the square of its length; at
   * 64 bytes it still costs about as much per byte as a small integer does.
   */
  maxBignumBytes: MAX_BIGNUM_BYTES,
  /** Deepest nesting of arrays, maps and tags (cbor-x overflows the stack at a few thousand). */
  maxDepth: 256,
  /**
   * Decode budget per byte of input, in cost units. One unit is about the cost of decoding a
   * small integer (30-40 ns on the reference machine), the cheapest item and at least one byte
   * long, so any input made of numbers, strings and plain values fits.
   */
  costPerByte: 1,
  /** Budget of every input, whatever its size, so that small messages may hold a few costly items. */
  minCost: 65_536,
} as const;

/**
 * What a nesting level (frame) holds. Plain numbers rather than an object so that the hot loop
 * reads no properties. Frames from `MAP` up need a check of each item; tag frames, from
 * `TAG_FRAME` up, hold the one item of a tag whose class (cbor-tags.ts) is `kind - TAG_FRAME`.
 */
const ROOT = 0;
const ARRAY = 1;
/** A map read as an object (the default). */
const MAP = 2;
/** The array of a `Set` (tag 258): every item is a key. */
const SET_ARRAY = 3;
/** The map of a `Map` (tag 259): keys of any type. */
const JS_MAP = 4;
/** The array of an `Error`/`RegExp` (tag 27): text strings only. */
const TEXTS = 5;
/** The array of a decimal fraction or bigfloat (tags 4, 5): integers or bignums. */
const NUMBERS = 6;
const TAG_FRAME = 7;
const TAG_DECIMAL = TAG_FRAME + TagClass.Decimal;
const TAG_ERROR = TAG_FRAME + TagClass.ErrorLike;
const TAG_SET = TAG_FRAME + TagClass.Set;
const TAG_MAP = TAG_FRAME + TagClass.Map;

function fail(offset: number, reason: string): never {
  throw new MalformedMessageError(`CBOR refused at byte ${offset}: ${reason}`);
}

function readUint32(bytes: Uint8Array, pos: number): number {
  return ((bytes[pos]! << 24) >>> 0) + ((bytes[pos + 1]! << 16) | (bytes[pos + 2]! << 8) | bytes[pos + 3]!);
}

// The frames below the top one, one slot per nesting level, shared by every call (the scan is
// synchronous and calls out to nothing). The top frame lives in local variables of `scan`.
const kinds = new Uint8Array(CborLimits.maxDepth + 1);
/**
 * Items left in the frame; -1 for indefinite length. Int32 (and so are the counts): every item
 * takes at least a byte, and lengths are checked against the bytes left before they are stored.
 */
const remaining = new Int32Array(CborLimits.maxDepth + 1);
/** Items of the frame read so far (even: a map key is next). */
const counts = new Int32Array(CborLimits.maxDepth + 1);
/** Of an object: its shape (cbor-cost.ts); of a Set or Map: its keys that V8 hashes without a seed. */
const keyStates = new Int32Array(CborLimits.maxDepth + 1);

/**
 * Inputs up to this size are not charged for new object shapes: that saves hashing every key of
 * the typical message, and at most costs about 0.5 ms (some 450 objects of new shapes).
 */
const SHAPES_FROM_BYTES = 4096;

/**
 * Check that `bytes` hold exactly one CBOR item that cbor-x decodes in linear time with a small
 * constant; docs/PROTOCOL.md section 4.4 lists what is accepted. One pass, no allocation per item.
 * @throws {MalformedMessageError} naming the refused item and its byte offset: not well-formed,
 *   truncated or followed by more bytes; a refused tag or simple value; a bignum beyond
 *   {@link CborLimits.maxBignumBytes}; nesting beyond {@link CborLimits.maxDepth}; a tag whose
 *   content cbor-x would misread; or an estimated cost beyond the input's budget,
 *   `max(minCost, costPerByte * bytes.length)`.
 */
export function scanCbor(bytes: Uint8Array): void {
  scan(bytes, Math.max(CborLimits.minCost, bytes.length * CborLimits.costPerByte));
}

/**
 * The estimated decode cost of `bytes`, in units of about one small integer (see
 * {@link CborLimits}), for measurement (bench/decoder.ts): {@link scanCbor} without the budget.
 * @throws {MalformedMessageError} as {@link scanCbor}, except for the budget.
 */
export function estimateCborCost(bytes: Uint8Array): number {
  return scan(bytes, Infinity);
}

function scan(bytes: Uint8Array, budget: number): number {
  beginEstimate();
  const end = bytes.length;
  const shapes = end > SHAPES_FROM_BYTES;
  let cost = 0;
  let pos = 0;
  let top = 0;
  // The top frame: its kind, items left (-1: indefinite), items read, key state.
  let kind = ROOT;
  let left = 1;
  let count = 0;
  let keyState = 0;
  for (;;) {
    if (kind === ARRAY && left !== 1) {
      // A run of small integers and simple values in an array, the densest input there is (one
      // byte an item): counted in a loop of its own, all but the array's last item, which the
      // general path below reads and closes the array with.
      const stop = left === -1 || left - 1 > end - pos ? end : pos + left - 1;
      let i = pos;
      while (i < stop) {
        const b = bytes[i]!;
        if (b < 0x18 || (b >= 0xf4 && b <= 0xf7)) i++;
        else break;
      }
      if (i !== pos) {
        const n = i - pos;
        cost += n * Cost.scalar;
        count += n;
        if (left !== -1) left -= n;
        pos = i;
        if (cost > budget) fail(pos - 1, `decoding would cost more than the budget of ${budget} units for ${end} bytes`);
      }
    }
    if (pos >= end) fail(pos, end === 0 ? "no data" : "truncated: an item is missing");
    const start = pos;
    const initial = bytes[pos++]!;
    if (
      kind <= MAP &&
      (initial < 0x18 || (initial >= 0x60 && initial < 0x78) || (initial >= 0xf4 && initial <= 0xf7)) &&
      (kind !== MAP || (count & 1) === 1 || !shapes)
    ) {
      // The most common items, in short: a small integer, short text or simple value in an array
      // or object (not a key whose shape is to be estimated). Checked against the budget with
      // the next item, or at the end.
      if (initial >= 0x60) {
        if (initial < 0x78) {
          const length = initial - 0x60;
          if (length > end - pos) fail(start, `truncated: a string of ${length} bytes has ${end - pos} left`);
          pos += length;
          cost += Cost.text + (length < 2 ? length : 2);
        } else cost += Cost.scalar;
      } else cost += Cost.scalar;
      if (kind === MAP && (count & 1) === 0) cost += Cost.entry + (initial >= 0x60 && initial < 0x78 ? 0 : Cost.nonTextKey);
    } else if (initial === 0xff) {
      if (left !== -1) fail(start, "break (0xff) outside an indefinite-length array or map");
      if ((kind === MAP || kind === JS_MAP) && (count & 1) === 1) fail(start, "indefinite-length map ends after a key");
      top--;
      kind = kinds[top]!;
      left = remaining[top]!;
      count = counts[top]!;
      keyState = keyStates[top]!;
    } else {
      const major = initial >> 5;
      const info = initial & 0x1f;
      let arg = info;
      if (info >= 24) {
        if (info > 27) {
          if (info !== 31) fail(start, `reserved additional information ${info}`);
          if (major !== 4 && major !== 5) fail(start, `indefinite length is not accepted for major type ${major}`);
          arg = -1;
        } else {
          const size = 1 << (info - 24);
          if (size > end - pos) fail(start, "truncated: an item's argument is missing");
          // Integers and floats need only their size; lengths and tag numbers need their value.
          if (major === 0 || major === 1 || major === 7) arg = size === 1 ? bytes[pos]! : 0;
          else if (size === 1) arg = bytes[pos]!;
          else if (size === 2) arg = (bytes[pos]! << 8) | bytes[pos + 1]!;
          else if (size === 4) arg = readUint32(bytes, pos);
          else arg = readUint32(bytes, pos) * 0x1_0000_0000 + readUint32(bytes, pos + 4);
          pos += size;
        }
      }

      // What the enclosing frame expects of this item, and the cost of storing it as a key.
      let objectKey = false;
      if (kind >= MAP) {
        if (kind >= TAG_FRAME) {
          const problem = tagContentProblem(kind - TAG_FRAME, major, info, arg);
          if (problem !== undefined) fail(start, problem);
          cost += tagContentCost(kind - TAG_FRAME, arg);
        } else if (kind === MAP) {
          objectKey = (count & 1) === 0;
        } else if (kind === SET_ARRAY || kind === JS_MAP) {
          if (kind === SET_ARRAY || (count & 1) === 0) {
            cost += collectionKeyCost(major < 2 || major > 5 ? keyState++ : -1, major < 2 && info < 27);
          }
        } else if (kind === TEXTS) {
          if (major !== 3) fail(start, "an Error or RegExp (tag 27) holds text strings only");
        } else if (major > 1 && !(major === 6 && (arg === 2 || arg === 3))) {
          // NUMBERS, the array of a decimal fraction or bigfloat.
          fail(start, "a decimal fraction or bigfloat (tag 4, 5) holds integers or bignums only");
        }
      }

      let opened = -1;
      switch (major) {
        case 0:
        case 1:
          cost += info === 27 ? Cost.int64 : Cost.scalar;
          break;
        case 2:
        case 3:
          if (arg > end - pos) fail(start, `truncated: a string of ${arg} bytes has ${end - pos} left`);
          pos += arg;
          cost += major === 2 ? Cost.bytes : Cost.text + (arg < 2 ? arg : 2);
          break;
        case 4:
          if (arg > end - pos) fail(start, `truncated: an array of ${arg} items has ${end - pos} bytes left`);
          cost += Cost.array;
          if (arg !== 0) opened = kind === TAG_SET ? SET_ARRAY : kind === TAG_ERROR ? TEXTS : kind === TAG_DECIMAL ? NUMBERS : ARRAY;
          break;
        case 5:
          if (arg > (end - pos) / 2) fail(start, `truncated: a map of ${arg} entries has ${end - pos} bytes left`);
          cost += Cost.map;
          if (arg !== 0) {
            opened = kind === TAG_MAP ? JS_MAP : MAP;
            if (arg !== -1) arg *= 2;
          }
          break;
        case 6: {
          if (arg > 0xffff_ffff) fail(start, "tag number beyond 32 bits");
          const tagClass = classifyTag(arg);
          if (typeof tagClass === "string") fail(start, tagClass);
          cost += Cost.tag + tagCost(tagClass);
          opened = TAG_FRAME + tagClass;
          arg = 1;
          break;
        }
        default:
          // Major type 7: false, true, null, undefined and floats; every other simple value is refused.
          if ((info < 20 || info > 23) && (info < 25 || info > 27)) fail(start, `simple value ${info === 24 ? arg : info} is not accepted`);
          cost += Cost.scalar;
      }
      if (objectKey) {
        if (major !== 3) cost += Cost.nonTextKey;
        if (shapes) {
          // A key that is a whole item here (not an array, map or tag) is hashed into the object's shape.
          const whole = opened === -1;
          keyState = shapeAfterKey(keyState, count >> 1, bytes, start, whole ? pos : start);
          cost += objectKeyCost(keyState, count >> 1, whole);
        } else cost += Cost.entry;
      }
      if (cost > budget) fail(start, `decoding would cost more than the budget of ${budget} units for ${end} bytes`);
      if (opened !== -1) {
        if (top === CborLimits.maxDepth) fail(start, `nesting deeper than ${CborLimits.maxDepth}`);
        kinds[top] = kind;
        remaining[top] = left;
        counts[top] = count;
        keyStates[top] = keyState;
        top++;
        kind = opened;
        left = arg;
        count = 0;
        keyState = opened === MAP ? EMPTY_SHAPE : 0;
        continue;
      }
    }
    // An item is complete: count it in its frame, and close every frame it completes.
    for (;;) {
      count++;
      if (left === -1 || --left > 0) break;
      if (top === 0) {
        if (pos !== end) fail(pos, `${end - pos} bytes after the end of the item`);
        if (cost > budget) fail(start, `decoding would cost more than the budget of ${budget} units for ${end} bytes`);
        return cost;
      }
      top--;
      kind = kinds[top]!;
      left = remaining[top]!;
      count = counts[top]!;
      keyState = keyStates[top]!;
    }
  }
}

/**
 * Which CBOR tags the decoder guard (cbor-guard.ts) accepts, and what their content must be: the
 * tags cbor-x 1.6.9 interprets are either checked here or refused; every other tag reaches the
 * application as a cbor-x `Tag`. docs/PROTOCOL.md section 4.4 lists them; keep both in step.
 */
import { Cost } from "./cbor-cost.ts";

/** Largest magnitude of a bignum (tags 2 and 3), in bytes. */
export const MAX_BIGNUM_BYTES = 64;

/** What a tag is to the guard: the check its content gets and what it costs. */
export const TagClass = {
  /** Not interpreted by cbor-x: a `Tag` object (or, for 55799, its content). */
  Generic: 0,
  /** Tag 0: a date from text. */
  DateText: 1,
  /** Tag 1: a date from a number. */
  DateNumber: 2,
  /** Tags 2, 3. */
  Bignum: 3,
  /** Tags 4, 5: decimal fraction, bigfloat. */
  Decimal: 4,
  /** Tag 27: `Error` or `RegExp`. */
  ErrorLike: 5,
  /** Tag 258. */
  Set: 6,
  /** Tag 259. */
  Map: 7,
  /** RFC 8746 typed arrays. */
  TypedArray: 8,
  /** Tags 44032, 44033: agent id, user id (checked by their codec extension). */
  Id: 9,
  /** Tag 44034: a handle, bound by the receiving client (checked by its codec extension). */
  Handle: 10,
} as const;
export type TagClass = (typeof TagClass)[keyof typeof TagClass];

/** Tags of the typed arrays cbor-x 1.6.9 decodes (RFC 8746; big-endian ones are 4 less). */
const TYPED_ARRAY_TAGS = new Set([64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 77, 78, 79, 81, 82, 85, 86]);

/**
 * Why a tag is refused, or undefined when it is not. These are the tags cbor-x 1.6.9 gives a
 * meaning this library does not use: each builds state or references with which one message can
 * make its decoded value, or the decoder, far larger than its bytes. (Tags 25 and 256, string
 * references, are not implemented by cbor-x 1.6.9; they are refused so that an upgrade cannot
 * bring them in.)
 */
function refusal(tag: number): string | undefined {
  if (tag === 6 || tag === 51) return "packed values (cbor-x packing)";
  if ((tag >= 216 && tag <= 223) || (tag >= 225 && tag <= 255) || (tag >= 27647 && tag <= 32767) || (tag >= 1811939328 && tag <= 2147483647)) {
    return "packed prefix or suffix reference";
  }
  if (tag === 14 || tag === 15) return "bundled string reference";
  if (tag === 25 || tag === 256) return "string reference";
  if (tag === 28 || tag === 29) return "shared value (value sharing)";
  if (tag === 105 || (tag >= 0xdff9 && tag <= 0xffff)) return "record definition or bundled strings (cbor-x records)";
  if (tag === 0x53687264) return "shared data (cbor-x records)";
  return undefined;
}

/** The class of tag number `tag`, or why it is refused. */
export function classifyTag(tag: number): TagClass | string {
  switch (tag) {
    case 0:
      return TagClass.DateText;
    case 1:
      return TagClass.DateNumber;
    case 2:
    case 3:
      return TagClass.Bignum;
    case 4:
    case 5:
      return TagClass.Decimal;
    case 27:
      return TagClass.ErrorLike;
    case 258:
      return TagClass.Set;
    case 259:
      return TagClass.Map;
    case 44032:
    case 44033:
      return TagClass.Id;
    case 44034:
      return TagClass.Handle;
  }
  if (TYPED_ARRAY_TAGS.has(tag)) return TagClass.TypedArray;
  const refused = refusal(tag);
  return refused === undefined ? TagClass.Generic : `tag ${tag} (${refused}) is not accepted`;
}

/** Cost of a tag of class `tagClass` beyond {@link Cost.tag}. */
export function tagCost(tagClass: number): number {
  switch (tagClass) {
    case TagClass.DateText:
    case TagClass.DateNumber:
      return Cost.date;
    case TagClass.Bignum:
      return Cost.bignum;
    case TagClass.Decimal:
      return Cost.decimal;
    case TagClass.ErrorLike:
      return Cost.error;
    case TagClass.Set:
    case TagClass.Map:
      return Cost.collection;
    case TagClass.TypedArray:
      return Cost.typedArray;
    case TagClass.Id:
      return Cost.id;
    case TagClass.Handle:
      return Cost.handle;
    case TagClass.Generic:
      return Cost.genericTag;
    default:
      return 0;
  }
}

/**
 * What is wrong with the content of a tag of class `tagClass`, an item of major type `major`
 * with additional information `info` and argument `arg` (a length, or -1 for indefinite), or
 * undefined when nothing is. Checked where cbor-x's extension would misread other content, or pay
 * dearly for it (a bignum from a typed array, say).
 */
export function tagContentProblem(tagClass: number, major: number, info: number, arg: number): string | undefined {
  switch (tagClass) {
    case TagClass.DateText:
      return major === 3 ? undefined : "a date (tag 0) holds a text string";
    case TagClass.DateNumber:
      return (major < 2 && info < 27) || (major === 7 && info >= 25 && info <= 27) ? undefined : "a date (tag 1) holds an integer below 2^32 or a float";
    case TagClass.Bignum:
      if (major !== 2) return "a bignum (tag 2, 3) holds a byte string";
      return arg > MAX_BIGNUM_BYTES ? `a bignum of ${arg} bytes; at most ${MAX_BIGNUM_BYTES} are accepted` : undefined;
    case TagClass.Decimal:
      return major === 4 && arg === 2 ? undefined : "a decimal fraction or bigfloat (tag 4, 5) holds an array of two items";
    case TagClass.ErrorLike:
      return major === 4 && (arg === 2 || arg === 3) ? undefined : "an Error or RegExp (tag 27) holds an array of two or three text strings";
    case TagClass.Set:
      return major === 4 ? undefined : "a Set (tag 258) holds an array";
    case TagClass.Map:
      return major === 5 ? undefined : "a Map (tag 259) holds a map";
    case TagClass.TypedArray:
      return major === 2 ? undefined : "a typed array (RFC 8746 tag) holds a byte string";
    default:
      return undefined;
  }
}

/** Cost of the content (of length `arg`) of a tag of class `tagClass`, beyond the item's own. */
export function tagContentCost(tagClass: number, arg: number): number {
  if (tagClass === TagClass.Bignum) return arg;
  if (tagClass === TagClass.TypedArray) return Math.floor(arg / 8);
  return 0;
}

/**
 * Message headers: an optional map of text names to text values carried by every envelope (key
 * `headers`, docs/PROTOCOL.md section 3.3). Cross-cutting concerns (deadlines, tracing, auth)
 * travel in them, set and read by interceptors.
 */

/** Headers of a message: text names to text values. */
export type MessageHeaders = Readonly<Record<string, string>>;

/** Bounds on a headers map; a map beyond them is malformed. */
export const HeaderLimits = {
  /** Most entries in one map. */
  maxEntries: 64,
  /** Longest name, in UTF-16 code units (characters for ASCII names). */
  maxNameLength: 128,
  /** Longest value, in UTF-16 code units. */
  maxValueLength: 4096,
} as const;

/** Names starting with this prefix are reserved for this library (`academy-deadline`, ...). */
export const RESERVED_HEADER_PREFIX = "academy-";

/**
 * What is wrong with `value` as a headers map, or `undefined` when it is a valid one: a plain
 * object (a CBOR map) of at most {@link HeaderLimits.maxEntries} entries, each name non-empty
 * text of at most {@link HeaderLimits.maxNameLength}, each value text of at most
 * {@link HeaderLimits.maxValueLength}.
 */
export function headersProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return "must be a map of text to text";
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return "must be a map of text to text";
  const map = value as Record<string, unknown>;
  let entries = 0;
  for (const name in map) {
    if (++entries > HeaderLimits.maxEntries) return `must have at most ${HeaderLimits.maxEntries} entries`;
    if (name.length === 0 || name.length > HeaderLimits.maxNameLength) {
      return `names must be non-empty text of at most ${HeaderLimits.maxNameLength} characters`;
    }
    const text = map[name];
    if (typeof text !== "string") return `value of '${name}' must be text`;
    if (text.length > HeaderLimits.maxValueLength) return `value of '${name}' exceeds ${HeaderLimits.maxValueLength} characters`;
  }
  return undefined;
}

/** Whether a headers map has no entries (such a map is not sent). */
export function isEmptyHeaders(headers: MessageHeaders): boolean {
  for (const _ in headers) return false;
  return true;
}

/**
 * CBOR encoding of envelopes and values (cbor-x), with tags for ids and handles so that a handle
 * passed as an argument or result arrives usable on the other side.
 *
 * Tags (first-come-first-served range, see docs/PROTOCOL.md):
 * - 44032: agent id, content `[uid]`, `[uid, name]`, or `[uid, name or null, site]` for an id
 *   that names its site (version-1 readers ignore the third item)
 * - 44033: user id, same content
 * - 44034: handle to an agent, same content as an agent id
 */
import { Encoder, addExtension } from "cbor-x";
import { MalformedMessageError, SerializationError } from "../errors.ts";
import { AgentId, UserId } from "../identifiers.ts";
import { scanCbor } from "./cbor-guard.ts";
import { headersProblem } from "./headers.ts";
import { MessageType, fromEnvelope, toEnvelope } from "./messages.ts";
import type { Message } from "./messages.ts";

export const CborTag = { AgentId: 44032, UserId: 44033, Handle: 44034 } as const;

/** Base class of handles, so that the codec can recognise them without depending on them. */
export abstract class HandleReference {
  abstract readonly agentId: AgentId;
}

/** Turns a decoded handle tag into a handle bound to the receiving client. */
export interface HandleBinder {
  getHandle(agentId: AgentId): HandleReference;
}

type IdContent = [string] | [string, string] | [string, string | null, string];

interface IdFields {
  uid: string;
  name: string | undefined;
  site: string | undefined;
}

function idContent(id: IdFields): IdContent {
  if (id.site !== undefined) return [id.uid, id.name ?? null, id.site];
  return id.name === undefined ? [id.uid] : [id.uid, id.name];
}

function readIdContent(data: unknown): IdFields {
  if (
    !Array.isArray(data) ||
    typeof data[0] !== "string" ||
    (data[1] != null && typeof data[1] !== "string") ||
    (data[2] != null && typeof data[2] !== "string")
  ) {
    throw new MalformedMessageError("Malformed id tag content");
  }
  return { uid: data[0], name: (data[1] as string | null | undefined) ?? undefined, site: (data[2] as string | null | undefined) ?? undefined };
}

/** The client whose messages are being decoded; set only during a synchronous decode call. */
let decodeContext: HandleBinder | undefined;

/** A CBOR tag extension; `encode` writes the tag content through the `encode` callback. */
interface TagExtension<T> {
  Class: abstract new (...args: never[]) => T;
  tag: number;
  encode(value: T, encode: (content: unknown) => void): void;
  decode(content: unknown): unknown;
}

/** cbor-x's typings declare a return value its encoder ignores and reject abstract classes. */
function addTag<T>(extension: TagExtension<T>): void {
  addExtension(extension as unknown as Parameters<typeof addExtension>[0]);
}

addTag({
  Class: HandleReference,
  tag: CborTag.Handle,
  encode(handle: HandleReference, encode: (value: unknown) => void) {
    encode(idContent(handle.agentId));
  },
  decode(data: unknown) {
    const { uid, name, site } = readIdContent(data);
    const id = new AgentId(uid, name, site);
    return decodeContext === undefined ? id : decodeContext.getHandle(id);
  },
});
addTag({
  Class: AgentId,
  tag: CborTag.AgentId,
  encode(id: AgentId, encode: (value: unknown) => void) {
    encode(idContent(id));
  },
  decode(data: unknown) {
    const { uid, name, site } = readIdContent(data);
    return new AgentId(uid, name, site);
  },
});
addTag({
  Class: UserId,
  tag: CborTag.UserId,
  encode(id: UserId, encode: (value: unknown) => void) {
    encode(idContent(id));
  },
  decode(data: unknown) {
    const { uid, name, site } = readIdContent(data);
    return new UserId(uid, name, site);
  },
});

const cbor = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  // Functions inside objects are dropped rather than logged and mis-encoded (not in cbor-x's types).
  skipFunction: true,
} as ConstructorParameters<typeof Encoder>[0]);

/**
 * The same encoder without `skipFunction`, tried first. With `skipFunction`, cbor-x rebuilds every
 * plain object it writes (`Object.fromEntries` over `Object.keys(...).filter(...).map(...)`: four
 * arrays and a new object per object, whether or not it holds a function), about half of its
 * encoding time on the message path's small envelopes. Without it, a function anywhere makes
 * cbor-x throw; only then is the value encoded again with {@link cbor}, which drops function-valued
 * properties. For a value without functions both write the same bytes (own enumerable string keys,
 * in the same order). Decoding always uses {@link cbor} (the option only concerns encoding).
 */
const cborNoFunctions = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
} as ConstructorParameters<typeof Encoder>[0]);

/** Encode with {@link cborNoFunctions}, and again with {@link cbor} when that fails (a function, or a value that fails both). */
function encodeCbor(value: unknown): Uint8Array {
  try {
    return cborNoFunctions.encode(value);
  } catch {
    return cbor.encode(value);
  }
}

/**
 * Encode any value. The bytes are checked as a receiver checks them (`scanCbor`), so that a value
 * no receiver would accept fails here rather than on the other side.
 * @throws {SerializationError} when the value cannot be encoded (functions, cycles), or when
 *   receivers would refuse it (a bigint beyond 512 bits, nesting deeper than 256, too costly to
 *   decode for its size: docs/PROTOCOL.md section 4.4).
 */
export function encodeValue(value: unknown): Uint8Array {
  if (typeof value === "function") throw new SerializationError("Functions cannot be sent");
  let bytes: Uint8Array;
  try {
    bytes = encodeCbor(value);
  } catch (error) {
    throw new SerializationError(`Value cannot be encoded as CBOR: ${(error as Error).message}`, { cause: error });
  }
  try {
    scanCbor(bytes);
  } catch (error) {
    throw new SerializationError(`Receivers would refuse this value: ${(error as Error).message}`, { cause: error });
  }
  return bytes;
}

/**
 * Decode a value; handles inside it are bound to `context`. The bytes are checked first
 * (`scanCbor`, docs/PROTOCOL.md section 4.4) so that no input takes more than linear time.
 * @throws {MalformedMessageError} when the bytes are not valid CBOR, or are refused by the check.
 */
export function decodeValue(bytes: Uint8Array, context?: HandleBinder): unknown {
  scanCbor(bytes);
  const previous = decodeContext;
  decodeContext = context;
  try {
    return cbor.decode(bytes);
  } catch (error) {
    if (error instanceof MalformedMessageError) throw error;
    throw new MalformedMessageError(`Invalid CBOR: ${(error as Error).message}`, { cause: error });
  } finally {
    decodeContext = previous;
  }
}

/**
 * Encode a message as its versioned envelope.
 * @throws {SerializationError} when an argument or result cannot be encoded, or the headers are
 * not a valid headers map (`HeaderLimits`).
 */
export function encodeMessage(message: Message): Uint8Array {
  const bytes = encodeMessageOnce(message);
  // A final response without headers: its result record, encoded next in this same synchronous
  // run, is the same message (encodeRecord).
  if (message.headers === undefined && RECORDED_TYPES.has(message.type)) keepForRecord(message, bytes);
  return bytes;
}

/** The message types a result record holds (docs/PROTOCOL.md 10.10): the final responses. */
const RECORDED_TYPES: ReadonlySet<string> = new Set([MessageType.ActionResponse, MessageType.ErrorResponse, MessageType.SuccessResponse, MessageType.StreamEnd]);

/** The last final response encoded, and its bytes, until the next microtasks run (see encodeRecord). */
let keptMessage: Message | undefined;
let keptBytes: Uint8Array | undefined;
let clearScheduled = false;
const clearKept = (): void => {
  keptMessage = undefined;
  keptBytes = undefined;
  clearScheduled = false;
};

function keepForRecord(message: Message, bytes: Uint8Array): void {
  keptMessage = message;
  keptBytes = bytes;
  // Kept only until the microtasks queued so far have run: a response's record is encoded right
  // after it, in the same synchronous run (no user code in between), and nothing large stays
  // referenced after that.
  if (!clearScheduled) {
    clearScheduled = true;
    queueMicrotask(clearKept);
  }
}

/** Whether two messages have the same fields with the same values (the same objects inside). */
function sameFields(a: Message, b: Message): boolean {
  let count = 0;
  for (const key in a) {
    if ((a as unknown as Record<string, unknown>)[key] !== (b as unknown as Record<string, unknown>)[key]) return false;
    count++;
  }
  for (const _key in b) count--;
  return count === 0;
}

/**
 * Encode a result record: a final response message (PROTOCOL.md 10.10). An agent sends a response
 * and then, in the same synchronous run, records the same message built from the same body: that
 * second encoding reuses the bytes of the first (same fields, the same result object, encoded
 * moments before with no code in between that could change it) instead of encoding and checking
 * the result again. Otherwise it encodes as {@link encodeMessage} does.
 * @throws {SerializationError} as {@link encodeMessage}.
 */
export function encodeRecord(message: Message): Uint8Array {
  const kept = keptMessage;
  if (kept !== undefined && kept.tag === message.tag && sameFields(kept, message)) {
    const bytes = keptBytes!;
    keptMessage = undefined;
    keptBytes = undefined;
    return bytes;
  }
  return encodeMessageOnce(message);
}

function encodeMessageOnce(message: Message): Uint8Array {
  if (message.headers !== undefined) {
    const problem = headersProblem(message.headers);
    if (problem !== undefined) throw new SerializationError(`Message headers ${problem}`);
  }
  if (message.type === "action-request") {
    for (const arg of message.args) {
      if (typeof arg === "function") throw new SerializationError(`Action '${message.action}' got a function argument`);
    }
  }
  return encodeValue(toEnvelope(message));
}

/**
 * Decode and validate an envelope; handles inside are bound to `context`.
 * @throws {MalformedMessageError | IncompatibleProtocolError}
 */
export function decodeMessage(bytes: Uint8Array, context?: HandleBinder): Message {
  return fromEnvelope(decodeValue(bytes, context));
}

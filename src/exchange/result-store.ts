/**
 * Effectively-once execution (docs/PROTOCOL.md section 10.10): the response an agent gave to an
 * action request, recorded per (agent mailbox, request tag) for a window, so that a redelivery of
 * a request whose action completed is answered from the record instead of running again, whatever
 * crashed in between (the agent, its host, the server).
 *
 * The engine calls a {@link ResultStore}: it looks the record up before running an action and
 * records the response after the action finishes, concurrently with publishing it, before the
 * acknowledgement. Each exchange implements the store's bytes ({@link ResultBytes}: a KV bucket on
 * NATS, a table in memory in process); {@link CodecResultStore} turns responses into those bytes and
 * back, the same way for both.
 */
import { createHash } from "node:crypto";
import { InvalidConfigError, PayloadTooLargeError, SerializationError } from "../errors.ts";
import { decodeMessage, encodeMessage, encodeRecord } from "../protocol/codec.ts";
import type { HandleBinder } from "../protocol/codec.ts";
import { toFailure } from "../protocol/failure.ts";
import { MessageType, isRequest, responseMessage, responseRouting } from "../protocol/messages.ts";
import type { ActionRequest, ResponseBody, ResponseMessage } from "../protocol/messages.ts";

/**
 * How long a result is kept by default (the duplicate window), in ms: 10 minutes. Longer than the
 * mailbox stream's duplicate window (2 minutes) and than every redelivery delay the library makes
 * (a response retried after 1 s, an ack wait of 30 s, a handed-over agent), and long enough for a
 * server or its cluster leader to come back from a crash with the acknowledgements it lost; short
 * enough that the records of a busy agent stay small (at 1,000 actions a second, 600,000 records of
 * a few hundred bytes). A server down for longer than the window comes back with records expired.
 */
export const DEFAULT_RESULT_WINDOW_MS = 600_000;

/**
 * Check a `resultWindowMs` option: an integer number of ms, 0 to turn effectively-once execution
 * off.
 * @throws {InvalidConfigError} for anything else.
 */
export function checkResultWindow(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new InvalidConfigError(`resultWindowMs must be an integer number of ms, 0 to turn results off (got ${String(value)})`, {
      option: "resultWindowMs",
    });
  }
  return value;
}

/** The results of one exchange, keyed by agent mailbox and request tag. */
export interface ResultStore {
  /** How long a record is kept, in ms. */
  readonly windowMs: number;
  /**
   * The response recorded for `request` (to the agent whose mailbox is `agentUid`), if there is one
   * within the window and it answers this very request (same tag, same sender and reply address).
   * Handles inside the result are bound through `binder`.
   * @throws {ExchangeUnavailableError} when the store cannot be read: the caller cannot tell
   *   whether the request ran, and hands it back.
   */
  lookup(agentUid: string, request: ActionRequest, binder: HandleBinder): Promise<ResponseBody | undefined>;
  /**
   * Record `body` as the response to `request`, durably, before the request is acknowledged. A
   * result that cannot be encoded or stored whole is recorded as the error its caller got for it.
   * Recorded when the promise resolves (its value means nothing).
   * @throws {ExchangeUnavailableError} when the store cannot be written.
   */
  record(agentUid: string, request: ActionRequest, body: ResponseBody): Promise<unknown>;
}

/** Where an exchange keeps result records: bytes by key, each kept for `windowMs`. */
export interface ResultBytes {
  readonly windowMs: number;
  /** Largest record the store takes, in bytes. */
  readonly maxRecordBytes: number;
  /** The bytes recorded under `key`, if any (expired ones are gone). */
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Store `bytes` under `key` (replacing what was there), durably when the promise resolves (its
   * value means nothing: an implementation may resolve with its store's acknowledgement).
   */
  put(key: string, bytes: Uint8Array): Promise<unknown>;
}

/** Request tags used as they are in keys (what `newTag` makes and more); others are hashed. */
const PLAIN_TAG = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The key of a result record: `<agent uid>.<tag>`, or `<agent uid>.=<sha-256 of the tag, hex>` for a
 * tag (from a foreign caller) that is not 1-128 characters of `[A-Za-z0-9_-]`, so that every key is
 * a valid KV key of two tokens. The `=` keeps the two forms apart.
 */
export function resultKey(agentUid: string, tag: string): string {
  if (PLAIN_TAG.test(tag)) return `${agentUid}.${tag}`;
  return `${agentUid}.=${createHash("sha256").update(tag).digest("hex")}`;
}

/**
 * A final response message's body without its routing (a stream's end is the final response of a
 * streaming action; its items and progress reports are never recorded).
 */
function bodyOf(message: ResponseMessage): ResponseBody | undefined {
  switch (message.type) {
    case MessageType.ActionResponse:
      return { type: message.type, result: message.result };
    case MessageType.SuccessResponse:
      return { type: message.type };
    case MessageType.ErrorResponse:
      return { type: message.type, error: message.error };
    case MessageType.StreamEnd:
      return { type: message.type, run: message.run, count: message.count, result: message.result, error: message.error };
    case MessageType.StreamItems:
    case MessageType.ActionProgress:
      return undefined;
  }
}

/**
 * A result store over an exchange's record bytes: a record is the response message itself (the
 * versioned envelope of docs/PROTOCOL.md), whose routing says which request it answers.
 */
export class CodecResultStore implements ResultStore {
  readonly #bytes: ResultBytes;

  constructor(bytes: ResultBytes) {
    this.#bytes = bytes;
  }

  get windowMs(): number {
    return this.#bytes.windowMs;
  }

  async lookup(agentUid: string, request: ActionRequest, binder: HandleBinder): Promise<ResponseBody | undefined> {
    const bytes = await this.#bytes.get(resultKey(agentUid, request.tag));
    if (bytes === undefined) return undefined;
    let message;
    try {
      message = decodeMessage(bytes, binder);
    } catch {
      // Not a record this library wrote: no proof that the request ran.
      return undefined;
    }
    if (isRequest(message) || message.tag !== request.tag || message.src !== agentUid) return undefined;
    // The same tag from another sender (or to another reply address) is another request.
    const routing = responseRouting(request);
    if (message.dest !== routing.dest || message.replyTo !== routing.replyTo) return undefined;
    return bodyOf(message);
  }

  record(agentUid: string, request: ActionRequest, body: ResponseBody): Promise<unknown> {
    // Not async (one promise fewer per action): what it throws becomes a rejection.
    try {
      return this.#bytes.put(resultKey(agentUid, request.tag), this.#encode(agentUid, request, body));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The record's bytes: the response message, or the error its caller got when it cannot be sent. */
  #encode(agentUid: string, request: ActionRequest, body: ResponseBody): Uint8Array {
    let bytes: Uint8Array;
    try {
      // The response message itself: its bytes, when it was just sent (encodeRecord).
      bytes = encodeRecord(responseMessage(request, body, agentUid, undefined));
    } catch (error) {
      if (!(error instanceof SerializationError)) throw error;
      return encodeMessage(responseMessage(request, { type: MessageType.ErrorResponse, error: toFailure(error) }, agentUid, undefined));
    }
    if (bytes.byteLength <= this.#bytes.maxRecordBytes) return bytes;
    const tooLarge = new PayloadTooLargeError(`Response of ${bytes.byteLength} bytes exceeds the limit of ${this.#bytes.maxRecordBytes} bytes`, {
      size: bytes.byteLength,
      limit: this.#bytes.maxRecordBytes,
    });
    return encodeMessage(responseMessage(request, { type: MessageType.ErrorResponse, error: toFailure(tooLarge) }, agentUid, undefined));
  }
}

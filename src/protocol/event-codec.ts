/**
 * Payloads of events (docs/EVENTS.md): JSON (UTF-8, what foreign publishers send), CBOR (the
 * codec of the library's own messages, with its decoder guard), or raw bytes. Decoding never
 * throws anything but `MalformedMessageError`.
 */
import { MalformedMessageError, SerializationError } from "../errors.ts";
import { decodeValue, encodeValue } from "./codec.ts";

/** How an event's payload is decoded (and an agent's published data encoded). */
export const EventCodec = {
  /** UTF-8 JSON: the default, what foreign publishers send. */
  Json: "json",
  /** CBOR (as the library's own messages). */
  Cbor: "cbor",
  /** The bytes as they are (`Uint8Array`). */
  Raw: "raw",
} as const;
export type EventCodec = (typeof EventCodec)[keyof typeof EventCodec];

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * Decode an event's payload.
 * @throws {MalformedMessageError} when the bytes are not a value of the codec (invalid UTF-8 or
 *   JSON, CBOR the guard refuses or cannot decode).
 */
export function decodeEvent(codec: EventCodec, data: Uint8Array, subject?: string): unknown {
  switch (codec) {
    case EventCodec.Raw:
      return data;
    case EventCodec.Json: {
      let text: string;
      try {
        text = utf8.decode(data);
      } catch (error) {
        throw new MalformedMessageError(`Event on ${subject ?? "its subject"} is not UTF-8 text, so not JSON`, { subject, cause: error });
      }
      try {
        return JSON.parse(text) as unknown;
      } catch (error) {
        throw new MalformedMessageError(`Event on ${subject ?? "its subject"} is not valid JSON: ${(error as Error).message}`, { subject, cause: error });
      }
    }
    case EventCodec.Cbor:
      try {
        return decodeValue(data);
      } catch (error) {
        throw new MalformedMessageError(`Event on ${subject ?? "its subject"} is not valid CBOR: ${(error as Error).message}`, { subject, cause: error });
      }
    default:
      throw new MalformedMessageError(`Unknown event codec ${String(codec)}`, { subject });
  }
}

/**
 * Encode data to publish as an event.
 * @throws {SerializationError} when `data` cannot be encoded by the codec (raw needs a Uint8Array
 *   or a string; JSON a JSON-serialisable value).
 */
export function encodeEvent(codec: EventCodec, data: unknown): Uint8Array {
  switch (codec) {
    case EventCodec.Raw:
      if (data instanceof Uint8Array) return data;
      if (typeof data === "string") return utf8Encoder.encode(data);
      throw new SerializationError("The raw codec publishes a Uint8Array or a string");
    case EventCodec.Json: {
      let text: string | undefined;
      try {
        text = JSON.stringify(data);
      } catch (error) {
        throw new SerializationError(`Value cannot be encoded as JSON: ${(error as Error).message}`, { cause: error });
      }
      if (text === undefined) throw new SerializationError(`Value cannot be encoded as JSON (got ${typeof data})`);
      return utf8Encoder.encode(text);
    }
    case EventCodec.Cbor:
      return encodeValue(data);
    default:
      throw new SerializationError(`Unknown event codec ${String(codec)}`);
  }
}

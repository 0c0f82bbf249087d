/**
 * The NATS header block of a message-path publish (`Nats-Msg-Id`, `Academy-Src`, and on a retry
 * `Academy-Resent`), without nats.js's headers map.
 *
 * `nc.publish()` of nats.js 3.4 reads one thing from its `headers` option: `encode()`, the block's
 * bytes (protocol.js `publish`). nats.js's `MsgHdrsImpl` keeps a map of arrays, checks and
 * canonicalises every name on each `set` (an array and a string per name) and builds the block as
 * a string on `encode()`. Every mailbox message, response and result record paid for one; this
 * holds the fields as a string and encodes it once. The bytes are the same as `MsgHdrsImpl`'s for
 * the same fields in the same order (a unit test compares them), values are checked and trimmed
 * as nats.js does, and anything that wants a full headers map (a relay forwarding a stored
 * message) still passes one: the publisher takes either.
 */
import { InvalidArgumentError } from "@nats-io/nats-core";
import type { MsgHdrs } from "@nats-io/nats-core";

/**
 * The headers of a message-path publish: nats.js's map (a relay forwarding a stored message's
 * headers) or a {@link HeaderBlock}. Both have `set` (a retry adds the re-publication mark).
 */
export type PublishHeaders = MsgHdrs | HeaderBlock;

const LINE_BREAK = /[\r\n]/;
const EMPTY = new Uint8Array(0);

/**
 * A header block of a few fields whose names are this library's own constants (valid header
 * names: not checked again). Values are checked for line breaks and trimmed, as `MsgHdrsImpl` does.
 */
export class HeaderBlock {
  /** Field names and values, alternating. */
  readonly #fields: string[] = [];
  #bytes: Uint8Array | undefined;

  /**
   * Set `name` to `value`, replacing a field of that exact name.
   * @throws {InvalidArgumentError} if `value` holds a line break (as nats.js's headers do).
   */
  set(name: string, value: string): void {
    if (LINE_BREAK.test(value)) throw InvalidArgumentError.format("header", "values cannot contain \\r or \\n");
    const trimmed = value.trim();
    const fields = this.#fields;
    this.#bytes = undefined;
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] === name) {
        fields[i + 1] = trimmed;
        return;
      }
    }
    fields.push(name, trimmed);
  }

  /** The header block as nats.js writes it after `HPUB` (empty: no fields). */
  encode(): Uint8Array {
    if (this.#bytes !== undefined) return this.#bytes;
    const fields = this.#fields;
    if (fields.length === 0) return (this.#bytes = EMPTY);
    let block = "NATS/1.0";
    for (let i = 0; i < fields.length; i += 2) block += `\r\n${fields[i]!}: ${fields[i + 1]!}`;
    // Buffer.from: the same UTF-8 bytes as nats.js's TextEncoder, about a third of its cost on Node 20.
    return (this.#bytes = Buffer.from(`${block}\r\n\r\n`, "utf8"));
  }
}

import { describe, expect, test } from "vitest";
import { InvalidArgumentError, headers as natsHeaders } from "@nats-io/nats-core";
import { HeaderBlock } from "../../src/exchange/nats/header-block.ts";

/** nats.js's own encoding of the same fields, in the same order. */
function natsEncoded(fields: ReadonlyArray<readonly [string, string]>): Uint8Array {
  const h = natsHeaders();
  for (const [name, value] of fields) h.set(name, value);
  return (h as unknown as { encode(): Uint8Array }).encode();
}

/** The bytes, whatever the array type (a Buffer or a Uint8Array). */
const bytesOf = (b: Uint8Array): number[] => [...b];

function block(fields: ReadonlyArray<readonly [string, string]>): HeaderBlock {
  const b = new HeaderBlock();
  for (const [name, value] of fields) b.set(name, value);
  return b;
}

describe("HeaderBlock", () => {
  test.each([
    [[]],
    [[["Nats-Msg-Id", "r:8Hq3YtV1kZ"]]],
    [[["Nats-Msg-Id", "tag-1"], ["Academy-Src", "u_abc"]]],
    [[["Nats-Msg-Id", "tag-1"], ["Academy-Src", "u_abc"], ["Academy-Resent", "1"]]],
    [[["Nats-Msg-Id", "  padded "], ["Academy-Src", "ünïcode"]]],
  ] as Array<[Array<[string, string]>]>)("encodes the bytes nats.js's headers encode for %j", (fields) => {
    expect(bytesOf(block(fields).encode())).toEqual(bytesOf(natsEncoded(fields)));
  });

  test("set replaces a field of the same name in place, and encode() follows it", () => {
    const b = block([["Nats-Msg-Id", "a"], ["Academy-Src", "u"]]);
    const before = b.encode();
    expect(new TextDecoder().decode(before)).toBe("NATS/1.0\r\nNats-Msg-Id: a\r\nAcademy-Src: u\r\n\r\n");
    b.set("Nats-Msg-Id", "b");
    b.set("Academy-Resent", "1");
    expect(bytesOf(b.encode())).toEqual(bytesOf(natsEncoded([["Nats-Msg-Id", "b"], ["Academy-Src", "u"], ["Academy-Resent", "1"]])));
  });

  test("a value with a line break is refused as nats.js refuses it", () => {
    expect(() => block([["Nats-Msg-Id", "a\r\nX-Injected: 1"]])).toThrow(InvalidArgumentError);
    expect(() => natsEncoded([["Nats-Msg-Id", "a\nb"]])).toThrow(InvalidArgumentError);
    expect(() => block([["Nats-Msg-Id", "a\nb"]])).toThrow(InvalidArgumentError);
  });
});

import { Encoder } from "cbor-x";
import { describe, expect, test } from "vitest";
import { AgentId, IncompatibleProtocolError, MalformedMessageError, SerializationError, UserId } from "../../src/index.ts";
import { HandleReference, decodeMessage, decodeValue, encodeMessage, encodeRecord, encodeValue } from "../../src/protocol/codec.ts";
import { HeaderLimits } from "../../src/protocol/headers.ts";
import { PROTOCOL_VERSION, fromEnvelope, isValidReplySubject, requestMessage, responseMessage, toEnvelope } from "../../src/protocol/messages.ts";
import type { Message } from "../../src/protocol/messages.ts";

const request: Message = { type: "action-request", tag: "t1", dest: "a1", src: "u1", action: "increment", args: [2] };

describe("envelope", () => {
  test("every message type round-trips through CBOR", () => {
    const messages: Message[] = [
      request,
      { type: "ping-request", tag: "t2", dest: "a1", src: "u1" },
      { type: "cancel-request", tag: "t3", dest: "a1", src: "u1", target: "t1" },
      { type: "shutdown-request", tag: "t4", dest: "a1", src: "u1", terminate: false },
      { type: "action-response", tag: "t1", dest: "u1", src: "a1", result: { n: 2 } },
      { type: "success-response", tag: "t2", dest: "u1", src: "a1" },
      { type: "error-response", tag: "t3", dest: "", src: "a1", replyTo: "_INBOX.x", error: { type: "Error", message: "m" } },
    ];
    for (const message of messages) {
      const decoded = decodeMessage(encodeMessage(message));
      expect(decoded).toMatchObject(Object.fromEntries(Object.entries(message).filter(([, v]) => v !== undefined)));
    }
    expect(toEnvelope(request)).toEqual({ v: PROTOCOL_VERSION, ...request });
  });

  test("invalid envelopes are MalformedMessageError; other versions IncompatibleProtocolError", () => {
    expect(() => fromEnvelope([1, 2])).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 1, type: "action-request", tag: "t", dest: "d" })).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 1, type: "action-request", tag: "t", action: "a" })).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 1, type: "action-request", tag: "t", dest: "d", action: "a", args: "x" })).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 1, type: "shutdown-request", tag: "t", dest: "d", terminate: "yes" })).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 1, type: "error-response", tag: "t", error: { nope: 1 } })).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 1, type: "warp", tag: "t", dest: "d" })).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 2, type: "ping-request", tag: "t", dest: "d" })).toThrow(IncompatibleProtocolError);
    expect(() => decodeMessage(new Uint8Array([0xff, 0xfe]))).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ type: "ping-request", tag: "t", dest: "d" })).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 1, type: "ping-request", tag: "t", dest: "d", src: "" })).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 1, type: "ping-request", tag: "t", dest: "d", replyTo: "" })).toThrow(MalformedMessageError);
    expect(() => fromEnvelope({ v: 1, type: "ping-request", tag: "t", dest: "d", replyTo: "a.>" })).toThrow(MalformedMessageError);
  });

  test("reply subjects must be literal and outside $ namespaces", () => {
    for (const ok of ["_INBOX.abc.123", "replies", "a-b.c_d"]) expect(isValidReplySubject(ok)).toBe(true);
    for (const bad of ["", "a.*", "a.>", "$JS.API.STREAM.DELETE.x", "$SYS.x", "a..b", ".a", "a b"]) {
      expect(isValidReplySubject(bad)).toBe(false);
    }
  });
});

describe("message headers", () => {
  const headers = { "academy-deadline": "1700000000000", "x-trace": "abc" };

  test("every message type carries headers through CBOR; without them the key is absent", () => {
    const messages: Message[] = [
      { ...request, headers },
      { type: "ping-request", tag: "t2", dest: "a1", headers },
      { type: "cancel-request", tag: "t3", dest: "a1", src: "u1", target: "t1", headers },
      { type: "shutdown-request", tag: "t4", dest: "a1", src: "u1", headers },
      { type: "action-response", tag: "t1", dest: "u1", src: "a1", result: 1, headers },
      { type: "success-response", tag: "t2", dest: "u1", src: "a1", headers },
      { type: "error-response", tag: "t3", dest: "u1", src: "a1", error: { type: "Error", message: "m" }, headers },
    ];
    for (const message of messages) {
      expect(decodeMessage(encodeMessage(message)).headers).toEqual(headers);
      expect(toEnvelope(message).headers).toEqual(headers);
    }
    expect("headers" in toEnvelope(request)).toBe(false);
    expect(decodeMessage(encodeMessage(request)).headers).toBeUndefined();
    const nullHeaders = { v: 1, type: "ping-request", tag: "t", dest: "d", headers: null };
    expect(fromEnvelope(nullHeaders).headers).toBeUndefined();
  });

  test("invalid header maps are MalformedMessageError on decode and SerializationError on encode", () => {
    const many = Object.fromEntries(Array.from({ length: HeaderLimits.maxEntries + 1 }, (_, i) => [`h${i}`, "v"]));
    const bad: unknown[] = [
      "text",
      ["a", "b"],
      new Map([["a", "b"]]),
      { a: 1 },
      { a: null },
      { "": "empty name" },
      { ["n".repeat(HeaderLimits.maxNameLength + 1)]: "v" },
      { a: "v".repeat(HeaderLimits.maxValueLength + 1) },
      many,
    ];
    for (const value of bad) {
      expect(() => fromEnvelope({ v: 1, type: "ping-request", tag: "t", dest: "d", headers: value })).toThrow(MalformedMessageError);
      expect(() => encodeMessage({ ...request, headers: value } as Message)).toThrow(SerializationError);
    }
    const atLimits = Object.fromEntries(
      Array.from({ length: HeaderLimits.maxEntries }, (_, i) => [`${i}`.padEnd(HeaderLimits.maxNameLength, "n"), "v".repeat(HeaderLimits.maxValueLength)]),
    );
    expect(decodeMessage(encodeMessage({ ...request, headers: atLimits })).headers).toEqual(atLimits);
    // CBOR maps decode without a prototype to pollute; foreign bytes with a header map decode alike.
    expect(decodeMessage(encodeValue({ v: 1, type: "ping-request", tag: "t", dest: "d", headers: { a: "b" } })).headers).toEqual({ a: "b" });
  });

  test("a response never copies its request's headers", () => {
    const withHeaders = requestMessage({ type: "action-request", action: "a", args: [] }, "t9", "a1", "u1", undefined, headers);
    expect(withHeaders.headers).toEqual(headers);
    const response = responseMessage(withHeaders, { type: "action-response", result: 1 }, "a1", undefined);
    expect(response).toEqual({ type: "action-response", tag: "t9", dest: "u1", src: "a1", replyTo: undefined, headers: undefined, result: 1 });
    const own = responseMessage(withHeaders, { type: "success-response" }, "a1", { "x-own": "1" });
    expect(decodeMessage(encodeMessage(own)).headers).toEqual({ "x-own": "1" });
  });
});

describe("srcRole", () => {
  test("a request states its sender's role; absent, null and the two roles read back; anything else is malformed", () => {
    const fromAgent = requestMessage({ type: "ping-request" }, "t1", "a1", "a2", undefined, undefined, undefined, "agent");
    expect(decodeValue(encodeMessage(fromAgent))).toMatchObject({ src: "a2", srcRole: "agent" });
    expect(decodeMessage(encodeMessage(fromAgent)).srcRole).toBe("agent");
    const unstated = requestMessage({ type: "ping-request" }, "t1", "a1", "u1", undefined, undefined);
    expect("srcRole" in (decodeValue(encodeMessage(unstated)) as object)).toBe(false);
    expect(decodeMessage(encodeValue({ v: 1, type: "ping-request", tag: "t", dest: "d", src: "u", srcRole: "user" })).srcRole).toBe("user");
    expect(decodeMessage(encodeValue({ v: 1, type: "ping-request", tag: "t", dest: "d", srcRole: null })).srcRole).toBeUndefined();
    expect(() => decodeMessage(encodeValue({ v: 1, type: "ping-request", tag: "t", dest: "d", srcRole: "robot" }))).toThrow(MalformedMessageError);
  });
});

describe("codec", () => {
  test("ids keep their class; handles decode to ids without a context and to handles with one", () => {
    const agent = new AgentId("a-uid", "alice");
    const user = new UserId("u-uid");
    const decoded = decodeValue(encodeValue({ agent, user })) as { agent: AgentId; user: UserId };
    expect(decoded.agent).toBeInstanceOf(AgentId);
    expect([decoded.agent.uid, decoded.agent.name]).toEqual(["a-uid", "alice"]);
    expect(decoded.user).toBeInstanceOf(UserId);

    class FakeHandle extends HandleReference {
      constructor(readonly agentId: AgentId) {
        super();
      }
    }
    const bytes = encodeValue([new FakeHandle(agent)]);
    expect((decodeValue(bytes) as unknown[])[0]).toBeInstanceOf(AgentId);
    const bound = decodeValue(bytes, { getHandle: (id) => new FakeHandle(id) }) as FakeHandle[];
    expect(bound[0]).toBeInstanceOf(FakeHandle);
    expect(bound[0]!.agentId.uid).toBe("a-uid");
  });

  test("functions and cycles are SerializationErrors; Maps, Sets, Dates and bytes survive", () => {
    expect(() => encodeValue(() => 1)).toThrow(SerializationError);
    expect(() => encodeMessage({ ...request, args: [() => 1] } as Message)).toThrow(SerializationError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodeValue(cyclic)).toThrow(SerializationError);
    const value = { map: new Map([["k", 1]]), set: new Set([1, 2]), date: new Date(5), bytes: new Uint8Array([1, 2]) };
    const decoded = decodeValue(encodeValue(value)) as typeof value;
    expect(decoded.map).toEqual(new Map([["k", 1]]));
    expect(decoded.set).toEqual(new Set([1, 2]));
    expect(decoded.date).toEqual(new Date(5));
    expect([...decoded.bytes]).toEqual([1, 2]);
  });

  test("function-valued properties are dropped; without functions the bytes are cbor-x's with skipFunction", () => {
    // The codec's configuration, with skipFunction on every encode (what it did before it tried
    // the encoder without the option first).
    const reference = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, skipFunction: true } as ConstructorParameters<typeof Encoder>[0]);
    const plain = {
      type: "action-request",
      tag: "t1",
      args: [new Uint8Array([7, 7]), { nested: { deep: [1, "two", null, undefined] } }, new AgentId("a-uid", "n")],
      headers: { "academy-deadline": "1767225601000" },
      n: 2 ** 40,
      big: 12n,
      m: new Map([["k", { v: 1 }]]),
    };
    expect([...encodeValue(plain)]).toEqual([...reference.encode(plain)]);
    const withMethods = { keep: 1, drop: () => 2, inner: { also: function named() {}, stays: "x" }, list: [{ f: () => 3, g: 4 }] };
    expect([...encodeValue(withMethods)]).toEqual([...reference.encode(withMethods)]);
    expect(decodeValue(encodeValue(withMethods))).toEqual({ keep: 1, inner: { stays: "x" }, list: [{ g: 4 }] });
    // A function that is not a property value is still refused, whichever encoder tried it.
    expect(() => encodeValue({ list: [() => 1] })).toThrow(SerializationError);
    expect(() => encodeValue([1, () => 1])).toThrow(SerializationError);
  });

  test("a __proto__ key in foreign CBOR cannot pollute prototypes", () => {
    const hostile = encodeValue(JSON.parse('{"__proto__": {"polluted": true}}'));
    const decoded = decodeValue(hostile) as Record<string, unknown>;
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
  });
});

describe("result records share their response's bytes", () => {
  const request = requestMessage({ type: "action-request", action: "work", args: [1] }, "t-9", "agent-1", "user-1", undefined, undefined);
  const body = { type: "action-response", result: { total: 3, items: [1, 2] } } as const;

  test("a record encoded right after its response, in the same run, reuses the response's bytes", () => {
    const sent = encodeMessage(responseMessage(request, body, "agent-1", undefined));
    const recorded = encodeRecord(responseMessage(request, body, "agent-1", undefined));
    expect(recorded).toBe(sent);
    // Once: a second record of it is encoded again (the same bytes, a new buffer).
    const again = encodeRecord(responseMessage(request, body, "agent-1", undefined));
    expect(again).not.toBe(sent);
    expect(again).toEqual(sent);
  });

  test("anything else is encoded anew: another result object, other routing, headers, or a later run", async () => {
    const sent = encodeMessage(responseMessage(request, body, "agent-1", undefined));
    const copy = { type: "action-response", result: { total: 3, items: [1, 2] } } as const;
    expect(encodeRecord(responseMessage(request, copy, "agent-1", undefined))).not.toBe(sent);

    encodeMessage(responseMessage(request, body, "agent-1", undefined));
    const elsewhere = encodeRecord({ ...responseMessage(request, body, "agent-1", undefined), srcSite: "other" });
    expect(decodeMessage(elsewhere).srcSite).toBe("other");

    const withHeaders = encodeMessage(responseMessage(request, body, "agent-1", { trace: "x" }));
    expect(encodeRecord(responseMessage(request, body, "agent-1", { trace: "x" }))).not.toBe(withHeaders);

    // A result changed after the run in which the response was encoded is recorded as it is now.
    const mutable = { type: "action-response", result: { n: 1 } } as { type: "action-response"; result: { n: number } };
    encodeMessage(responseMessage(request, mutable, "agent-1", undefined));
    await Promise.resolve();
    mutable.result.n = 2;
    const later = decodeMessage(encodeRecord(responseMessage(request, mutable, "agent-1", undefined)));
    expect(later.type === "action-response" && later.result).toEqual({ n: 2 });
  });
});

import { describe, expect, test } from "vitest";
import { Agent, AgentDefinitionError, MalformedMessageError, SerializationError, defineAgent, keyedAgentId, subscribe } from "../../src/index.ts";
import { agentSpec } from "../../src/agent/decorators.ts";
import { eventKey, keyedByField, keyedSubject, payloadKey, resolveSubscription } from "../../src/agent/subscriptions.ts";
import { decodeEvent, encodeEvent } from "../../src/protocol/event-codec.ts";
import { subjectMatches } from "../../src/exchange/local/local-events.ts";
import { parseJsonCall } from "../../src/exchange/nats/nats-json-service.ts";
import { encodeValue } from "../../src/protocol/codec.ts";

describe("@subscribe", () => {
  test("records the subscription with its options completed", () => {
    class Orders extends Agent {
      @subscribe("orders.>", { stream: "ORDERS", group: "shared" })
      async onOrder() {}
    }
    const [spec] = agentSpec(Orders).subscriptions;
    expect(spec).toMatchObject({
      name: "onOrder",
      subscription: { subject: "orders.>", stream: "ORDERS", group: "shared", codec: "json", start: "new", maxDeliveries: 5, backoffMs: 100, prefetch: 64 },
    });
    expect(agentSpec(Orders).loops).toHaveLength(0);
  });

  test("rejects bad subjects and options when the class is defined", () => {
    const bad: Array<[string, Record<string, unknown>]> = [
      ["", {}],
      ["a..b", {}],
      ["a.>.b", {}],
      ["a b", {}],
      ["a", { stream: "no.dots" }],
      ["a", { group: "some" }],
      ["a", { stream: "S", queue: "q" }],
      ["a", { codec: "xml" }],
      ["a", { maxDeliveries: 0 }],
      ["a", { backoffMs: 1.5 }],
      ["a", { start: "latest" }],
      ["a", { start: { sequence: 0 } }],
      ["a", { start: { time: new Date(Number.NaN) } }],
      ["a.*", { key: { token: 1 } }],
      ["a.*", { stream: "S", key: { token: 0 } }],
      ["a.*", { stream: "S", key: { token: 1 }, group: "shared" }],
      ["a.*", { stream: "S", key: { token: 1 }, pool: "no pool" }],
    ];
    for (const [subject, options] of bad) expect(() => resolveSubscription(subject, options as never, "h"), `${subject} ${JSON.stringify(options)}`).toThrow(AgentDefinitionError);
    expect(() => {
      class NotAsync extends Agent {
        // @ts-expect-error: not async
        @subscribe("a") onA() {}
      }
      return NotAsync;
    }).toThrow(AgentDefinitionError);
  });

  test("defineAgent declares subscriptions without decorators, checked the same way", () => {
    class Plain extends Agent {
      async onTick() {}
    }
    defineAgent(Plain, { subscriptions: { onTick: { subject: "ticks.>", stream: "TICKS", group: "shared" } } });
    expect(agentSpec(Plain).subscriptions[0]).toMatchObject({ name: "onTick", subscription: { subject: "ticks.>", stream: "TICKS", group: "shared" } });
    class Bad extends Agent {
      async onTick() {}
    }
    expect(() => defineAgent(Bad, { subscriptions: { onTick: { subject: "a..b" } } })).toThrow(AgentDefinitionError);
    expect(() => defineAgent(Bad, { subscriptions: { missing: { subject: "a" } } })).toThrow(AgentDefinitionError);
  });

  test("keyed subscriptions: subject of a key, key of a subject, start all by default", () => {
    const sub = resolveSubscription("sensors.*.readings", { stream: "S", key: { token: 1 } }, "h");
    expect(sub.start).toBe("all");
    expect(keyedSubject(sub, "s7")).toBe("sensors.s7.readings");
    expect(eventKey(sub, "sensors.s7.readings")).toBe("s7");
  });

  test("keyed by a payload field: text or numbers that are subject tokens; json or cbor payloads", () => {
    const sub = resolveSubscription("payments.>", { stream: "P", key: { field: "account" } }, "h");
    expect(keyedByField(sub)).toBe(true);
    expect(payloadKey({ account: "a1" }, "account")).toBe("a1");
    expect(payloadKey({ account: 42 }, "account")).toBe("42");
    for (const payload of [{}, { account: "a.b" }, { account: "" }, { account: null }, { account: Number.NaN }, [1], "a1", null]) {
      expect(payloadKey(payload, "account"), JSON.stringify(payload)).toBeUndefined();
    }
    expect(() => resolveSubscription("p.>", { stream: "P", key: { field: "a" }, codec: "raw" }, "h")).toThrow(AgentDefinitionError);
    expect(() => resolveSubscription("p.>", { stream: "P", key: { field: "" } }, "h")).toThrow(AgentDefinitionError);
  });

  test("keyed agent ids are the same wherever they are computed, and differ by type and key", () => {
    const a = keyedAgentId("Sensor", "s1");
    expect(a.uid).toBe(keyedAgentId("Sensor", "s1").uid);
    expect(a.name).toBe("s1");
    expect(a.uid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(keyedAgentId("Sensor", "s2").uid).not.toBe(a.uid);
    expect(keyedAgentId("Meter", "s1").uid).not.toBe(a.uid);
    for (const key of ["", "a.b", "*", ">", "a b"]) expect(() => keyedAgentId("Sensor", key)).toThrow(AgentDefinitionError);
  });
});

describe("event codecs", () => {
  test("JSON, CBOR and raw round trips", () => {
    expect(decodeEvent("json", encodeEvent("json", { a: [1, "x"] }))).toEqual({ a: [1, "x"] });
    expect(decodeEvent("cbor", encodeEvent("cbor", { a: 1n }))).toEqual({ a: 1n });
    expect(decodeEvent("raw", encodeEvent("raw", "hi"))).toEqual(new TextEncoder().encode("hi"));
  });

  test("undecodable payloads are MalformedMessageError; unencodable data SerializationError", () => {
    expect(() => decodeEvent("json", new Uint8Array([0xff]))).toThrow(MalformedMessageError);
    expect(() => decodeEvent("json", new TextEncoder().encode("{"))).toThrow(MalformedMessageError);
    expect(() => decodeEvent("json", encodeValue({ a: 1 }))).toThrow(MalformedMessageError);
    expect(() => decodeEvent("cbor", new Uint8Array([0x9f, 0x9f]))).toThrow(MalformedMessageError);
    expect(() => encodeEvent("json", { big: 1n })).toThrow(SerializationError);
    expect(() => encodeEvent("json", undefined)).toThrow(SerializationError);
    expect(() => encodeEvent("raw", 5)).toThrow(SerializationError);
  });
});

test("subject matching of the in-process events follows NATS", () => {
  expect(subjectMatches("a.*.c", "a.b.c")).toBe(true);
  expect(subjectMatches("a.*.c", "a.b.d")).toBe(false);
  expect(subjectMatches("a.>", "a.b.c")).toBe(true);
  expect(subjectMatches("a.>", "a")).toBe(false);
  expect(subjectMatches("a.b", "a.b.c")).toBe(false);
  expect(subjectMatches("a.b.c", "a.b")).toBe(false);
});

test("JSON call bodies", () => {
  const text = (s: string) => new TextEncoder().encode(s);
  expect(parseJsonCall(text('{"action":"inc","args":[1],"timeoutMs":5}'))).toEqual({ action: "inc", args: [1], timeoutMs: 5 });
  expect(parseJsonCall(text('{"action":"get"}'))).toEqual({ action: "get", args: [], timeoutMs: undefined });
  for (const body of ["", "null", "[]", '{"action":""}', '{"action":1}', '{"action":"a","args":{}}', '{"action":"a","timeoutMs":"5"}']) {
    expect(() => parseJsonCall(text(body)), body).toThrow(MalformedMessageError);
  }
});

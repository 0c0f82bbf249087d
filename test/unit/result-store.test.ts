import { afterEach, describe, expect, test, vi } from "vitest";
import { Agent, AgentDefinitionError, AgentId, ErrorCode, InvalidConfigError, LocalExchangeFactory, MessageType, NatsExchangeFactory, action } from "../../src/index.ts";
import { LocalResultTable, tableResultBytes } from "../../src/exchange/local/local-results.ts";
import { CodecResultStore, DEFAULT_RESULT_WINDOW_MS, checkResultWindow, resultKey } from "../../src/exchange/result-store.ts";
import type { HandleBinder } from "../../src/protocol/codec.ts";
import { newTag } from "../../src/identifiers.ts";
import type { ActionRequest } from "../../src/protocol/messages.ts";

const binder: HandleBinder = { getHandle: (agentId) => ({ agentId }) };

function request(overrides: Partial<ActionRequest> = {}): ActionRequest {
  return { type: MessageType.ActionRequest, tag: "t-1", dest: "agent1", src: "user1", action: "work", args: [1], ...overrides };
}

function store(windowMs = 60_000, maxRecordBytes = 1024 * 1024): { table: LocalResultTable; results: CodecResultStore } {
  const table = new LocalResultTable(windowMs, maxRecordBytes);
  return { table, results: new CodecResultStore(tableResultBytes(table)) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("result keys", () => {
  test("a plain tag is used as it is; any other tag is hashed into one token", () => {
    expect(resultKey("agent1", "0f8e-4c1a_b")).toBe("agent1.0f8e-4c1a_b");
    const odd = resultKey("agent1", "a.b c*>");
    expect(odd).toMatch(/^agent1\.=[0-9a-f]{64}$/);
    expect(resultKey("agent1", "a.b c*>")).toBe(odd);
    expect(resultKey("agent1", "a.b c*?")).not.toBe(odd);
    expect(resultKey("agent1", "x".repeat(129))).toMatch(/^agent1\.=[0-9a-f]{64}$/);
    for (const key of [odd, resultKey("a", ""), resultKey("a", "é")]) expect(key).toMatch(/^[-/=.\w]+$/);
  });

  test("the library's own tags: 22 characters of base64url, distinct across refills of their entropy, used in keys as they are", () => {
    const tags = new Set<string>();
    // 256 tags per refill of the random bytes: several refills.
    for (let i = 0; i < 2000; i++) {
      const tag = newTag();
      expect(tag).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(resultKey("agent1", tag)).toBe(`agent1.${tag}`);
      tags.add(tag);
    }
    expect(tags.size).toBe(2000);
  });
});

describe("result records", () => {
  test("a recorded response answers the same request, handles and errors included", async () => {
    const { results } = store();
    const handleTarget = new AgentId("other", "named");
    await results.record("agent1", request(), { type: MessageType.ActionResponse, result: { n: 2, id: handleTarget } });
    const body = await results.lookup("agent1", request(), binder);
    expect(body?.type).toBe(MessageType.ActionResponse);
    expect((body as { result: { n: number; id: AgentId } }).result.n).toBe(2);
    expect((body as { result: { id: AgentId } }).result.id.uid).toBe("other");
    await results.record("agent1", request({ tag: "t-2" }), { type: MessageType.ErrorResponse, error: { type: "RangeError", message: "no" } });
    expect(await results.lookup("agent1", request({ tag: "t-2" }), binder)).toMatchObject({ type: MessageType.ErrorResponse, error: { type: "RangeError", message: "no" } });
  });

  test("nothing for another agent, another tag, another sender or another reply address", async () => {
    const { results } = store();
    await results.record("agent1", request(), { type: MessageType.ActionResponse, result: 1 });
    expect(await results.lookup("agent2", request({ dest: "agent2" }), binder)).toBeUndefined();
    expect(await results.lookup("agent1", request({ tag: "t-9" }), binder)).toBeUndefined();
    expect(await results.lookup("agent1", request({ src: "user2" }), binder)).toBeUndefined();
    expect(await results.lookup("agent1", request({ replyTo: "_INBOX.x" }), binder)).toBeUndefined();
    await results.record("agent1", request({ tag: "t-3", replyTo: "_INBOX.a" }), { type: MessageType.ActionResponse, result: 3 });
    expect(await results.lookup("agent1", request({ tag: "t-3", replyTo: "_INBOX.b" }), binder)).toBeUndefined();
    expect(await results.lookup("agent1", request({ tag: "t-3", replyTo: "_INBOX.a" }), binder)).toMatchObject({ result: 3 });
  });

  test("bytes that are not a record (garbage in the bucket) prove nothing: no answer, no error", async () => {
    const { table, results } = store();
    table.put(resultKey("agent1", "t-1"), new Uint8Array([0xff, 0x00, 0x13]));
    expect(await results.lookup("agent1", request(), binder)).toBeUndefined();
    table.put(resultKey("agent1", "t-1"), new Uint8Array(0));
    expect(await results.lookup("agent1", request(), binder)).toBeUndefined();
  });

  test("a result too large to record, or not encodable, is recorded as the error its caller got", async () => {
    const { results } = store(60_000, 512);
    await results.record("agent1", request(), { type: MessageType.ActionResponse, result: "x".repeat(600) });
    expect(await results.lookup("agent1", request(), binder)).toMatchObject({ type: MessageType.ErrorResponse, error: { code: ErrorCode.PayloadTooLarge } });
    await results.record("agent1", request({ tag: "t-2" }), { type: MessageType.ActionResponse, result: 10n ** 200n });
    expect(await results.lookup("agent1", request({ tag: "t-2" }), binder)).toMatchObject({ type: MessageType.ErrorResponse, error: { code: ErrorCode.Serialization } });
  });

  test("records expire after the window and are dropped as new ones come in", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { table, results } = store(1000);
    await results.record("agent1", request(), { type: MessageType.ActionResponse, result: 1 });
    vi.setSystemTime(1_000_999);
    expect(await results.lookup("agent1", request(), binder)).toMatchObject({ result: 1 });
    await results.record("agent1", request({ tag: "t-2" }), { type: MessageType.ActionResponse, result: 2 });
    vi.setSystemTime(1_001_000);
    expect(await results.lookup("agent1", request(), binder)).toBeUndefined();
    expect(table.size).toBe(1);
    vi.setSystemTime(1_002_000);
    await results.record("agent1", request({ tag: "t-3" }), { type: MessageType.ActionResponse, result: 3 });
    expect(table.size).toBe(1);
  });
});

describe("configuration", () => {
  test("the window: 10 minutes by default, 0 turns results off, anything but an integer >= 0 is refused", async () => {
    expect(DEFAULT_RESULT_WINDOW_MS).toBe(600_000);
    expect((await new LocalExchangeFactory().resultStore())?.windowMs).toBe(600_000);
    expect(await new LocalExchangeFactory({ resultWindowMs: 0 }).resultStore()).toBeUndefined();
    expect(new NatsExchangeFactory({ resultWindowMs: 0 }).settings.resultWindowMs).toBe(0);
    expect(new NatsExchangeFactory().settings.resultWindowMs).toBe(600_000);
    for (const bad of [-1, 1.5, "60", Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => checkResultWindow(bad)).toThrow(InvalidConfigError);
      expect(() => new LocalExchangeFactory({ resultWindowMs: bad as number })).toThrow(InvalidConfigError);
      expect(() => new NatsExchangeFactory({ resultWindowMs: bad as number })).toThrow(InvalidConfigError);
    }
  });

  test("once must be a boolean", () => {
    expect(() => {
      class Bad extends Agent {
        @action({ once: "no" as unknown as boolean })
        async work(): Promise<void> {}
      }
      return Bad;
    }).toThrow(AgentDefinitionError);
  });
});

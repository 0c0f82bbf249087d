import { describe, expect, test } from "vitest";
import { AgentId, InvalidConfigError, LocalExchangeFactory, NatsExchangeFactory, deadlineInterceptors } from "../../src/index.ts";
import { PortExchangeFactory } from "../../src/exchange/local/local-exchange-port.ts";
import type { LocalPortDescriptorData } from "../../src/exchange/local/local-exchange-port.ts";
import type { AgentInterceptor, CallerInterceptor } from "../../src/index.ts";
import { PendingRequests } from "../../src/exchange/pending-requests.ts";
import type { ResponseSink } from "../../src/exchange/pending-requests.ts";
import { composeInterceptors, resolveInterceptors } from "../../src/interceptors/interceptors.ts";
import { tracingInterceptors } from "../../src/interceptors/tracing.ts";
import type { RequestMessage, ResponseMessage } from "../../src/protocol/messages.ts";

describe("composeInterceptors", () => {
  test("no hook of that name: no chain (the caller calls the terminal directly)", () => {
    const interceptors: AgentInterceptor[] = [{}, { inboundRequest: (input, next) => next(input) }];
    expect(composeInterceptors(interceptors, "action", async () => 1)).toBeUndefined();
    expect(composeInterceptors([] as AgentInterceptor[], "action", async () => 1)).toBeUndefined();
  });

  test("the first interceptor is the outermost; hooks keep their `this`; input changes reach the terminal", async () => {
    const order: string[] = [];
    class Tagger implements CallerInterceptor {
      constructor(readonly name: string) {}
      async outboundRequest(input: Parameters<NonNullable<CallerInterceptor["outboundRequest"]>>[0], next: (i: typeof input) => Promise<ResponseMessage>) {
        order.push(`${this.name} in`);
        input.headers[this.name] = "1";
        const response = await next({ ...input, timeoutMs: (input.timeoutMs ?? 0) + 1 });
        order.push(`${this.name} out`);
        return response;
      }
    }
    const response: ResponseMessage = { type: "success-response", tag: "t", dest: "" };
    let reached: { headers: Record<string, string>; timeoutMs: number | undefined } | undefined;
    const chain = composeInterceptors([new Tagger("a"), {}, new Tagger("b")] as CallerInterceptor[], "outboundRequest", async (input) => {
      order.push("terminal");
      reached = { headers: input.headers, timeoutMs: input.timeoutMs };
      return response;
    })!;
    const input = { agentId: AgentId.create(), body: { type: "ping-request" as const }, tag: "t", headers: {}, timeoutMs: undefined, signal: undefined };
    expect(await chain(input)).toBe(response);
    expect(order).toEqual(["a in", "b in", "terminal", "b out", "a out"]);
    expect(reached).toEqual({ headers: { a: "1", b: "1" }, timeoutMs: 2 });
  });

  test("interceptor lists are checked and copied; tracing, then the deadline interceptors come first unless turned off", () => {
    const own: AgentInterceptor = {};
    const list: AgentInterceptor[] = [own];
    const resolved = resolveInterceptors({ agent: list });
    list.push({});
    const traced = tracingInterceptors();
    expect(resolved.agent).toEqual([traced.agent, deadlineInterceptors().agent, own]);
    expect(resolved.caller).toEqual([traced.caller, deadlineInterceptors().caller]);
    expect(resolveInterceptors({ agent: [own] }, { tracing: false })).toEqual({ caller: [deadlineInterceptors().caller], agent: [deadlineInterceptors().agent, own] });
    expect(resolveInterceptors({ agent: [own] }, { deadlines: false, tracing: false })).toEqual({ caller: [], agent: [own] });
    expect(resolveInterceptors({ agent: [own] }, false).agent).toEqual([traced.agent, own]);
    expect(() => resolveInterceptors({ caller: [null as never] })).toThrow(InvalidConfigError);
    expect(() => resolveInterceptors({ agent: {} as never })).toThrow(InvalidConfigError);
    expect(() => resolveInterceptors(undefined, "no" as never)).toThrow(InvalidConfigError);
    expect(() => resolveInterceptors(undefined, { tracing: "no" as never })).toThrow(InvalidConfigError);
    expect(() => deadlineInterceptors({ cancelWindowMs: -1 })).toThrow(InvalidConfigError);
  });
});

describe("interceptors of worker threads' factories", () => {
  test("a worker's factory has the built-in interceptors its main thread's factory has (deadlines, tracing), and no custom ones", async () => {
    const custom = { caller: [{}], agent: [{}] };
    for (const deadlines of [true, false]) {
      for (const tracing of [true, false]) {
        const main = new LocalExchangeFactory({ interceptors: custom, deadlines, tracing });
        const worker = new PortExchangeFactory(main.forWorker().data as LocalPortDescriptorData);
        const traced = tracingInterceptors();
        const expected = {
          caller: [...(tracing ? [traced.caller] : []), ...(deadlines ? [deadlineInterceptors().caller] : [])],
          agent: [...(tracing ? [traced.agent] : []), ...(deadlines ? [deadlineInterceptors().agent] : [])],
        };
        expect(worker.interceptors).toEqual(expected);
        expect(worker.interceptors.agent.length).toBe(Number(tracing) + Number(deadlines));
        await worker.close();
        await main.close();
        const nats = new NatsExchangeFactory({ interceptors: custom, deadlines, tracing });
        const data = nats.forWorker().data as Record<string, unknown>;
        expect(data.interceptors).toBeUndefined();
        const rebuilt = new NatsExchangeFactory(structuredClone(data)).interceptors;
        expect(rebuilt).toEqual(expected);
        expect(rebuilt.caller.length).toBe(Number(tracing) + Number(deadlines));
      }
    }
  });
});

describe("pending requests", () => {
  const request: RequestMessage = { type: "action-request", tag: "t1", dest: "a1", src: "u1", action: "stream", args: [] };
  const frame = (result: unknown): ResponseMessage => ({ type: "action-response", tag: "t1", dest: "u1", src: "a1", result });

  /** A sink that takes responses until one says `done`, as a streaming call would. */
  function streamSink(): ResponseSink & { frames: unknown[]; failed: unknown[] } {
    return {
      request,
      agentId: new AgentId("a1"),
      frames: [],
      failed: [],
      receive(response) {
        const result = response.type === "action-response" ? response.result : undefined;
        this.frames.push(result);
        return result === "done";
      },
      fail(error) {
        this.failed.push(error);
      },
    };
  }

  test("a sink receives every response until it says one is final; then the request leaves the table", () => {
    const table = new PendingRequests();
    const sink = streamSink();
    table.add(sink);
    table.receive(sink, frame(1));
    table.receive(sink, frame(2));
    expect(table.get("t1")).toBe(sink);
    table.receive(sink, frame("done"));
    expect(table.get("t1")).toBeUndefined();
    expect(sink.frames).toEqual([1, 2, "done"]);
  });

  test("failing removes the request; a mailbox's requests can be failed together", () => {
    const table = new PendingRequests();
    const first = streamSink();
    table.add(first);
    expect(table.waitsOn("a1")).toBe(true);
    expect(table.waitsOn("other")).toBe(false);
    table.failWaitingOn("a1", () => "gone");
    expect(first.failed).toEqual(["gone"]);
    expect(table.get("t1")).toBeUndefined();
    const second = streamSink();
    table.add(second);
    // Removing a sink that was replaced under the same tag leaves the newer one.
    table.remove(first);
    expect(table.get("t1")).toBe(second);
    table.failAll("closed");
    expect(second.failed).toEqual(["closed"]);
    expect(table.waitsOn("a1")).toBe(false);
  });
});

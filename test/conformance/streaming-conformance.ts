/**
 * Streaming actions and progress reports, run against every exchange (the in-process one in
 * test/unit/local-streaming.test.ts, NATS in test/integration/nats/streaming.test.ts).
 */
import { describe, expect, test, vi } from "vitest";
import { ActionCancelledError, ActionKindError, AgentEngine, InvalidConfigError, Manager, MessageType, RequestTimeoutError } from "../../src/index.ts";
import type { AgentInterceptor, CallerInterceptor, ExchangeFactory, InterceptorOptions, RequestMessage, ResponseMessage } from "../../src/index.ts";
import { Streamer } from "../fixtures/streaming-agents.ts";
import { Recorder } from "../fixtures/agents.ts";

/** How the suite gets an isolated exchange for each test. */
export interface StreamingTarget {
  newFactory(options?: { interceptors?: InterceptorOptions; resultWindowMs?: number }): ExchangeFactory;
  /**
   * Store `request` in its mailbox again as a new message marked as a re-publication (on NATS
   * `Academy-Resent`): a duplicate no memory of the agent's process can recognise (PROTOCOL.md 10.10).
   */
  redeliver(factory: ExchangeFactory, request: RequestMessage): Promise<void>;
}

/** Read `iterable` to its end, collecting its items. */
async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

export function describeStreamingConformance(name: string, target: () => StreamingTarget): void {
  async function open(interceptors?: InterceptorOptions): Promise<Manager> {
    return Manager.fromExchangeFactory(target().newFactory(interceptors === undefined ? {} : { interceptors }));
  }

  describe(`${name}: streaming`, () => {
    test("10,000 items arrive in order, each once, and the stream ends", async () => {
      await using manager = await open();
      const streamer = await manager.launch(Streamer);
      const items = await collect(streamer.stream("count", 10_000));
      expect(items.length).toBe(10_000);
      for (let i = 0; i < items.length; i++) if (items[i] !== i) expect.fail(`item ${i} is ${String(items[i])}`);
      // The iterator's final value is the generator's return value.
      const iterator = streamer.stream("count", 2);
      expect([await iterator.next(), await iterator.next(), await iterator.next()]).toEqual([
        { done: false, value: 0 },
        { done: false, value: 1 },
        { done: true, value: "counted" },
      ]);
    });

    test("the typed proxy form streams with for await", async () => {
      await using manager = await open();
      const streamer = await manager.launch(Streamer);
      const items: number[] = [];
      for await (const item of streamer.count(5)) items.push(item as number);
      expect(items).toEqual([0, 1, 2, 3, 4]);
      // Not iterated where it is made: an ordinary call, which the agent refuses for a stream.
      await expect(streamer.count(5) as unknown as Promise<unknown>).rejects.toThrow(ActionKindError);
      expect(await streamer.plain()).toBe(1);
      // A proxy call is a promise for then, catch and finally; once awaited it is no stream.
      let settled = false;
      const call = streamer.plain();
      expect(await call.finally(() => (settled = true))).toBe(1);
      expect(settled).toBe(true);
      expect(await streamer.plain().then((n) => n + 1)).toBe(2);
      expect(await (streamer.count(1) as unknown as Promise<unknown>).catch((e: Error) => e.name)).toBe("ActionKindError");
      expect(() => (call as unknown as AsyncIterable<unknown>)[Symbol.asyncIterator]()).toThrow(ActionKindError);
    });

    test("calls through the proxy and by name keep the order they were made in", async () => {
      await using manager = await open();
      const recorder = new Recorder();
      const handle = await manager.launch(recorder);
      const calls = [handle.record(1), handle.action("record", 2), handle.record(3), handle.invoke("record", [4]), handle.record(5)];
      await Promise.all(calls);
      expect(recorder.entries).toEqual([1, 2, 3, 4, 5]);
    });

    test("a consumer taking one item per 10 ms keeps the agent at most a window ahead", async () => {
      await using manager = await open();
      const agent = new Streamer();
      const streamer = await manager.launch(agent);
      const window = 8;
      const stream = streamer.invokeStream("paced", [], { window });
      let maxBuffered = 0;
      for await (const item of stream) {
        agent.taken++;
        maxBuffered = Math.max(maxBuffered, (stream as unknown as { buffered: number }).buffered);
        if (item === 59) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // Measured in the agent before each yield: items produced less items the consumer took.
      expect(agent.maxAhead).toBeGreaterThan(1);
      expect(agent.maxAhead).toBeLessThanOrEqual(window);
      expect(agent.produced).toBeLessThanOrEqual(60 + window);
      // And on the caller's side: never more than a window buffered.
      expect(maxBuffered).toBeLessThanOrEqual(window);
    });

    test("break after 5 items runs the generator's finally and frees its slot", async () => {
      await using manager = await open();
      const agent = new Streamer();
      const streamer = await manager.launch(agent, { config: { maxConcurrentActions: 1 } });
      const window = 16;
      const taken: number[] = [];
      const started = performance.now();
      for await (const item of streamer.invokeStream("endless", [], { window })) {
        taken.push(item as number);
        if (taken.length === 5) break;
      }
      const broke = performance.now();
      await vi.waitFor(() => expect(agent.events.at(-1)).toBe("finally"), { timeout: 5000, interval: 1 });
      const finallyAfterMs = performance.now() - broke;
      expect(taken).toEqual([0, 1, 2, 3, 4]);
      // The generator stopped within its window, then its finally ran, once, last.
      const yields = agent.events.filter((e) => e.startsWith("yield:"));
      expect(yields.length).toBeLessThanOrEqual(5 + window);
      expect(agent.events.filter((e) => e === "finally")).toEqual(["finally"]);
      // A generous bound for a shared machine (the promise is 100 ms; typically a few ms).
      expect(finallyAfterMs).toBeLessThan(Math.max(1000, (broke - started) * 2));
      // Its slot is free: with one slot, another call runs.
      expect(await streamer.plain()).toBe(1);
    });

    test("an error after 3 items reaches the caller after them, with its name and message", async () => {
      await using manager = await open();
      const streamer = await manager.launch(Streamer);
      const items: unknown[] = [];
      const error = await (async () => {
        for await (const item of streamer.stream("failAfter", 3)) items.push(item);
      })().catch((e: unknown) => e);
      expect(items).toEqual([0, 1, 2]);
      expect(error).toBeInstanceOf(RangeError);
      expect((error as Error).name).toBe("RangeError");
      expect((error as Error).message).toBe("failed after 3 items");
    });

    test("a timeout between items cancels the stream in the agent", async () => {
      await using manager = await open();
      const agent = new Streamer();
      const streamer = await manager.launch(agent);
      const items: unknown[] = [];
      const error = await (async () => {
        for await (const item of streamer.invokeStream("slow", [20_000], { itemTimeoutMs: 100 })) items.push(item);
      })().catch((e: unknown) => e);
      expect(items).toEqual([]);
      expect(error).toBeInstanceOf(RequestTimeoutError);
      expect((error as RequestTimeoutError).timeoutMs).toBe(100);
      await vi.waitFor(() => expect(agent.events).toEqual(["aborted", "finally"]), { timeout: 5000 });
    });

    test("an overall timeout and an abort signal cancel the stream", async () => {
      await using manager = await open();
      const agent = new Streamer();
      const streamer = await manager.launch(agent);
      const timedOut = await collect(streamer.invokeStream("slow", [5], { timeoutMs: 200 })).catch((e: unknown) => e);
      expect(timedOut).toBeInstanceOf(RequestTimeoutError);
      await vi.waitFor(() => expect(agent.events).toContain("finally"), { timeout: 5000 });
      const controller = new AbortController();
      const items: unknown[] = [];
      const aborted = await (async () => {
        for await (const item of streamer.invokeStream("slow", [5], { signal: controller.signal })) {
          items.push(item);
          if (items.length === 3) controller.abort();
        }
      })().catch((e: unknown) => e);
      expect(aborted).toBeInstanceOf(ActionCancelledError);
      expect(items).toEqual([0, 1, 2]);
      await vi.waitFor(() => expect(agent.events.filter((e) => e === "finally").length).toBe(2), { timeout: 5000 });
    });

    test("agent shutdown ends the stream with a typed error", async () => {
      await using manager = await open();
      const agent = new Streamer();
      const streamer = await manager.launch(agent, { config: { cancelActionsOnShutdown: false } });
      const items: unknown[] = [];
      const error = await (async () => {
        for await (const item of streamer.invokeStream("endless", [], { window: 4 })) {
          items.push(item);
          if (items.length === 3) void manager.shutdown(streamer, { blocking: false });
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ActionCancelledError);
      expect((error as Error).message).toMatch(/shut down/);
      // In order and each once, up to where the agent stopped.
      expect(items).toEqual(items.map((_, i) => i));
      expect(agent.events.at(-1)).toBe("finally");
    });

    test("a caller that closes its client cancels its open streams", async () => {
      await using manager = await open();
      const agent = new Streamer();
      const launched = await manager.launch(agent);
      const caller = await manager.exchangeFactory.createUserClient();
      const taken: unknown[] = [];
      const stream = caller.getHandle(launched.agentId).invokeStream("endless", [], { window: 4 });
      for (let i = 0; i < 2; i++) taken.push((await stream.next()).value);
      await caller.close();
      await vi.waitFor(() => expect(agent.events.at(-1)).toBe("finally"), { timeout: 10_000 });
      expect(taken).toEqual([0, 1]);
      expect(await launched.plain()).toBe(1);
    });

    test("a stream whose caller's mailbox is terminated behind its back stops within a stall check", async () => {
      await using manager = await open();
      const agent = new Streamer();
      const launched = await manager.launch(agent, { config: { maxConcurrentActions: 1 } });
      const caller = await manager.exchangeFactory.createUserClient();
      try {
        const stream = caller.getHandle(launched.agentId).invokeStream("endless", [], { window: 4 });
        await stream.next();
        // Not a close (which cancels): the mailbox goes, and no cancel is sent.
        await manager.exchangeClient.terminate(caller.clientId);
        await vi.waitFor(() => expect(agent.events.at(-1)).toBe("finally"), { timeout: 20_000, interval: 50 });
        // Its slot is free again.
        expect(await launched.plain()).toBe(1);
      } finally {
        await caller.close().catch(() => undefined);
      }
    }, 30_000);

    test("streaming an ordinary action, or invoking a streaming one, is an ActionKindError", async () => {
      await using manager = await open();
      const streamer = await manager.launch(Streamer);
      const streamed = await collect(streamer.stream("plain")).catch((e: unknown) => e);
      expect(streamed).toBeInstanceOf(ActionKindError);
      expect((streamed as ActionKindError).streaming).toBe(false);
      const invoked = await streamer.action("count" as never, 3 as never).catch((e: unknown) => e);
      expect(invoked).toBeInstanceOf(ActionKindError);
      expect((invoked as ActionKindError).streaming).toBe(true);
      expect(() => streamer.invokeStream("count", [3], { window: 0 })).toThrow(InvalidConfigError);
      expect(() => streamer.invokeStream("count", [3], { window: 1.5 })).toThrow(InvalidConfigError);
      expect(() => streamer.invokeStream("count", [3], { itemTimeoutMs: -1 })).toThrow(InvalidConfigError);
      expect(() => streamer.invokeStream("count", [3], { timeoutMs: Number.NaN })).toThrow(InvalidConfigError);
      // Infinity means no limit.
      expect(await collect(streamer.invokeStream("count", [3], { timeoutMs: Infinity, itemTimeoutMs: Infinity }))).toEqual([0, 1, 2]);
      const missing = await collect(streamer.stream("nope")).catch((e: unknown) => e);
      expect((missing as Error).name).toBe("UnknownActionError");
    });

    test("items too large for one frame together go in several; one too large alone ends the stream with PayloadTooLargeError", async () => {
      await using manager = await open();
      const streamer = await manager.launch(Streamer);
      const limit = manager.exchangeClient.maxPayload;
      const third = Math.floor(limit / 3);
      // Yielded in one turn, five items of a third of the limit cannot share one frame.
      const lengths = (await collect(streamer.stream("sized", [third, third, third, third, third]))).map((s) => (s as string).length);
      expect(lengths).toEqual([third, third, third, third, third]);
      const items: unknown[] = [];
      const error = await (async () => {
        for await (const item of streamer.stream("sized", [10, limit + 1, 10])) items.push(item);
      })().catch((e: unknown) => e);
      expect(items.map((s) => (s as string).length)).toEqual([10]);
      expect((error as Error).name).toBe("PayloadTooLargeError");
      expect(await streamer.plain()).toBe(1);
    });

    test("interceptors see a stream as one call with its items", async () => {
      const seen: string[] = [];
      const caller: CallerInterceptor = {
        async outboundRequest(input, next) {
          seen.push(`call:${input.body.type === "action-request" ? input.body.action : input.body.type}`);
          const end: ResponseMessage = await next(input);
          seen.push(`end:${end.type}`);
          return end;
        },
        inboundResponse(input, next) {
          if (input.response.type === "stream-items") seen.push(`items:${input.response.items.length}`);
          next(input);
        },
      };
      await using manager = await open({ caller: [caller] });
      const streamer = await manager.launch(Streamer);
      expect(await collect(streamer.stream("count", 3))).toEqual([0, 1, 2]);
      await vi.waitFor(() => expect(seen.at(-1)).toBe("end:stream-end"));
      expect(seen[0]).toBe("call:count");
      const itemCount = seen.filter((s) => s.startsWith("items:")).reduce((n, s) => n + Number(s.slice(6)), 0);
      expect(itemCount).toBe(3);
    });

    for (const resultWindowMs of [undefined, 0]) {
      const recorded = resultWindowMs === undefined;
      test(`a completed stream's request given back to a restarted agent is ${recorded ? "answered from its record, not run again" : "run again (results off)"}`, async () => {
        const requests = new Map<string, RequestMessage>();
        const ends: string[] = [];
        const capture: AgentInterceptor = {
          inboundRequest(input, next) {
            const request = next(input);
            if (request.type === MessageType.ActionRequest && request.stream !== undefined) requests.set(request.action, request);
            return request;
          },
          async outboundResponse(input, next) {
            if (input.response.type === MessageType.StreamEnd) ends.push(`${input.response.run}:${input.response.count}`);
            await next(input);
          },
        };
        const factory = target().newFactory({ interceptors: { agent: [capture] }, ...(recorded ? {} : { resultWindowMs }) });
        const user = await factory.createUserClient();
        try {
          const registration = await user.registerAgent(Streamer);
          const first = new AgentEngine(new Streamer(), { exchangeFactory: factory, registration });
          const firstRun = first.run();
          const handle = user.getHandle(registration.agentId);
          expect(await collect(handle.stream("count", 5))).toEqual([0, 1, 2, 3, 4]);
          first.requestShutdown({ expected: true, terminate: false });
          await firstRun;
          // A fresh engine: nothing in memory says the stream was answered.
          const agent = new Streamer();
          const second = new AgentEngine(agent, { exchangeFactory: factory, registration });
          const secondRun = second.run();
          await target().redeliver(factory, requests.get("count")!);
          await vi.waitFor(() => expect(ends).toHaveLength(2), { timeout: 10_000 });
          if (recorded) {
            // The same end (same run, same count) sent again; the generator did not run.
            expect(ends[1]).toBe(ends[0]);
            expect(agent.produced).toBe(0);
          } else {
            expect(ends[1]).not.toBe(ends[0]);
            expect(agent.produced).toBe(5);
          }
          second.requestShutdown({ expected: true, terminate: false });
          await secondRun;
        } finally {
          await user.close();
          await factory.close();
        }
      });
    }

    test("progress reports reach onProgress in order, before the result", async () => {
      await using manager = await open();
      const streamer = await manager.launch(Streamer);
      const reports: Array<{ step: number; of: number }> = [];
      const result = await streamer.invoke("work", [20], { onProgress: (p) => reports.push(p as { step: number; of: number }) });
      expect(result).toBe("done");
      expect(reports.length).toBeGreaterThan(0);
      // Coalesced while one is on its way, but in order and the last one always arrives.
      const steps = reports.map((r) => r.step);
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      expect(reports.at(-1)).toEqual({ step: 20, of: 20 });
      // Without an observer the agent sends none.
      expect(await streamer.observed()).toBe(false);
      expect(await streamer.invoke("observed", [], { onProgress: () => {} })).toBe(true);
    });
  });
}

/**
 * Tracing on the in-process exchange: spans of calls, actions and event handlers, their parents
 * across agents (with and without a context manager), what they carry, and nothing at all until an
 * SDK is installed. The same across hosts on NATS: test/integration/observability/tracing.test.ts.
 */
import { SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";
import { afterEach, describe, expect, test } from "vitest";
import { Agent, LocalExchangeFactory, Manager, action } from "../../src/index.ts";
import { flushTraces, tracingInstalled } from "../../src/interceptors/tracing.ts";
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { Coordinator, Counter, ScopeProbe, Sleeper, Ticker, Troublemaker } from "../fixtures/agents.ts";
import { installTestTracing, parentOf } from "../support/otel.ts";
import { Streamer } from "../fixtures/streaming-agents.ts";
import type { TestTracing } from "../support/otel.ts";

/** Makes a span of its own inside an action, as application code does. */
class Worker extends Agent {
  @action async work(): Promise<string> {
    return trace.getTracer("app").startActiveSpan("app work", async (span) => {
      span.end();
      return span.spanContext().traceId;
    });
  }
}

let tracing: TestTracing | undefined;
afterEach(async () => {
  await tracing?.uninstall();
  tracing = undefined;
});

async function withManager<T>(use: (manager: Manager) => Promise<T>, options: { tracing?: boolean } = {}): Promise<T> {
  await using manager = await Manager.fromExchangeFactory(new LocalExchangeFactory(options));
  return await use(manager);
}

describe("tracing", () => {
  test("a stream is one call: one send span and one handle span, its child, covering every item and ending with the stream", async () => {
    tracing = installTestTracing();
    const { items, failed } = await withManager(async (manager) => {
      const streamer = await manager.launch(Streamer);
      const items: unknown[] = [];
      for await (const item of streamer.stream("count", 50)) items.push(item);
      const failed = await (async () => {
        for await (const _ of streamer.stream("failAfter", 2));
      })().catch((e: unknown) => e);
      return { items, failed };
    });
    expect(items).toHaveLength(50);
    expect((failed as Error).name).toBe("RangeError");
    const send = tracing.span("send count");
    const handle = tracing.span("handle count");
    expect(parentOf(handle)).toBe(send.spanContext().spanId);
    expect(send.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(tracing.span("send failAfter").status.code).toBe(SpanStatusCode.ERROR);
    expect(tracing.span("handle failAfter").status.code).toBe(SpanStatusCode.ERROR);
  });

  test("without an SDK nothing is recorded and no trace context travels", async () => {
    expect(tracingInstalled()).toBe(false);
    const headers = await withManager(async (manager) => {
      const probe = await manager.launch(ScopeProbe);
      return (await probe.scope()).headers;
    });
    expect(headers?.traceparent).toBeUndefined();
  });

  test("a call to an agent that calls another is one trace: send, handle, send, handle, each the parent of the next (no context manager)", async () => {
    tracing = installTestTracing();
    expect(tracingInstalled()).toBe(true);
    const { counterId, coordinatorId } = await withManager(async (manager) => {
      const counter = await manager.launch(Counter);
      const coordinator = await manager.launch(Coordinator, { args: [counter, counter] });
      expect(await coordinator.callThrough(counter, 2)).toBe(2);
      return { counterId: counter.agentId.uid, coordinatorId: coordinator.agentId.uid };
    });
    const sendOuter = tracing.span("send callThrough");
    const handleOuter = tracing.span("handle callThrough");
    const sendInner = tracing.span("send increment");
    const handleInner = tracing.span("handle increment");
    const traceId = sendOuter.spanContext().traceId;
    for (const span of [handleOuter, sendInner, handleInner]) expect(span.spanContext().traceId).toBe(traceId);
    expect(parentOf(sendOuter)).toBeUndefined();
    expect(parentOf(handleOuter)).toBe(sendOuter.spanContext().spanId);
    expect(parentOf(sendInner)).toBe(handleOuter.spanContext().spanId);
    expect(parentOf(handleInner)).toBe(sendInner.spanContext().spanId);
    expect([sendOuter.kind, handleOuter.kind, sendInner.kind, handleInner.kind]).toEqual([SpanKind.CLIENT, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.SERVER]);
    expect(sendOuter.attributes).toMatchObject({
      "messaging.operation.type": "send",
      "messaging.destination.name": coordinatorId,
      "academy.agent.id": coordinatorId,
      "academy.action": "callThrough",
      "academy.outcome": "ok",
    });
    expect(typeof sendOuter.attributes["academy.tag"]).toBe("string");
    expect(sendOuter.attributes["messaging.system"]).toBeUndefined(); // in process: no messaging system
    expect(handleInner.attributes).toMatchObject({
      "messaging.operation.type": "process",
      "academy.agent.id": counterId,
      "academy.agent.type": "Counter",
      "academy.action": "increment",
      "academy.outcome": "ok",
    });
    expect(handleInner.attributes["academy.tag"]).toBe(sendInner.attributes["academy.tag"]);
    // The callee's span lies within the caller's.
    expect(handleInner.startTime[0] * 1e9 + handleInner.startTime[1]).toBeGreaterThanOrEqual(sendInner.startTime[0] * 1e9 + sendInner.startTime[1]);
  });

  test("with a context manager: a call under the application's span joins its trace, and spans an action makes are children of its span", async () => {
    tracing = installTestTracing({ contextManager: true });
    const traceId = await withManager(async (manager) => {
      const worker = await manager.launch(Worker);
      return trace.getTracer("app").startActiveSpan("request", async (root) => {
        try {
          return await worker.work();
        } finally {
          root.end();
        }
      });
    });
    const root = tracing.span("request");
    const send = tracing.span("send work");
    const handle = tracing.span("handle work");
    const own = tracing.span("app work");
    expect(traceId).toBe(root.spanContext().traceId);
    expect(parentOf(send)).toBe(root.spanContext().spanId);
    expect(parentOf(handle)).toBe(send.spanContext().spanId);
    expect(parentOf(own)).toBe(handle.spanContext().spanId);
    expect(trace.getSpan(context.active())).toBeUndefined();
  });

  test("an action that throws: both spans have status ERROR, error.type and the outcome; timeouts are told apart", async () => {
    tracing = installTestTracing();
    await withManager(async (manager) => {
      const trouble = await manager.launch(Troublemaker);
      await expect(trouble.fail("boom")).rejects.toThrow("boom");
      const sleeper = new Sleeper();
      const handle = await manager.launch(sleeper);
      await expect(handle.invoke("sleep", [10_000], { timeoutMs: 50 })).rejects.toMatchObject({ name: "RequestTimeoutError" });
      await sleeper.aborted.promise;
    });
    const handle = tracing.span("handle fail");
    const send = tracing.span("send fail");
    for (const span of [handle, send]) {
      expect(span.status).toMatchObject({ code: SpanStatusCode.ERROR, message: "boom" });
      expect(span.attributes["academy.outcome"]).toBe("error");
      expect(span.attributes["error.type"]).toBe("E_VALIDATION"); // the error's code
    }
    expect(handle.events.map((e) => e.name)).toEqual(["exception"]);
    expect(tracing.span("send sleep").attributes).toMatchObject({ "academy.outcome": "timeout", "error.type": "REQUEST_TIMEOUT" });
    // The agent stopped at its deadline or at the caller's cancel, whichever came first.
    expect(["timeout", "cancelled"]).toContain(tracing.span("handle sleep").attributes["academy.outcome"]);
  });

  test("each run of an event handler is a span with the agent, the event and the handler", async () => {
    tracing = installTestTracing();
    const ticker = new Ticker();
    await withManager(async (manager) => {
      const handle = await manager.launch(ticker);
      await handle.poke();
      await ticker.handledOnce.promise;
    });
    const span = tracing.span("event dataReady");
    expect(span.kind).toBe(SpanKind.INTERNAL);
    expect(span.attributes).toMatchObject({ "academy.agent.type": "Ticker", "academy.event": "dataReady", "academy.handler": "onData", "academy.outcome": "ok" });
    expect(parentOf(span)).toBeUndefined();
  });

  test("tracing: false on the factory: no spans, no trace context in the headers", async () => {
    tracing = installTestTracing();
    const headers = await withManager(
      async (manager) => {
        const probe = await manager.launch(ScopeProbe);
        return (await probe.scope()).headers;
      },
      { tracing: false },
    );
    expect(headers?.traceparent).toBeUndefined();
    expect(tracing.spans().filter((s) => s.name.startsWith("send ") || s.name.startsWith("handle "))).toEqual([]);
  });

  test("with an SDK the request carries traceparent, which the agent sees in its scope", async () => {
    tracing = installTestTracing();
    const headers = await withManager(async (manager) => {
      const probe = await manager.launch(ScopeProbe);
      return (await probe.scope()).headers;
    });
    const send = tracing.span("send scope");
    expect(headers?.traceparent).toBe(`00-${send.spanContext().traceId}-${send.spanContext().spanId}-01`);
  });

  test("flushTraces exports what a batching SDK still holds (a host calls it before exiting); without an SDK it does nothing", async () => {
    await flushTraces(); // no SDK: returns at once
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 60_000 })] });
    trace.setGlobalTracerProvider(provider);
    try {
      trace.getTracer("app").startSpan("pending").end();
      expect(exporter.getFinishedSpans()).toHaveLength(0);
      await flushTraces();
      expect(exporter.getFinishedSpans().map((span) => span.name)).toEqual(["pending"]);
    } finally {
      await provider.shutdown();
      trace.disable();
    }
  });
});

/**
 * An OpenTelemetry SDK for tests: a tracer provider exporting to memory, the W3C trace-context
 * propagator, and (optionally) the async-hooks context manager that the Node SDKs install. What an
 * application does with `NodeSDK`, in a form a test can undo.
 */
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";

/** An installed test SDK. */
export interface TestTracing {
  readonly exporter: InMemorySpanExporter;
  /** Finished spans so far. */
  spans(): ReadableSpan[];
  /** The finished span named `name` (the only one), or a thrown error listing the names seen. */
  span(name: string): ReadableSpan;
  /** Remove the SDK: the API is a no-op again. */
  uninstall(): Promise<void>;
}

/**
 * Install a tracer provider (spans kept in memory) and the W3C propagator globally; with
 * `contextManager`, also the async-hooks context manager.
 */
export function installTestTracing(options: { contextManager?: boolean } = {}): TestTracing {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  if (!trace.setGlobalTracerProvider(provider)) throw new Error("a tracer provider is installed already");
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const manager = options.contextManager === true ? new AsyncLocalStorageContextManager().enable() : undefined;
  if (manager !== undefined) context.setGlobalContextManager(manager);
  const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
  return {
    exporter,
    spans,
    span(name) {
      const found = spans().filter((s) => s.name === name);
      if (found.length !== 1) throw new Error(`expected one span '${name}', found ${found.length} among: ${spans().map((s) => s.name).join(", ")}`);
      return found[0]!;
    },
    async uninstall() {
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      if (manager !== undefined) {
        manager.disable();
        context.disable();
      }
    },
  };
}

/** The id of a span's parent, if it has one. */
export function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

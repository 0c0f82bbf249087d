/**
 * `npm run bench -- --tracing`: an OpenTelemetry SDK set up as an application would (tracer
 * provider, batch span processor, W3C propagator, async-hooks context manager), exporting to an
 * exporter that drops the spans: what recording and propagating spans cost, without a collector.
 */
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { ExportResultCode, W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";

/** Counts the spans it is given, and drops them. */
class DroppingExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (result: { code: ExportResultCode }) => void): void {
    this.spans += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
}

/** Install the SDK; returns how to shut it down and how many spans were exported. */
export function installBenchTracing(): { exported(): number; shutdown(): Promise<void> } {
  const exporter = new DroppingExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  return { exported: () => exporter.spans, shutdown: () => provider.shutdown() };
}

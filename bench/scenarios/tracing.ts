/**
 * Scenario 8, what tracing costs: CPU time per action call on the in-process exchange (caller and
 * agent in this process, so both sides' interceptors are counted and no network blurs the
 * figure), with the factory's `tracing` off, on without an OpenTelemetry SDK (the default for
 * applications that install none), and on with an SDK recording every span (batch processor,
 * W3C propagator, async-hooks context manager; spans dropped instead of exported). CPU time, not
 * wall time, so that other processes on the machine change it little. Rounds interleave the
 * three; the median round is reported.
 */
import { context, propagation, trace } from "@opentelemetry/api";
import { LocalExchangeFactory, Manager } from "../../src/index.ts";
import { tracingInstalled } from "../../src/interceptors/tracing.ts";
import { BenchEcho } from "../agents.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { installBenchTracing } from "../lib/tracing.ts";

/** CPU µs per call over `calls` sequential calls (after a warm-up). */
async function cpuPerCall(tracing: boolean, calls: number): Promise<number> {
  await using manager = await Manager.fromExchangeFactory(new LocalExchangeFactory({ tracing }));
  const echo = await manager.launch(BenchEcho);
  const payload = new Uint8Array(64);
  for (let i = 0; i < 1_000; i++) await echo.echo(payload);
  const start = process.cpuUsage();
  for (let i = 0; i < calls; i++) await echo.echo(payload);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / calls;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export default async function tracingCost(ctx: BenchContext): Promise<ScenarioResult> {
  const rounds = ctx.quick ? 5 : 11;
  const calls = ctx.quick ? 5_000 : 20_000;
  const preinstalled = tracingInstalled();
  const samples = { off: [] as number[], noSdk: [] as number[], recorded: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    samples.off.push(await cpuPerCall(false, calls));
    if (!preinstalled) samples.noSdk.push(await cpuPerCall(true, calls));
    // The SDK for this measurement only (unless the run installed one with --tracing).
    const sdk = preinstalled ? undefined : installBenchTracing();
    samples.recorded.push(await cpuPerCall(true, calls));
    if (sdk !== undefined) {
      await sdk.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    }
  }
  const off = median(samples.off);
  const noSdk = preinstalled ? undefined : median(samples.noSdk);
  const recorded = median(samples.recorded);
  const us = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(1));
  const pct = (v: number | undefined) => (v === undefined ? "-" : `${(((v - off) / off) * 100).toFixed(0)}%`);
  ctx.log(`tracing: off ${us(off)} µs, on without SDK ${us(noSdk)} µs, recorded ${us(recorded)} µs CPU per call`);
  return {
    id: "tracing",
    title: "8. What tracing costs: CPU µs per in-process action call (caller and agent), median of interleaved rounds",
    headers: ["tracing", "CPU µs per call", "vs off"],
    rows: [
      ["off (tracing: false)", us(off), "-"],
      ["on, no SDK installed (the default)", us(noSdk), pct(noSdk)],
      ["on, SDK recording every span", us(recorded), pct(recorded)],
    ],
    figures: { rounds, calls, cpuMicrosPerCall: { off, onWithoutSdk: noSdk, onRecorded: recorded }, samples },
    targets:
      noSdk === undefined
        ? []
        : [{ name: "tracing on without an SDK, CPU per call vs off", goal: "<= +10%", measured: pct(noSdk), met: noSdk <= off * 1.1 }],
    notes: [
      "Two spans per call (send and handle), the trace context injected into the request's headers and extracted by the agent.",
      ...(preinstalled ? ["This run installed an SDK for every scenario (--tracing): the no-SDK row cannot be measured."] : []),
    ],
  };
}

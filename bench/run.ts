/**
 * `npm run bench [-- --quick] [-- --only roundTrip,streaming,events] [-- --tracing]`: measures the runtime against bare
 * NATS on this machine, side by side in one run. Starts its own nats-server (JetStream, temporary
 * store, random port), runs each scenario, prints a table per scenario and the targets, and writes
 * bench/results/latest.json (machine, versions, every figure and ratio). docs/BENCHMARKS.md
 * explains each scenario and what governs its figures.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem, type as osType, release } from "node:os";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { startNatsServer } from "../src/testing/index.ts";
import { repoPath } from "./lib/build.ts";
import type { BenchContext, Scenario, ScenarioResult, Target } from "./lib/report.ts";
import { formatTable, markdownReport, printScenario } from "./lib/report.ts";

/** Every scenario, in the order they run (each module's default export). */
const SCENARIOS: Record<string, () => Promise<{ default: Scenario }>> = {
  roundTrip: () => import("./scenarios/round-trip.ts"),
  throughput: () => import("./scenarios/throughput.ts"),
  launch: () => import("./scenarios/launch.ts"),
  discover: () => import("./scenarios/discover.ts"),
  footprint: () => import("./scenarios/footprint.ts"),
  heartbeats: () => import("./scenarios/heartbeats.ts"),
  failover: () => import("./scenarios/failover.ts"),
  edge: () => import("./scenarios/edge.ts"),
  tracing: () => import("./scenarios/tracing.ts"),
  state: () => import("./scenarios/state.ts"),
  effectivelyOnce: () => import("./scenarios/effectively-once.ts"),
  streaming: () => import("./scenarios/streaming.ts"),
  events: () => import("./scenarios/events.ts"),
};

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    out: { type: "string" },
    tracing: { type: "boolean", default: false },
  },
});
const quick = values.quick ?? false;
const only = values.only?.split(",").map((s) => s.trim()).filter(Boolean) ?? Object.keys(SCENARIOS);
for (const name of only) {
  if (!(name in SCENARIOS)) {
    console.error(`Unknown scenario ${JSON.stringify(name)}; known: ${Object.keys(SCENARIOS).join(", ")}`);
    process.exit(2);
  }
}

function packageVersion(name: string): string {
  try {
    const path = repoPath(`node_modules/${name}/package.json`);
    return (JSON.parse(readFileSync(path, "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

// With --tracing, an OpenTelemetry SDK records every span (and drops it): what tracing costs.
const tracing = values.tracing === true ? (await import("./lib/tracing.ts")).installBenchTracing() : undefined;

const started = Date.now();
// 1 MiB payloads plus envelope and headers exceed NATS's default max_payload of 1 MiB.
await using server = await startNatsServer({ maxPayload: 8 * 1024 * 1024 });
const serverVersion = await fetch(`http://127.0.0.1:${server.monitorPort}/varz`)
  .then(async (r) => ((await r.json()) as { version: string }).version)
  .catch(() => "unknown");
const prefixes = new Set<string>();
const ctx: BenchContext = {
  quick,
  server,
  prefix(name) {
    let prefix = `bench_${name}`;
    for (let i = 2; prefixes.has(prefix); i++) prefix = `bench_${name}${i}`;
    prefixes.add(prefix);
    return prefix;
  },
  log(message) {
    process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
  },
};

console.log(`academy-nats benchmarks (${quick ? "quick" : "full"} run${tracing === undefined ? "" : ", tracing recorded"}): nats-server ${serverVersion}, Node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}`);
const results: Record<string, ScenarioResult & { durationMs: number; loadAverage: { start: number[]; end: number[] } }> = {};
for (const name of only) {
  const scenarioStart = Date.now();
  // The machine is shared: the load average beside each scenario's figures says how busy it was.
  const loadBefore = loadavg();
  ctx.log(`${name}: starting (load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")})`);
  const { default: scenario } = await SCENARIOS[name]!();
  const result = await scenario(ctx);
  const loadAfter = loadavg();
  const load = `load average (1, 5, 15 min) at start ${loadBefore.map((l) => l.toFixed(2)).join(", ")}; at end ${loadAfter.map((l) => l.toFixed(2)).join(", ")} (${cpus().length} cores)`;
  const withLoad = { ...result, notes: [...(result.notes ?? []), load] };
  results[name] = { ...withLoad, durationMs: Date.now() - scenarioStart, loadAverage: { start: loadBefore, end: loadAfter } };
  printScenario(withLoad);
  ctx.log(`${name}: done in ${((Date.now() - scenarioStart) / 1000).toFixed(1)} s`);
}

const targets: Target[] = Object.values(results).flatMap((r) => r.targets);
if (targets.length > 0) {
  console.log("\nTargets\n");
  console.log(formatTable(["target", "goal", "measured", "met"], targets.map((t) => [t.name, t.goal, t.measured, t.met ? "yes" : "NO"])));
}

const report = {
  date: new Date().toISOString(),
  quick,
  tracing: tracing !== undefined,
  durationMs: Date.now() - started,
  machine: {
    os: `${osType()} ${release()}`,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryBytes: totalmem(),
    loadAverageAtEnd: loadavg(),
  },
  versions: {
    node: process.version,
    natsServer: serverVersion,
    natsClient: packageVersion("@nats-io/nats-core"),
    cborX: packageVersion("cbor-x"),
    academyNats: (JSON.parse(readFileSync(repoPath("package.json"), "utf8")) as { version: string }).version,
  },
  scenarios: Object.fromEntries(Object.entries(results).map(([name, r]) => [name, { title: r.title, durationMs: r.durationMs, loadAverage: r.loadAverage, figures: r.figures, table: { headers: r.headers, rows: r.rows }, targets: r.targets, notes: r.notes ?? [] }])),
  targets,
};
if (tracing !== undefined) {
  await tracing.shutdown();
  console.log(`\nTracing: ${tracing.exported()} spans recorded and exported (dropped).`);
}
const out = values.out ?? repoPath("bench/results/latest.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
// The same tables in Markdown, for docs/BENCHMARKS.md.
const markdownOut = out.replace(/\.json$/, "") + ".md";
writeFileSync(markdownOut, markdownReport(report.date, report.machine, report.versions, Object.values(results), targets));
console.log(`\nWrote ${out} and ${markdownOut} in ${((Date.now() - started) / 1000).toFixed(1)} s`);

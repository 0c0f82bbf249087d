/** What a scenario returns, and how the runner prints it. */
import type { NatsServer } from "../../src/testing/index.ts";

/** One target from the issue, where this run stands against it. */
export interface Target {
  /** What is measured, e.g. "round trip p50 at 64 B vs bare NATS". */
  readonly name: string;
  /** The goal, e.g. "<= 2x". */
  readonly goal: string;
  /** What this run measured, e.g. "1.62x". */
  readonly measured: string;
  readonly met: boolean;
}

export interface ScenarioResult {
  /** Key in latest.json, e.g. "roundTrip". */
  readonly id: string;
  /** Heading printed above the table. */
  readonly title: string;
  readonly headers: readonly string[];
  readonly rows: ReadonlyArray<readonly string[]>;
  /** Every figure and ratio behind the table, in numbers (ms, bytes, per second), for the JSON. */
  readonly figures: unknown;
  readonly targets: readonly Target[];
  /** Lines printed under the table (what governs the figure, caveats). */
  readonly notes?: readonly string[];
}

export interface BenchContext {
  /** `--quick`: a reduced version of every scenario, all of them in under 2 minutes. */
  readonly quick: boolean;
  /** The run's own nats-server (JetStream, temporary store, random port). */
  readonly server: NatsServer;
  /** A prefix no other scenario of this run uses. */
  prefix(name: string): string;
  /** Progress line on stderr. */
  log(message: string): void;
}

export type Scenario = (ctx: BenchContext) => Promise<ScenarioResult>;

/** Print a table with right-aligned columns sized to their contents. */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function printScenario(result: ScenarioResult): void {
  console.log(`\n${result.title}\n`);
  console.log(formatTable(result.headers, result.rows));
  for (const note of result.notes ?? []) console.log(`  ${note}`);
}

function markdownTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(headers), `|${headers.map((_, i) => (i === 0 ? " --- " : " ---: ")).join("|")}|`, ...rows.map(line)].join("\n");
}

/** The run as Markdown: machine and versions, each scenario's table and notes, the targets. */
export function markdownReport(
  date: string,
  machine: { os: string; cpus: number; cpuModel: string; memoryBytes: number },
  versions: Record<string, string>,
  results: readonly ScenarioResult[],
  targets: readonly Target[],
): string {
  const parts = [
    `Run of ${date}: ${machine.cpus} x ${machine.cpuModel}, ${Math.round(machine.memoryBytes / 2 ** 30)} GiB, ${machine.os}; ` +
      Object.entries(versions)
        .map(([name, version]) => `${name} ${version}`)
        .join(", ") +
      ".",
  ];
  for (const result of results) {
    parts.push(`### ${result.title}`, markdownTable(result.headers, result.rows));
    if ((result.notes ?? []).length > 0) parts.push((result.notes ?? []).map((n) => `- ${n}`).join("\n"));
  }
  if (targets.length > 0) {
    parts.push("### Targets", markdownTable(["target", "goal", "measured", "met"], targets.map((t) => [t.name, t.goal, t.measured, t.met ? "yes" : "**no**"])));
  }
  return `${parts.join("\n\n")}\n`;
}

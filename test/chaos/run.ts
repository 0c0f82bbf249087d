/**
 * `npm run chaos [-- --short] [-- --only a,b] [-- --repeat n]`: the fault suite. Each scenario
 * starts its own servers on random ports, injects its fault under load, and reports answered /
 * failed / executed-twice / never-executed counts and the longest stall. Exit code 1 when any
 * scenario loses a request, runs one twice, stalls past its bound (`--short`: three times it), or
 * throws. Not part of
 * `npm test`; CI runs the short form after the tests. Results: docs/RELIABILITY.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { SHORT_STALL_FACTOR } from "./scenario.ts";
import type { ChaosResult, ChaosScenario } from "./scenario.ts";

/** Every scenario, in the order they run (each module's default export). */
const SCENARIOS: Record<string, () => Promise<{ default: ChaosScenario }>> = {
  "malformed-flood": () => import("./scenarios/malformed-flood.ts"),
  "restricted-user": () => import("./scenarios/restricted-user.ts"),
  "server-kill": () => import("./scenarios/server-kill.ts"),
  "cluster-leader-kill": () => import("./scenarios/cluster-leader-kill.ts"),
  "host-kill": () => import("./scenarios/host-kill.ts"),
  "poison-decode": () => import("./scenarios/poison-decode.ts"),
};

const { values } = parseArgs({
  options: {
    short: { type: "boolean", default: false },
    only: { type: "string" },
    repeat: { type: "string", default: "1" },
    out: { type: "string", default: "test/chaos/results/latest.json" },
  },
});
const short = values.short ?? false;
const stallFactor = short ? SHORT_STALL_FACTOR : 1;
const repeat = Number.parseInt(values.repeat ?? "1", 10);
const only = values.only?.split(",").map((s) => s.trim()).filter(Boolean) ?? Object.keys(SCENARIOS);
for (const name of only) {
  if (!(name in SCENARIOS)) {
    process.stderr.write(`Unknown scenario ${JSON.stringify(name)}; known: ${Object.keys(SCENARIOS).join(", ")}\n`);
    process.exit(2);
  }
}
if (!Number.isInteger(repeat) || repeat < 1) {
  process.stderr.write("--repeat must be a positive integer\n");
  process.exit(2);
}

const started = Date.now();
const log = (message: string): void => {
  process.stderr.write(`[chaos ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
};

interface Row {
  readonly id: string;
  readonly run: number;
  readonly result?: ChaosResult;
  readonly error?: string;
  readonly ok: boolean;
}

const rows: Row[] = [];
for (const id of only) {
  const scenario = (await SCENARIOS[id]!()).default;
  for (let run = 1; run <= repeat; run++) {
    log(`${id} (run ${run} of ${repeat}): ${scenario.title}`);
    try {
      const result = await scenario.run({ short, stallFactor, log: (m) => log(`${id}: ${m}`) });
      const ok = result.executedTwice === 0 && result.neverExecuted === 0 && result.maxStallMs <= scenario.maxStallMs * stallFactor;
      rows.push({ id, run, result, ok });
    } catch (error) {
      rows.push({ id, run, error: (error as Error).stack ?? String(error), ok: false });
    }
  }
}

const header = ["scenario", "run", "calls", "answered", "failed", "executed twice", "never executed", "max stall ms", "ok"];
const table = rows.map((r) =>
  r.result === undefined
    ? [r.id, String(r.run), "-", "-", "-", "-", "-", "-", "ERROR"]
    : [
        r.id,
        String(r.run),
        String(r.result.calls),
        String(r.result.answered),
        String(r.result.failed),
        String(r.result.executedTwice),
        String(r.result.neverExecuted),
        String(Math.round(r.result.maxStallMs)),
        r.ok ? "yes" : "NO",
      ],
);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
process.stdout.write(`\n${line(header)}\n${line(widths.map((w) => "-".repeat(w)))}\n${table.map(line).join("\n")}\n`);
for (const r of rows) {
  if (r.result?.details !== undefined) process.stdout.write(`  ${r.id} #${r.run}: ${JSON.stringify(r.result.details)}\n`);
  if (r.error !== undefined) process.stdout.write(`  ${r.id} #${r.run} threw: ${r.error}\n`);
}
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(values.out!, `${JSON.stringify({ short, repeat, at: new Date().toISOString(), rows }, null, 2)}\n`);
const failed = rows.filter((r) => !r.ok);
process.stdout.write(`\n${failed.length === 0 ? "all scenarios passed" : `${failed.length} scenario run(s) failed`} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
process.exit(failed.length === 0 ? 0 : 1);

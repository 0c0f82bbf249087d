/**
 * `academy gc`: delete the records of mailboxes terminated longer ago than `--older-than`, and
 * the final placements of those agents, by the rules of `src/pool/garbage-collection.ts`
 * (docs/OPERATIONS.md states them). `--dry-run` lists what would go.
 */
import { collectGarbage } from "../src/pool/garbage-collection.ts";
import { withExchange } from "./cli-connection.ts";
import type { ConnectionValues } from "./cli-connection.ts";
import { durationOption } from "./cli-options.ts";
import { ExitCode, formatTable, toJson } from "./cli-output.ts";
import type { Output } from "./cli-output.ts";

/** Options of `academy gc`, as commander parsed them. */
export interface GcValues extends ConnectionValues {
  json?: boolean;
  olderThan?: string;
  agentsOnly?: boolean;
  dryRun?: boolean;
}

const DEFAULT_AGE = "7d";

/** Collect, and print what was (or would be) deleted and what was kept. */
export async function gc(output: Output, values: GcValues): Promise<number> {
  const olderThanMs = durationOption(values.olderThan ?? DEFAULT_AGE, "older-than");
  const dryRun = values.dryRun === true;
  const report = await withExchange(values, async (factory) =>
    collectGarbage(await factory.poolBackend(), { olderThanMs, now: Date.now(), roles: values.agentsOnly === true ? "agents" : "all" }, dryRun),
  );
  const rows = report.collect.map(({ mailbox, placements }) => ({
    uid: mailbox.uid,
    role: mailbox.role,
    type: mailbox.type,
    terminatedAt: mailbox.terminatedAt === undefined ? undefined : new Date(mailbox.terminatedAt).toISOString(),
    placements: placements.map((p) => `${p.pool}:${p.state}`),
    deleted: !dryRun && !report.changed.includes(mailbox.uid),
  }));
  const kept = report.kept.map((k) => ({ uid: k.mailbox.uid, reason: k.reason }));
  if (values.json === true) {
    output.out(toJson({ dryRun, olderThanMs, deletedMailboxes: report.deletedMailboxes, deletedPlacements: report.deletedPlacements, collected: rows, kept, changed: report.changed }));
    return ExitCode.Ok;
  }
  const lines = [
    dryRun
      ? `would delete ${rows.length} mailbox record(s) and ${rows.reduce((n, r) => n + r.placements.length, 0)} placement(s)`
      : `deleted ${report.deletedMailboxes} mailbox record(s) and ${report.deletedPlacements} placement(s)` +
        (report.changed.length > 0 ? `; ${report.changed.length} changed meanwhile and were kept` : ""),
  ];
  if (rows.length > 0) {
    lines.push(formatTable(rows, [
      ["MAILBOX", (r) => r.uid],
      ["ROLE", (r) => r.role],
      ["TYPE", (r) => r.type],
      ["TERMINATED", (r) => r.terminatedAt],
      ["PLACEMENTS", (r) => r.placements.join(" ")],
    ]));
  }
  if (kept.length > 0) lines.push("kept:", ...kept.map((k) => `  ${k.uid}: ${k.reason}`));
  output.out(lines.join("\n"));
  return ExitCode.Ok;
}

/**
 * Which request ran how often, across processes: agents under test append one line per execution
 * (`<tag>\n`) to a ledger file; the scenario reads it back to count executions per tag. A file,
 * not memory, because the processes that run an action may be killed and replaced.
 */
import { appendFileSync, existsSync, readFileSync } from "node:fs";

/** Record one execution of the request `tag` (synchronously: it survives a kill right after). */
export function recordExecution(ledger: string, tag: string): void {
  appendFileSync(ledger, `${tag}\n`);
}

/** Executions per tag recorded so far. */
export function readLedger(ledger: string): Map<string, number> {
  const counts = new Map<string, number>();
  if (!existsSync(ledger)) return counts;
  for (const line of readFileSync(ledger, "utf8").split("\n")) {
    if (line === "") continue;
    counts.set(line, (counts.get(line) ?? 0) + 1);
  }
  return counts;
}

/** Tally executions of the `expected` tags: how many ran twice or more, how many never ran. */
export function tally(counts: ReadonlyMap<string, number>, expected: Iterable<string>): { executedTwice: number; neverExecuted: number } {
  let executedTwice = 0;
  let neverExecuted = 0;
  for (const tag of expected) {
    const n = counts.get(tag) ?? 0;
    if (n === 0) neverExecuted++;
    else if (n > 1) executedTwice++;
  }
  return { executedTwice, neverExecuted };
}

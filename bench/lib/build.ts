/**
 * Where the benchmark runs from. `npm run bench` (and `bench:cpu`, `bench:timeline`,
 * `bench:decoder`) compiles `src/`, `runtime/` and `bench/` with `tsc` into `.bench-build/` and
 * runs the JavaScript, as users run the published package: under `tsx`, esbuild's `keepNames`
 * wraps every named closure in a `__name` call (`Object.defineProperty` on the new function),
 * which costs compiled code nothing, and several such closures are made per message on the
 * message path (docs/BENCHMARKS.md, *Running it*). Run from source (`npx tsx bench/run.ts`) it
 * still works, measuring the source as tsx runs it.
 */
import { fileURLToPath } from "node:url";

/** Whether this is the compiled benchmark (`.bench-build/bench/...js`). */
export const COMPILED = import.meta.url.endsWith(".js");

/** The repository's root directory, as a URL ending in `/`. */
export const ROOT = new URL(COMPILED ? "../../../" : "../../", import.meta.url);

/** The file extension of the benchmark's and the library's own modules where it runs from. */
export const EXT = COMPILED ? "js" : "ts";

/** Node arguments that let a child process run one of those modules (tsx from source). */
export const MODULE_NODE_ARGS: readonly string[] = COMPILED ? [] : ["--import", "tsx"];

/** A path under the repository's root (results, package.json, node_modules), whichever way it runs. */
export function repoPath(path: string): string {
  return fileURLToPath(new URL(path, ROOT));
}

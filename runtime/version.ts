/** The version of this library, read once from its package.json (from source or from dist/). */
import { readFileSync } from "node:fs";

let cached: string | undefined;

export function libraryVersion(): string {
  if (cached !== undefined) return cached;
  cached = "unknown";
  for (const relative of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "academy-nats" && typeof pkg.version === "string") {
        cached = pkg.version;
        break;
      }
    } catch {
      // not there: try the next candidate
    }
  }
  return cached;
}

/**
 * Folders follow the direction of dependencies (STYLE.md): what users write (src/agent) and the
 * protocol (src/protocol) import no value from the layers above them, so the module graph has no
 * value-level cycle through them.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";

const SRC = new URL("../../src/", import.meta.url).pathname;

/** Value imports (not `import type`) of every .ts file in `folder`, as `file: specifier`. */
function valueImports(folder: string): string[] {
  const found: string[] = [];
  for (const file of readdirSync(join(SRC, folder)).filter((name) => name.endsWith(".ts"))) {
    const text = readFileSync(join(SRC, folder, file), "utf8");
    for (const match of text.matchAll(/^import\s+(?!type\s)[^;]*?from\s+"([^"]+)";/gms)) found.push(`${file}: ${match[1]}`);
  }
  return found;
}

describe("layering", () => {
  test.each([
    ["agent", /\.\.\/(exchange|engine|interceptors|manager|pool)\//],
    ["protocol", /\.\.\/(agent|exchange|engine|interceptors|manager|pool)\//],
    ["interceptors", /\.\.\/(agent|exchange|engine|manager|pool)\//],
    ["engine", /\.\.\/(manager|pool)\//],
  ])("src/%s imports no value from the layers above it", (folder, above) => {
    const imports = valueImports(folder);
    expect(imports.length).toBeGreaterThan(0);
    expect(imports.filter((line) => above.test(line))).toEqual([]);
  });
});

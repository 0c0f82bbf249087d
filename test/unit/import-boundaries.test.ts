/**
 * The import boundaries of docs/ARCHITECTURE.md, checked on every build: NATS stays inside
 * `src/exchange/nats/` (and the test fixture in `src/testing/`), and each layer imports only the
 * layers below it (type-only imports may point anywhere but into NATS).
 *
 * A small scan of import specifiers rather than dependency-cruiser: that tool parses TypeScript
 * through the TypeScript compiler's JavaScript API, which the TypeScript 7 (native) compiler this
 * project builds with does not ship; the codebase writes every import as a static
 * `import … from "…"`, `export … from "…"` or a literal `import("…")`, which a scan reads exactly.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), "../.."));

/** One import of a file: the specifier as written, where it resolves, and whether it is type-only. */
interface ImportEdge {
  readonly from: string;
  readonly specifier: string;
  /** Repository path for relative specifiers, else the bare specifier. */
  readonly target: string;
  readonly typeOnly: boolean;
}

const STATIC = /^\s*(import|export)\s+(type\s+)?(?:[^;]*?\s+from\s+)?["']([^"']+)["']/gm;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The imports of one source file (`path` relative to the repository root). */
export function importsOf(path: string, source: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  const resolve = (specifier: string): string =>
    specifier.startsWith(".") ? normalize(join(dirname(path), specifier)).replaceAll("\\", "/") : specifier;
  for (const m of source.matchAll(STATIC)) {
    const specifier = m[3]!;
    edges.push({ from: path, specifier, target: resolve(specifier), typeOnly: m[2] !== undefined });
  }
  for (const m of source.matchAll(DYNAMIC)) {
    edges.push({ from: path, specifier: m[1]!, target: resolve(m[1]!), typeOnly: false });
  }
  return edges;
}

/** Layers from the bottom up; a file may import (values) from its own layer and those below. */
const LAYERS: ReadonlyArray<readonly [name: string, prefixes: readonly string[]]> = [
  ["base", ["src/errors.ts", "src/identifiers.ts", "src/util/"]],
  ["protocol", ["src/protocol/"]],
  ["agent", ["src/agent/"]],
  // Pool records, the placement rules and the pool backend contract: pure data and interfaces,
  // below the exchanges that implement the backend.
  ["pool", ["src/pool/"]],
  // Agents' durable state and reminders: the records, their rules and the store contracts, which
  // each exchange implements.
  ["state", ["src/state/"]],
  // Interceptor contracts, the action scope and the built-in deadline interceptors.
  ["interceptors", ["src/interceptors/"]],
  ["exchange", ["src/exchange/"]],
  ["engine", ["src/engine/"]],
  ["manager", ["src/manager/"]],
  ["entry", ["src/index.ts", "src/testing/"]],
  ["runtime", ["runtime/"]],
];

function layerOf(path: string): number {
  return LAYERS.findIndex(([, prefixes]) => prefixes.some((p) => path === p || path.startsWith(p)));
}

/** Files that may use NATS directly. */
const NATS_INSIDE = ["src/exchange/nats/", "src/testing/"];
/** The curated public entry re-exports the NATS exchange factory (and holds no code). */
const NATS_REEXPORT = ["src/index.ts"];

/** Every boundary an import crosses wrongly, as a readable line. */
export function violations(edges: readonly ImportEdge[]): string[] {
  const found = new Set<string>();
  for (const edge of edges) {
    const inside = NATS_INSIDE.some((p) => edge.from.startsWith(p)) || NATS_REEXPORT.includes(edge.from);
    const intoNats = edge.target.startsWith("@nats-io/") || edge.target.startsWith("src/exchange/nats/");
    if (intoNats && !inside) {
      found.add(`${edge.from} imports ${edge.specifier}: NATS is used only inside src/exchange/nats/`);
      continue;
    }
    if (edge.typeOnly || !edge.specifier.startsWith(".")) continue;
    const from = layerOf(edge.from);
    const to = layerOf(edge.target);
    if (to < 0 && !edge.target.startsWith("src/") && !edge.target.startsWith("runtime/")) {
      found.add(`${edge.from} imports ${edge.specifier}: product code imports nothing outside src/ and runtime/`);
    } else if (from >= 0 && to > from) {
      found.add(`${edge.from} imports ${edge.specifier}: layer '${LAYERS[from]![0]}' may not import from layer '${LAYERS[to]![0]}' above it`);
    }
  }
  return [...found];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)).replaceAll("\\", "/"));
}

describe("import boundaries", () => {
  test("src/ and runtime/ keep NATS inside src/exchange/nats/ and import only layers below them", () => {
    const files = [...sourceFiles("src"), ...sourceFiles("runtime")];
    expect(files.length).toBeGreaterThan(40);
    const edges = files.flatMap((file) => importsOf(file, readFileSync(join(ROOT, file), "utf8")));
    expect(edges.length).toBeGreaterThan(200);
    expect(violations(edges)).toEqual([]);
    // A new folder takes its place in the layers (here and in docs/ARCHITECTURE.md) before it lands.
    expect(files.filter((file) => layerOf(file) < 0)).toEqual([]);
  });

  test("the scan sees every import form and reports a forbidden one", () => {
    const source = [
      'import { connect } from "@nats-io/transport-node";',
      'import type { NatsExchange } from "../exchange/nats/nats-exchange.ts";',
      'export { x } from "../engine/agent-engine.ts";',
      "const m = await import(\"../manager/manager.ts\");",
      'import type { Handle } from "../exchange/handle.ts";',
      'import {\n  a,\n  b,\n} from "./codec.ts";',
    ].join("\n");
    const edges = importsOf("src/protocol/messages.ts", source);
    expect(edges.map((e) => [e.target, e.typeOnly])).toEqual([
      ["@nats-io/transport-node", false],
      ["src/exchange/nats/nats-exchange.ts", true],
      ["src/engine/agent-engine.ts", false],
      ["src/exchange/handle.ts", true],
      ["src/protocol/codec.ts", false],
      ["src/manager/manager.ts", false],
    ]);
    expect(violations(edges)).toEqual([
      "src/protocol/messages.ts imports @nats-io/transport-node: NATS is used only inside src/exchange/nats/",
      "src/protocol/messages.ts imports ../exchange/nats/nats-exchange.ts: NATS is used only inside src/exchange/nats/",
      "src/protocol/messages.ts imports ../engine/agent-engine.ts: layer 'protocol' may not import from layer 'engine' above it",
      "src/protocol/messages.ts imports ../manager/manager.ts: layer 'protocol' may not import from layer 'manager' above it",
    ]);
    // Inside the NATS exchange, NATS imports are fine.
    expect(violations(importsOf("src/exchange/nats/nats-mailbox.ts", 'import { nanos } from "@nats-io/nats-core";'))).toEqual([]);
  });
});

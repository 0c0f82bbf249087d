/**
 * The project says Node >= 20 (package.json `engines`): every package an install brings in for
 * production must accept that range too, or every `npm install` warns `EBADENGINE`. The lock file
 * records each package's `engines`; this reads it. (`@nats-io/nuid` 3.0.0 declares Node >= 22 with
 * no code that needs it, so package.json pins 2.0.3 through `overrides`; CI runs the suite on
 * Node 20.)
 */
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";

type Version = readonly [number, number, number];

/** Parse `20`, `20.x`, `18.0.0`, `22.x.x` into a version (missing or `x` parts as 0). */
function parseVersion(text: string): Version {
  const parts = text.replace(/^v/, "").split(".");
  const num = (i: number): number => {
    const part = parts[i];
    if (part === undefined || part === "x" || part === "*") return 0;
    const n = Number(part);
    if (!Number.isInteger(n)) throw new Error(`cannot read version ${JSON.stringify(text)}`);
    return n;
  };
  return [num(0), num(1), num(2)];
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/**
 * Whether `version` satisfies an npm `engines` range made of `||` alternatives of space-separated
 * `>=`, `>`, `<=`, `<`, `^` comparators or bare versions. Anything else throws, so that an unknown
 * form fails the test instead of passing unread.
 */
export function satisfies(version: Version, range: string): boolean {
  return range.split("||").some((alternative) => {
    const tokens = alternative.trim().replace(/([<>]=?|\^)\s+/g, "$1").split(/\s+/).filter((t) => t !== "");
    if (tokens.length === 0) throw new Error(`empty range in ${JSON.stringify(range)}`);
    return tokens.every((token) => {
      const m = /^(>=|<=|>|<|\^|=)?(.+)$/.exec(token);
      if (m === null) throw new Error(`cannot read range ${JSON.stringify(range)}`);
      const bound = parseVersion(m[2]!);
      const c = compare(version, bound);
      switch (m[1]) {
        case ">=":
          return c >= 0;
        case ">":
          return c > 0;
        case "<=":
          return c <= 0;
        case "<":
          return c < 0;
        case "^":
          return c >= 0 && version[0] === bound[0];
        default:
          return m[2]!.includes("x") || m[2]!.split(".").length < 3 ? version[0] === bound[0] : c === 0;
      }
    });
  });
}

const root = new URL("../../", import.meta.url);
const pkg = JSON.parse(readFileSync(new URL("package.json", root), "utf8")) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(new URL("package-lock.json", root), "utf8")) as {
  packages: Record<string, { dev?: boolean; engines?: { node?: string } }>;
};

describe("supported Node versions", () => {
  test("the range reader reads the forms packages use", () => {
    expect(satisfies([20, 0, 0], ">= 22.x")).toBe(false);
    expect(satisfies([20, 0, 0], ">=18.0.0")).toBe(true);
    expect(satisfies([20, 0, 0], "^18 || ^20")).toBe(true);
    expect(satisfies([21, 0, 0], "^18 || ^20")).toBe(false);
    expect(satisfies([20, 0, 0], ">= 10.x")).toBe(true);
    expect(() => satisfies([20, 0, 0], "~20")).toThrow(/cannot read/);
  });

  test("every production dependency accepts the lowest Node version the project supports", () => {
    const lowest = parseVersion(/^>=\s*(\d+(?:\.\d+){0,2})$/.exec(pkg.engines.node)?.[1] ?? "");
    expect(lowest[0]).toBe(20);
    const refusing = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== "" && entry.dev !== true && entry.engines?.node !== undefined)
      .filter(([, entry]) => !satisfies(lowest, entry.engines!.node!))
      .map(([path, entry]) => `${path} (${entry.engines!.node})`);
    expect(refusing).toEqual([]);
  });
});

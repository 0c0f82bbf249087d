/**
 * deploy/edge stays what the edge tests run: every configuration is valid for nats-server, the hub
 * and each site have the domains the docs give them, and each leaf's remote denies exactly the
 * subjects the test topology denies (the rules the store-and-forward tests prove).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { findNatsServerBinary } from "../../../src/testing/index.ts";
import { DENY, SITES } from "../../support/edge.ts";

const read = (name: string): string => readFileSync(new URL(`../../../deploy/edge/${name}`, import.meta.url), "utf8");
const code = (text: string): string => text.replace(/(^|\s)#.*$/gm, "");
const list = (text: string, key: string): string[] =>
  [...(new RegExp(`${key}:\\s*\\[([^\\]]*)\\]`).exec(code(text))?.[1] ?? "").matchAll(/"([^"]+)"/g)].map((m) => m[1]!);

describe("deploy/edge", () => {
  const configs = ["hub.conf", "site-s1.conf", "site-s2.conf"];

  test("nats-server accepts every configuration", () => {
    const binary = findNatsServerBinary();
    expect(binary).toBeDefined();
    for (const name of configs) {
      const path = new URL(`../../../deploy/edge/${name}`, import.meta.url).pathname;
      const result = spawnSync(binary!, ["-t", "-c", path], { encoding: "utf8" });
      expect(result.status, `${name}: ${result.stderr}`).toBe(0);
    }
  });

  test("domains are the sites' and each leaf denies every site's subjects both ways", () => {
    expect(code(read("hub.conf"))).toMatch(new RegExp(`domain:\\s*${SITES.cloud}\\b`));
    expect(code(read("hub.conf"))).toMatch(/leafnodes\s*\{[^}]*listen:/);
    for (const site of ["s1", "s2"] as const) {
      const text = read(`site-${site}.conf`);
      expect(code(text)).toMatch(new RegExp(`domain:\\s*${SITES[site]}\\b`));
      expect(list(text, "deny_imports").sort()).toEqual([...DENY].sort());
      expect(list(text, "deny_exports").sort()).toEqual([...DENY].sort());
      expect(text).toContain(`--site ${site} --remote-site cloud:hub`);
    }
  });
});

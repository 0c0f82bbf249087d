/**
 * deploy/ cannot run here (no Docker engine, no Kubernetes), so this keeps it consistent with the
 * code instead: every option and environment variable it uses exists in the CLI, the names KEDA
 * watches are the ones the hosts create, and the stop grace periods outlast the drain deadline.
 */
import { readFileSync, readdirSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { natsLayout } from "../../src/index.ts";
import { CLI_ENV, CLI_OPTIONS } from "../../runtime/cli-options.ts";

const read = (path: string): string => readFileSync(new URL(`../../deploy/${path}`, import.meta.url), "utf8");
const compose = read("docker-compose.yml");
const k8s = readdirSync(new URL("../../deploy/k8s/", import.meta.url))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => read(`k8s/${f}`))
  .join("\n---\n");
/** Comments removed: they may mention options in prose. */
const code = (text: string): string => text.replace(/(^|\s)#.*$/gm, "");

describe("deploy/", () => {
  test("uses only options and environment variables the academy CLI has", () => {
    // Lines that run nats-server itself take its flags, not ours.
    const ours = code(compose + k8s)
      .split("\n")
      .filter((line) => !line.includes("nats-server"))
      .join("\n");
    const flags = new Set([...ours.matchAll(/(?:^\s*-\s*|[[,]\s*)"?--([a-z][a-z-]*)/gm)].map((m) => m[1]!));
    expect(flags.size).toBeGreaterThan(5);
    for (const flag of flags) expect(Object.keys(CLI_OPTIONS), `--${flag}`).toContain(flag);
    const envs = new Set([...code(compose + k8s).matchAll(/\bACADEMY_[A-Z_]+\b/g)].map((m) => m[0]));
    for (const env of envs) expect(Object.values(CLI_ENV), env).toContain(env);
    expect(read("Dockerfile")).toMatch(/ENTRYPOINT \["node", "dist\/runtime\/cli\.js"\]/);
  });

  test("KEDA watches the launch stream and pool consumer the hosts create", () => {
    const pool = /ACADEMY_POOL:\s*"?([A-Za-z0-9_-]+)/.exec(k8s)?.[1];
    expect(pool).toBeDefined();
    const layout = natsLayout("academy");
    expect(code(k8s)).toMatch(new RegExp(`stream:\\s*"?${layout.launchStream}"?`));
    expect(code(k8s)).toMatch(new RegExp(`consumer:\\s*"?${layout.poolConsumer(pool!)}"?`));
    expect(code(compose)).toContain(`- ${pool}`);
  });

  test("stop grace periods outlast the drain deadline", () => {
    const graceMs = (text: string): number[] =>
      [...code(text).matchAll(/--grace-ms"?(?:\s*,\s*|\s*\n\s*-\s*)"?(\d+)/g)].map((m) => Number(m[1]));
    const composeGrace = graceMs(compose);
    const k8sGrace = graceMs(k8s);
    expect(composeGrace.length).toBeGreaterThan(0);
    expect(k8sGrace.length).toBeGreaterThan(0);
    const stopSeconds = Number(/stop_grace_period:\s*(\d+)s/.exec(compose)?.[1]);
    const terminationSeconds = Number(/terminationGracePeriodSeconds:\s*(\d+)/.exec(k8s)?.[1]);
    for (const ms of composeGrace) expect(stopSeconds * 1000).toBeGreaterThan(ms);
    for (const ms of k8sGrace) expect(terminationSeconds * 1000).toBeGreaterThan(ms);
  });
});

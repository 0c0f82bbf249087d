/**
 * Runtime hosts as child processes: `academy host` (runtime/cli.ts through tsx) with JSON logs on
 * stdout, which tests read to learn the host's id and to wait for events.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { spawnScript } from "./child-agent.ts";
import type { ChildAgent } from "./child-agent.ts";

export const CLI = fileURLToPath(new URL("../../runtime/cli.ts", import.meta.url));
export const HOST_AGENTS = fileURLToPath(new URL("../fixtures/host-agents.ts", import.meta.url));

export interface HostProcess extends ChildAgent {
  readonly hostId: string;
  /** Parsed JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
}

export interface SpawnHostOptions {
  servers: string;
  pool?: string;
  capacity?: number;
  modules?: string[];
  prefix?: string;
  heartbeatMs?: number;
  hostTtlMs?: number;
  graceMs?: number;
  name?: string;
  extra?: string[];
}

/** Start a host and wait until it serves. */
export async function spawnHost(options: SpawnHostOptions): Promise<HostProcess> {
  const args = ["host", "--servers", options.servers, "--pool", options.pool ?? "default", "--log-level", "debug"];
  for (const module of options.modules ?? [HOST_AGENTS]) args.push("--module", module);
  if (options.capacity !== undefined) args.push("--capacity", String(options.capacity));
  if (options.prefix !== undefined) args.push("--prefix", options.prefix);
  if (options.heartbeatMs !== undefined) args.push("--heartbeat-ms", String(options.heartbeatMs));
  if (options.hostTtlMs !== undefined) args.push("--host-ttl-ms", String(options.hostTtlMs));
  if (options.graceMs !== undefined) args.push("--grace-ms", String(options.graceMs));
  if (options.name !== undefined) args.push("--name", options.name);
  args.push(...(options.extra ?? []));
  const child = spawnScript(CLI, args);
  let ready: string;
  try {
    ready = await child.waitFor(/"msg":"host ready"/, 30_000);
  } catch (error) {
    await child.kill();
    throw error;
  }
  const hostId = (JSON.parse(ready) as { hostId: string }).hostId;
  return {
    ...child,
    hostId,
    logs: () =>
      child.lines.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
  };
}

/** Run an `academy` command to completion (synchronously); returns exit code (null: killed by `signal`) and output. */
export function runCli(args: string[]): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number } {
  const started = Date.now();
  const result = spawnSync(process.execPath, ["--import", "tsx", CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr, ms: Date.now() - started };
}

/** Run an `academy` command that must succeed; its stdout. A failure names the exit code, signal and stderr. */
export function runCliOk(args: string[]): string {
  const result = runCli(args);
  if (result.status !== 0) {
    throw new Error(`academy ${args.join(" ")} exited with ${result.status ?? result.signal} after ${result.ms} ms; stderr: ${result.stderr}; stdout: ${result.stdout}`);
  }
  return result.stdout;
}

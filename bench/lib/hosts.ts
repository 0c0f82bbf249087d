/**
 * Runtime hosts as child processes for the benchmarks: `academy host` (runtime/cli, compiled as
 * the benchmark is, bench/lib/build.ts), JSON logs at info level on stdout. A host serves the agent classes of bench/agents.ts.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { EXT, MODULE_NODE_ARGS } from "./build.ts";

const CLI = fileURLToPath(new URL(`../../runtime/cli.${EXT}`, import.meta.url));
export const BENCH_AGENTS = fileURLToPath(new URL(`../agents.${EXT}`, import.meta.url));

export interface BenchHostOptions {
  readonly servers: string;
  readonly prefix: string;
  readonly pool?: string;
  readonly capacity?: number;
  readonly heartbeatMs?: number;
  readonly hostTtlMs?: number;
  /** Extra `academy host` arguments. */
  readonly extra?: readonly string[];
  /** Extra `node` arguments (e.g. `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
}

export interface BenchHost {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly hostId: string;
  /** Every stdout line so far. */
  readonly lines: readonly string[];
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM (drain), and wait for the exit; SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
}

/** Hosts still running: killed if the bench process exits without stopping them (a crash). */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Start a host and wait until it serves. */
export async function startHost(options: BenchHostOptions): Promise<BenchHost> {
  const args = ["host", "--servers", options.servers, "--prefix", options.prefix, "--pool", options.pool ?? "default", "--module", BENCH_AGENTS, "--log-level", "info"];
  if (options.capacity !== undefined) args.push("--capacity", String(options.capacity));
  if (options.heartbeatMs !== undefined) args.push("--heartbeat-ms", String(options.heartbeatMs));
  if (options.hostTtlMs !== undefined) args.push("--host-ttl-ms", String(options.hostTtlMs));
  args.push(...(options.extra ?? []));
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...extraNodeArgs(), ...MODULE_NODE_ARGS, CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let stderr = "";
  let buffered = "";
  live.add(child);
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  void exited.then(() => live.delete(child));
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`host did not start within 30 s; stderr: ${stderr}`)), 30_000);
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (line.includes('"msg":"host ready"')) {
          clearTimeout(timer);
          resolve(line);
        }
      }
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`host exited before it was ready; stderr: ${stderr}`));
    });
  });
  let line: string;
  try {
    line = await ready;
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid: child.pid!,
    hostId: (JSON.parse(line) as { hostId: string }).hostId,
    lines,
    async kill() {
      if (running()) child.kill("SIGKILL");
      await exited;
    },
    async stop(timeoutMs = 30_000) {
      if (running()) child.kill("SIGTERM");
      const timer = setTimeout(() => running() && child.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resident set size of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (match === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** CPU time (user + system) a process has used so far, in milliseconds (Linux /proc). */
export function cpuTimeMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may contain spaces) start at the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

/**
 * Node flags for every bench host from `BENCH_HOST_NODE_ARGS` (space-separated), e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile the hosts (Node refuses `--cpu-prof` in NODE_OPTIONS).
 */
function extraNodeArgs(): string[] {
  return (process.env.BENCH_HOST_NODE_ARGS ?? "").split(" ").filter(Boolean);
}

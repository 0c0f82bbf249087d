/**
 * Runs a TypeScript script in a child process (through tsx) and lets the test wait for lines it
 * prints: test/fixtures/agent-process.ts ({@link spawnChildAgent}) or the `academy` CLI
 * (test/support/host-process.ts).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../fixtures/agent-process.ts", import.meta.url));

export interface ChildAgent {
  readonly child: ChildProcess;
  /** Every stdout line so far. */
  readonly lines: readonly string[];
  /** Send a signal (no-op once it exited). */
  signal(signal: NodeJS.Signals): void;
  /** Resolve with the first output line matching `pattern` (from now or already printed). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGKILL the process and wait for it to exit. */
  kill(): Promise<void>;
  /** Resolves with the exit code when the process exits. */
  readonly exited: Promise<number | null>;
}

export function spawnChildAgent(args: string[]): ChildAgent {
  return spawnScript(SCRIPT, args);
}

/** Run `script` (a .ts file) with `args` in a child process. */
export function spawnScript(script: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildAgent {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
  const lines: string[] = [];
  let stderr = "";
  const listeners = new Set<() => void>();
  let buffered = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    lines.push(...parts);
    for (const listener of [...listeners]) listener();
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    signal(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise<string>((resolve, reject) => {
        const check = (): void => {
          const line = lines.find((l) => pattern.test(l));
          if (line !== undefined) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(line);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`child did not print ${pattern} within ${timeoutMs} ms; stdout: ${lines.join(" | ")}; stderr: ${stderr}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

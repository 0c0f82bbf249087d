/**
 * What the `academy` command prints, and its exit codes. Every line goes through {@link Output}
 * (never `console.*`), every error through {@link reportError}, which redacts URL credentials and
 * maps the error to an exit code scripts can test:
 *
 * | code | meaning |
 * | --- | --- |
 * | 0 | done (a host: drained) |
 * | 1 | an error at run time: the action raised, NATS unreachable, a forced stop |
 * | 2 | bad usage or configuration (unknown option, bad value, unreadable credentials file) |
 * | 3 | not found: no such agent, mailbox, dead letter, or no exchange under the prefix; or the agent is terminated |
 * | 4 | the NATS server refused the credentials |
 * | 5 | timed out waiting for an agent |
 */
import { redactUrls } from "../src/util/redact.ts";
import {
  AcademyError,
  AuthenticationError,
  BadEntityIdError,
  ExchangeNotFoundError,
  InvalidConfigError,
  MailboxTerminatedError,
  RequestTimeoutError,
  WaitTimeoutError,
} from "../src/index.ts";

/** Exit codes of the `academy` command (see the module's description). */
export const ExitCode = {
  Ok: 0,
  Failed: 1,
  Usage: 2,
  NotFound: 3,
  Authentication: 4,
  Timeout: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A problem with the command line or its configuration (exit code 2). */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Something named on the command line does not exist (exit code 3). */
export class NotFoundError extends Error {
  override readonly name = "NotFoundError";
}

/** Where the command writes: stdout for results, stderr for errors. Replaceable in tests. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

/** The process's stdout and stderr. */
export const processOutput: Output = {
  out: (text) => void process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
  err: (text) => void process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
};

/** The exit code for an error (see the module's description). */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof UsageError || error instanceof InvalidConfigError) return ExitCode.Usage;
  if (error instanceof NotFoundError || error instanceof ExchangeNotFoundError || error instanceof BadEntityIdError) return ExitCode.NotFound;
  if (error instanceof MailboxTerminatedError) return ExitCode.NotFound;
  if (error instanceof AuthenticationError) return ExitCode.Authentication;
  if (error instanceof RequestTimeoutError || error instanceof WaitTimeoutError) return ExitCode.Timeout;
  return ExitCode.Failed;
}

/** Print `error` the way the command reports errors, and return its exit code. */
export function reportError(output: Output, error: unknown, json: boolean): ExitCode {
  const code = exitCodeOf(error);
  const e = error instanceof Error ? error : new Error(String(error));
  const message = redactUrls(e.message);
  if (json) {
    output.err(
      JSON.stringify({
        error: { name: e.name, code: e instanceof AcademyError ? e.code : undefined, message, ...(e instanceof AcademyError ? e.details() : {}) },
        exitCode: code,
      }),
    );
  } else if (code === ExitCode.Usage || e instanceof NotFoundError) {
    output.err(`academy: ${message}`);
  } else {
    output.err(`academy: ${e.name}${e instanceof AcademyError ? ` [${e.code}]` : ""}: ${message}`);
  }
  return code;
}

/**
 * A value as JSON text: what an action returned or an agent described. CBOR values JSON has no
 * form for are written as `{"$bytes": base64}` (bytes), objects (maps), arrays (sets), strings
 * (bigints) and ISO strings (dates).
 */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(
    value,
    function replacer(this: unknown, key: string, v: unknown) {
      const raw = (this as Record<string, unknown>)[key];
      if (raw instanceof Date) return raw.toISOString();
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString("base64") };
      if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), x]));
      if (v instanceof Set) return [...v];
      if (v instanceof Error) return { name: v.name, message: v.message };
      return v;
    },
    indent,
  ) ?? "null";
}

/** Rows as an aligned plain-text table (columns in order; missing values as `-`). */
export function formatTable<T extends object>(rows: readonly T[], columns: ReadonlyArray<readonly [string, (row: T) => unknown]>): string {
  const cells = rows.map((row) =>
    columns.map(([, get]) => {
      const value = get(row);
      return value === undefined || value === null || value === "" ? "-" : String(value);
    }),
  );
  const widths = columns.map(([title], i) => Math.max(title.length, ...cells.map((c) => c[i]!.length)));
  const line = (values: readonly string[]): string => values.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(columns.map(([title]) => title)), ...cells.map(line)].join("\n");
}

/** Print rows as JSON (`json`) or as a table (`no <what>` when empty). */
export function printRows<T extends object>(
  output: Output,
  json: boolean,
  rows: readonly T[],
  what: string,
  columns: ReadonlyArray<readonly [string, (row: T) => unknown]>,
): void {
  if (json) output.out(toJson(rows));
  else output.out(rows.length === 0 ? `no ${what}` : formatTable(rows, columns));
}

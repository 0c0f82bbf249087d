/**
 * The one converter between JavaScript errors and the failure shape that crosses the wire.
 */
import { AcademyError, ErrorGroup, RemoteError, errorClasses } from "../errors.ts";

/** An exception on the wire. `type` is the error's `name`. */
export interface Failure {
  readonly type: string;
  readonly message: string;
  readonly code?: string | undefined;
  /** The stack where the error was raised (agent side), as text. */
  readonly stack?: string | undefined;
  readonly cause?: Failure | undefined;
  /** Context fields of the error (for this library's errors: `agentId`, `size`, `limit`, ...). */
  readonly data?: Record<string, unknown> | undefined;
  /** Member errors of an error group. */
  readonly errors?: readonly Failure[] | undefined;
}

const MAX_CAUSE_DEPTH = 8;

const builtinErrors: ReadonlyMap<string, ErrorConstructor> = new Map<string, ErrorConstructor>([
  ["Error", Error],
  ["TypeError", TypeError],
  ["RangeError", RangeError],
  ["SyntaxError", SyntaxError],
  ["ReferenceError", ReferenceError],
  ["EvalError", EvalError],
  ["URIError", URIError],
]);

export function isFailure(value: unknown): value is Failure {
  if (typeof value !== "object" || value === null) return false;
  const f = value as Record<string, unknown>;
  return typeof f.type === "string" && typeof f.message === "string";
}

/** Error (or any thrown value) to its wire shape. */
export function toFailure(error: unknown, depth = 0): Failure {
  if (!(error instanceof Error)) {
    return { type: "Error", message: typeof error === "string" ? error : safeString(error) };
  }
  const code = (error as { code?: unknown }).code;
  const cause = error.cause !== undefined && depth < MAX_CAUSE_DEPTH ? toFailure(error.cause, depth + 1) : undefined;
  const members =
    error instanceof ErrorGroup || error instanceof AggregateError
      ? (error as { errors: readonly unknown[] }).errors.map((e) => toFailure(e, depth + 1))
      : undefined;
  const data = error instanceof AcademyError ? withoutUndefined(error.details()) : undefined;
  return {
    type: error.name,
    message: error.message,
    ...(typeof code === "string" ? { code } : {}),
    ...(error.stack !== undefined ? { stack: error.stack } : {}),
    ...(cause !== undefined ? { cause } : {}),
    ...(data !== undefined && Object.keys(data).length > 0 ? { data } : {}),
    ...(members !== undefined ? { errors: members } : {}),
  };
}

/**
 * Wire shape to an error with the same `name` and `message`: this library's errors and JS built-in
 * errors are rebuilt as their own classes; anything else becomes a {@link RemoteError} whose
 * `name` is the remote name. The agent-side stack is kept as `remoteStack` and leads `stack`.
 */
export function fromFailure(failure: Failure, depth = 0): Error {
  const cause =
    failure.cause !== undefined && depth < MAX_CAUSE_DEPTH && isFailure(failure.cause)
      ? fromFailure(failure.cause, depth + 1)
      : undefined;
  const members = Array.isArray(failure.errors)
    ? failure.errors.filter(isFailure).map((f) => fromFailure(f, depth + 1))
    : undefined;
  const options = { ...(failure.data ?? {}), ...(cause !== undefined ? { cause } : {}) };
  let error: Error;
  const academyClass = errorClasses.get(failure.type);
  const builtin = builtinErrors.get(failure.type);
  if (academyClass !== undefined) {
    error = new academyClass(failure.message, members !== undefined ? { ...options, errors: members } : options);
  } else if (failure.type === "AggregateError") {
    error = new AggregateError(members ?? [], failure.message, cause !== undefined ? { cause } : undefined);
  } else if (builtin !== undefined) {
    error = new builtin(failure.message, cause !== undefined ? { cause } : undefined);
    if (failure.code !== undefined) (error as { code?: string }).code = failure.code;
  } else {
    error = new RemoteError(failure.message, { cause, code: failure.code });
    (error as { name: string }).name = failure.type;
  }
  if (typeof failure.stack === "string") {
    Object.defineProperty(error, "remoteStack", { value: failure.stack, enumerable: false, writable: true });
    const localFrames = (error.stack ?? "").split("\n").slice(1).join("\n");
    error.stack = `${failure.stack}\n    --- raised remotely; awaited at ---\n${localFrames}`;
  }
  return error;
}

function withoutUndefined(record: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) if (v !== undefined) out[k] = v;
  return out;
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

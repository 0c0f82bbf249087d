/**
 * NATS errors, classified and turned into this library's typed errors in one place.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { TimeoutError } from "@nats-io/nats-core";
import { ClientClosedError, ExchangeUnavailableError, PermissionDeniedError } from "../../errors.ts";
import { NATS_RETRY, nextRetryDelayMs } from "../../util/backoff.ts";
import type { RetryPolicy } from "../../util/backoff.ts";

/** Names of nats.js errors that mean "try again shortly" (server restarting, leader election). */
const TRANSIENT_NAMES: ReadonlySet<string> = new Set([
  "TimeoutError",
  "NoResponders",
  "NoRespondersError",
  "JetStreamNotEnabled",
  "ConnectionError",
  "RequestError",
]);

/** nats.js errors that mean our own connection is closed for good. */
const CLOSED_NAMES: ReadonlySet<string> = new Set(["ClosedConnectionError", "DrainingConnectionError"]);

/** JetStream API status codes that are transient (503: no leader / unavailable; 408: timeout). */
const TRANSIENT_STATUS: ReadonlySet<number> = new Set([503, 408]);

/**
 * The server's refusal of a publish or subscription (nats.js's `PermissionViolationError`) in
 * `error` or its chain of causes: a request to a subject the user may not publish to fails with a
 * `RequestError` caused by one.
 */
export function permissionViolation(error: unknown): { subject: string; operation: string; message: string } | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e.name === "PermissionViolationError") {
      const { subject, operation } = e as { subject?: unknown; operation?: unknown };
      return {
        subject: typeof subject === "string" ? subject : "",
        operation: operation === "subscription" ? "subscribe" : "publish",
        message: e.message,
      };
    }
  }
  return undefined;
}

/** Whether a NATS error is worth retrying with the same message id. */
export function isTransientNatsError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (permissionViolation(error) !== undefined) return false;
  if (TRANSIENT_NAMES.has(error.name)) return true;
  const status = (error as { status?: unknown }).status;
  if (error.name === "JetStreamApiError" && typeof status === "number" && TRANSIENT_STATUS.has(status)) return true;
  const cause = (error as { cause?: unknown }).cause;
  return cause !== undefined && cause !== error && isTransientNatsError(cause);
}

/** Whether the error says our connection is closed. */
export function isClosedNatsError(error: unknown): boolean {
  return error instanceof Error && CLOSED_NAMES.has(error.name);
}

/**
 * The JetStream API error codes (`err_code`) this library acts on: nats.js's own table
 * (`JetStreamApiCodes`). Every check of a server error goes through the predicates below, by code,
 * never by message text.
 */
export const JsApiCode = {
  ...JetStreamApiCodes,
  /** `JSStreamMsgDeleteFailedF`: a delete of a message the stream does not have (nats-server's error table). */
  StreamMsgDeleteFailed: 10057,
  /** `JSConsumerNameExistErr`: a durable of that name exists with another configuration. */
  ConsumerNameExists: 10013,
  /** `JSConsumerAlreadyExists` (later servers' code for the same). */
  ConsumerAlreadyExists: 10148,
} as const;

/** Whether `error` is a JetStream API error with one of `codes`. */
export function isJsApiError(error: unknown, ...codes: number[]): boolean {
  return error instanceof JetStreamApiError && codes.includes(error.code);
}

/** The consumer does not exist. */
export function isConsumerNotFound(error: unknown): boolean {
  return isJsApiError(error, JsApiCode.ConsumerNotFound);
}

/** A consumer of that name exists with another configuration (another process made it first). */
export function isConsumerExists(error: unknown): boolean {
  return isJsApiError(error, JsApiCode.ConsumerNameExists, JsApiCode.ConsumerAlreadyExists);
}

/** The stream has no such message (a read or delete of a sequence that is not there). */
export function isNoMessageFound(error: unknown): boolean {
  return isJsApiError(error, JsApiCode.NoMessageFound, JsApiCode.StreamMsgDeleteFailed);
}

/** The stream does not exist. */
export function isStreamNotFound(error: unknown): boolean {
  return isJsApiError(error, JsApiCode.StreamNotFound);
}

/**
 * A compare-and-set write lost: the subject (KV key) is not at the expected revision, or exists
 * already for a create.
 */
export function isWrongLastSequence(error: unknown): boolean {
  return isJsApiError(error, JsApiCode.StreamWrongLastSequence, JsApiCode.StreamWrongLastSequenceUnknown);
}

/** Options of {@link withNatsRetry}. */
export interface RetryOptions {
  /** Give up after this many ms of transient failures. */
  readonly windowMs: number;
  /** What the operation is (for error messages). */
  readonly what: string;
  /** Subject involved, if any (for error context). */
  readonly subject?: string;
  /**
   * Once aborted, no further attempt starts: the wait for the next one ends at once with
   * `ClientClosedError` (the owner of the operation is closing). The attempt in flight runs on.
   */
  readonly signal?: AbortSignal;
}

/**
 * Run `operation`, retrying transient NATS failures with backoff (25 ms doubling to 1 s) for up to
 * `windowMs`. Errors are mapped: closed connection to `ClientClosedError`, a permission the user
 * lacks to `PermissionDeniedError` (not retried), exhausted retries to `ExchangeUnavailableError`;
 * others pass through unchanged.
 */
export function withNatsRetry<T>(operation: () => Promise<T>, options: RetryOptions): Promise<T> {
  // The first attempt is the common case (every publish on the message path): its promise is
  // returned as it is, with no async frame, policy object or await until it fails.
  const startedAt = Date.now();
  let first: Promise<T>;
  try {
    first = operation();
  } catch (error) {
    first = Promise.reject(error);
  }
  return first.catch((error: unknown) => retryAfterFailure(operation, options, startedAt, error));
}

/**
 * The attempts after a failed first one (see {@link withNatsRetry}), for an operation whose first
 * attempt was made by other means (a publish that hands its failure to a recovery: js-publisher.ts);
 * `startedAt` is when that first attempt began (`Date.now()`).
 */
export async function retryAfterFailure<T>(operation: () => Promise<T>, options: RetryOptions, startedAt: number, firstError: unknown): Promise<T> {
  const policy: RetryPolicy = { ...NATS_RETRY, windowMs: options.windowMs };
  let error = firstError;
  for (let attempt = 0; ; attempt++) {
    if (isClosedNatsError(error)) {
      throw new ClientClosedError(`NATS connection closed during ${options.what}`, { cause: error });
    }
    const denied = permissionViolation(error);
    if (denied !== undefined) {
      throw new PermissionDeniedError(`NATS refused ${options.what}: ${denied.message}`, {
        subject: denied.subject,
        operation: denied.operation,
        cause: error,
      });
    }
    if (!isTransientNatsError(error)) throw error;
    const delayMs = nextRetryDelayMs(policy, attempt, Date.now() - startedAt);
    if (delayMs === undefined) {
      throw new ExchangeUnavailableError(
        `NATS did not answer ${options.what} within ${options.windowMs} ms: ${(error as Error).message}`,
        { cause: error, subject: options.subject },
      );
    }
    const signal = options.signal;
    if (signal === undefined) await sleep(delayMs);
    else {
      try {
        if (signal.aborted) throw signal.reason;
        await sleep(delayMs, undefined, { signal });
      } catch {
        throw new ClientClosedError(`Closed during ${options.what}`, { cause: error });
      }
    }
    try {
      return await operation();
    } catch (next) {
      error = next;
    }
  }
}

/**
 * `work`, or nats.js's `TimeoutError` (transient: {@link withNatsRetry} retries it) if it has not
 * settled within `ms`. For consumers that may stop delivering under load instead of failing.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError()), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Deadlines, the interceptors every exchange runs by default. A caller's `timeoutMs` becomes an
 * absolute deadline in the request's `academy-deadline` header: the time by which the agent must
 * stop working on the request. It is the caller's own give-up time plus a *cancel window* (1 s by
 * default): a caller that gives up sends a cancel request, and the window lets that cancel reach
 * the agent before its deadline stops it. An action that calls other agents passes on the earlier
 * of its own deadline and each call's (so a deadline only ever shrinks along a chain of calls), and
 * the call gives up one cancel window before that deadline, which is when the first caller gives
 * up. An agent never works past its caller's deadline: an action dequeued after it is answered
 * with `RequestTimeoutError` without running, and a running action's signal aborts when it passes.
 *
 * Deadlines are wall-clock times (ms since the Unix epoch), so they assume the clocks of callers
 * and agents agree (NTP keeps them within milliseconds); an agent whose clock runs ahead stops
 * that much early, one whose clock runs behind that much late. Each caller still gives up by its
 * own clock.
 */
import { InvalidConfigError, RequestTimeoutError } from "../errors.ts";
import type { MessageHeaders } from "../protocol/headers.ts";
import type { ActionRequest, ResponseMessage } from "../protocol/messages.ts";
import { timerDelay } from "../util/timers.ts";
import { currentAction } from "./action-scope.ts";
import type { ActionInput, ActionNext, AgentInterceptor } from "./agent-interceptor.ts";
import type { CallerInterceptor, OutboundRequestInput, OutboundRequestNext } from "./caller-interceptor.ts";

/** The header that carries a request's deadline: ms since the Unix epoch (UTC), as decimal text. */
export const DEADLINE_HEADER = "academy-deadline";

const DEADLINE_TEXT = /^[0-9]{1,16}$/;

/**
 * The deadline in `headers`, in ms since the Unix epoch; `undefined` when there is none (or its
 * value is not a decimal integer, which is ignored).
 */
export function readDeadline(headers: MessageHeaders | undefined): number | undefined {
  const text = headers?.[DEADLINE_HEADER];
  return text !== undefined && DEADLINE_TEXT.test(text) ? Number(text) : undefined;
}

/**
 * The deadline of the action running in the current async context (ms since the Unix epoch), or
 * `undefined` outside actions and for requests without one. Calls made from here on are bound by it.
 */
export function currentDeadline(): number | undefined {
  return readDeadline(currentAction()?.headers);
}

/** How long before a request's deadline the library's callers give up (and send their cancel), in ms. */
export const DEFAULT_CANCEL_WINDOW_MS = 1000;

/** Caller side: the request's deadline from its timeout, the calling action's and any set already. */
class CallerDeadlines implements CallerInterceptor {
  readonly #windowMs: number;

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  outboundRequest(input: OutboundRequestInput, next: OutboundRequestNext): Promise<ResponseMessage> {
    const inherited = currentDeadline();
    const preset = readDeadline(input.headers);
    const timeoutMs = input.timeoutMs;
    if (inherited === undefined && preset === undefined && timeoutMs === undefined) return next(input);
    const now = Date.now();
    let deadline = timeoutMs === undefined ? Infinity : Math.ceil(now + timeoutMs) + this.#windowMs;
    if (inherited !== undefined && inherited < deadline) deadline = inherited;
    if (preset !== undefined && preset < deadline) deadline = preset;
    input.headers[DEADLINE_HEADER] = String(deadline);
    // Give up one cancel window before the deadline: what the caller asked for, or less.
    const giveUpMs = Math.max(0, deadline - this.#windowMs - now);
    if (timeoutMs === undefined || giveUpMs < timeoutMs) input.timeoutMs = giveUpMs;
    return next(input);
  }
}

/** Agent side: refuse an action dequeued past its deadline; abort its signal when the deadline passes. */
function action(input: ActionInput, next: ActionNext): Promise<unknown> {
  const deadline = readDeadline(input.request.headers);
  if (deadline === undefined) return next(input);
  const remainingMs = deadline - Date.now();
  if (remainingMs <= 0) return Promise.reject(deadlinePassed(input.request, deadline, "before it could run"));
  return runBefore(input, next, deadline, remainingMs);
}

async function runBefore(input: ActionInput, next: ActionNext, deadline: number, remainingMs: number): Promise<unknown> {
  const watch = new DeadlineWatch(input.signal, input.request, deadline, remainingMs);
  input.signal = watch.signal;
  try {
    return await next(input);
  } finally {
    watch.dispose();
  }
}

function deadlinePassed(request: ActionRequest, deadline: number, when: string): RequestTimeoutError {
  return new RequestTimeoutError(
    `Action '${request.action}' on ${request.dest} passed its caller's deadline (${new Date(deadline).toISOString()}) ${when}`,
    { agentId: request.dest, operation: request.action },
  );
}

const ONCE = Object.freeze({ once: true });

function expire(watch: DeadlineWatch): void {
  watch.expire();
}

/**
 * A signal that aborts when the action's own signal does, or when the deadline passes (with a
 * `RequestTimeoutError`). Its own listener and timer: no closure per action.
 */
class DeadlineWatch {
  readonly #controller = new AbortController();
  readonly #source: AbortSignal;
  readonly #request: ActionRequest;
  readonly #deadline: number;
  #timer: NodeJS.Timeout;

  constructor(source: AbortSignal, request: ActionRequest, deadline: number, remainingMs: number) {
    this.#source = source;
    this.#request = request;
    this.#deadline = deadline;
    if (source.aborted) this.#controller.abort(source.reason);
    else source.addEventListener("abort", this, ONCE);
    this.#timer = setTimeout(expire, timerDelay(remainingMs), this);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The action's own signal aborted (cancel, shutdown). */
  handleEvent(): void {
    this.#controller.abort(this.#source.reason);
  }

  /** The timer fired: abort, unless the wall clock has not reached the deadline yet. */
  expire(): void {
    // Node reads its timer clock once per loop turn, so a timer can fire a little early.
    const remainingMs = this.#deadline - Date.now();
    if (remainingMs > 0) {
      this.#timer = setTimeout(expire, timerDelay(remainingMs), this);
      return;
    }
    this.#controller.abort(deadlinePassed(this.#request, this.#deadline, "while it ran"));
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#source.removeEventListener("abort", this);
  }
}

/** Options of {@link deadlineInterceptors}. */
export interface DeadlineOptions {
  /**
   * How long before the deadline it sends a caller gives up (and sends its cancel request), in ms:
   * a request made with `timeoutMs` carries the deadline now + `timeoutMs` + this.
   * @defaultValue 1000 ({@link DEFAULT_CANCEL_WINDOW_MS})
   */
  cancelWindowMs?: number;
}

const AGENT_DEADLINES: AgentInterceptor = Object.freeze({ action });
const DEFAULT_DEADLINES = Object.freeze({ caller: new CallerDeadlines(DEFAULT_CANCEL_WINDOW_MS) as CallerInterceptor, agent: AGENT_DEADLINES });

/**
 * The deadline interceptors, one per side. Exchange factories put them first (outermost) unless
 * created with `deadlines: false`; list these yourself to place them elsewhere or to choose
 * another cancel window.
 *
 * - Caller side (`outboundRequest`): sets `academy-deadline` to the earliest of now plus the
 *   call's `timeoutMs` plus the cancel window, the deadline of the action making the call
 *   ({@link currentDeadline}), and a deadline an earlier interceptor set; and makes the call give
 *   up one cancel window before that deadline (its `timeoutMs` shrinks to match when that is
 *   sooner than asked).
 * - Agent side (`action`): an action whose deadline has passed when it is dequeued is answered
 *   with `RequestTimeoutError` and does not run; otherwise its signal aborts at the deadline,
 *   with a `RequestTimeoutError` as its reason. Only actions: pings, cancels and shutdowns are
 *   never refused for a deadline.
 * @throws {InvalidConfigError} when `cancelWindowMs` is not a non-negative number.
 */
export function deadlineInterceptors(options: DeadlineOptions = {}): { readonly caller: CallerInterceptor; readonly agent: AgentInterceptor } {
  const windowMs = options.cancelWindowMs;
  if (windowMs === undefined) return DEFAULT_DEADLINES;
  if (typeof windowMs !== "number" || !Number.isFinite(windowMs) || windowMs < 0) {
    throw new InvalidConfigError(`cancelWindowMs must be a non-negative number of ms (got ${String(windowMs)})`, { option: "cancelWindowMs" });
  }
  return Object.freeze({ caller: new CallerDeadlines(windowMs), agent: AGENT_DEADLINES });
}

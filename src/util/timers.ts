/**
 * Node's timers take a 32-bit signed delay: a longer one (or `Infinity`) fires after 1 ms, with a
 * `TimeoutOverflowWarning`. Every timer whose delay comes from a caller's option or a deadline goes
 * through {@link timerDelay}; a wait longer than {@link MAX_TIMER_MS} (24.8 days) re-arms or checks
 * the clock when it fires.
 */

/** The longest delay a Node timer waits: 2^31 - 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `ms` as a timer's delay: at least 0, at most {@link MAX_TIMER_MS}. */
export function timerDelay(ms: number): number {
  return ms > MAX_TIMER_MS ? MAX_TIMER_MS : ms > 0 ? ms : 0;
}

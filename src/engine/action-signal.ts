/**
 * An action's abort signal, made when something first reads it. Most actions finish without
 * anything looking at their signal, and an `AbortController` with its `AbortSignal` (an
 * `EventTarget`) costs a few µs and several objects per call on the message path
 * (docs/BENCHMARKS.md section 1). Aborting before the first read gives an aborted signal when it
 * is read; aborting after it aborts the signal already handed out, as a controller does.
 */
export class ActionSignal {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  /** The signal (made on first read). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Abort with `reason` (later calls do nothing, as with `AbortController.abort`). */
  abort(reason: unknown): void {
    if (this.#controller !== undefined) {
      this.#controller.abort(reason);
      return;
    }
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
  }
}

/** Something that holds a signal, read when needed: an {@link ActionSignal}, or an interceptor's `ActionInput`. */
export interface SignalSource {
  readonly signal: AbortSignal;
}

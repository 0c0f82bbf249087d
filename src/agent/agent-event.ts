/**
 * A settable flag an agent can wait on; `@event("prop")` handlers run each time it is set.
 * The TypeScript counterpart of the `asyncio.Event` Academy's `@event` waits on.
 */
export class AgentEvent {
  #set = false;
  #waiters: Array<() => void> = [];

  /** Whether the event is set. */
  get isSet(): boolean {
    return this.#set;
  }

  /** Set the event, waking every waiter. */
  set(): void {
    this.#set = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Clear the event. */
  clear(): void {
    this.#set = false;
  }

  /**
   * Resolve once the event is set (at once if it already is).
   * @returns `true` when set, `false` if `signal` aborted first.
   */
  wait(signal?: AbortSignal): Promise<boolean> {
    if (this.#set) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const onAbort = (): void => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        resolve(false);
      };
      const wake = (): void => {
        signal?.removeEventListener("abort", onAbort);
        resolve(true);
      };
      this.#waiters.push(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

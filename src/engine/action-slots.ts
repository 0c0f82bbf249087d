/**
 * Concurrency slots of one agent's actions (`maxConcurrentActions`): a counting semaphore whose
 * waiters are all let go at shutdown.
 */

/** Slots for running actions. Pings, cancels and shutdowns never take one. */
export class ActionSlots {
  readonly #max: number;
  readonly #waiters: Array<() => void> = [];
  #running = 0;
  #open = true;

  /** @param max - most actions running at once (`Infinity` for no limit). */
  constructor(max: number) {
    this.#max = max;
  }

  /**
   * Take a slot. Returns `undefined` when one was free (the common case costs no await), else a
   * promise that settles once a slot is taken. After {@link close} a slot is always taken at
   * once, over the limit: the caller sees that the engine stopped accepting and releases it.
   */
  acquire(): Promise<void> | undefined {
    if (this.#running < this.#max || !this.#open) {
      this.#running++;
      return undefined;
    }
    return this.#wait();
  }

  /** Give a slot back; the longest waiter takes it. */
  release(): void {
    this.#running--;
    this.#waiters.shift()?.();
  }

  /** Stop limiting: every waiter goes on at once (at shutdown). */
  close(): void {
    this.#open = false;
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async #wait(): Promise<void> {
    while (this.#running >= this.#max && this.#open) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    this.#running++;
  }
}

/**
 * The tags of the requests an agent answered last, so that a redelivery of one of them is
 * acknowledged without running or answering it again (docs/PROTOCOL.md section 10.2).
 */

/** A bounded set of tags: adding beyond `capacity` forgets the oldest. */
export class RecentTags {
  readonly #tags = new Set<string>();
  readonly #capacity: number;

  /** @param capacity - how many tags to remember (at least 1). */
  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  /** Whether `tag` was added and not yet forgotten. */
  has(tag: string): boolean {
    return this.#tags.has(tag);
  }

  /** Remember `tag`, forgetting the oldest one if the set is full. */
  add(tag: string): void {
    this.#tags.add(tag);
    if (this.#tags.size > this.#capacity) this.#tags.delete(this.#tags.values().next().value!);
  }
}

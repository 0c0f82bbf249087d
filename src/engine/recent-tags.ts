/**
 * The tags of the requests an agent answered last, so that a redelivery of one of them is
 * acknowledged without running or answering it again (docs/PROTOCOL.md section 10.2).
 */

/** A bounded set of tags: adding beyond `capacity` forgets the oldest. */
export class RecentTags {
  /** Made with the first tag: an agent that answered nothing holds no set. */
  #tags: Set<string> | undefined;
  readonly #capacity: number;

  /** @param capacity - how many tags to remember (at least 1). */
  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  /** Whether `tag` was added and not yet forgotten. */
  has(tag: string): boolean {
    return this.#tags?.has(tag) === true;
  }

  /** Remember `tag`, forgetting the oldest one if the set is full. */
  add(tag: string): void {
    const tags = (this.#tags ??= new Set());
    tags.add(tag);
    if (tags.size > this.#capacity) tags.delete(tags.values().next().value!);
  }
}

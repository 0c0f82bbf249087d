/**
 * The tags of the requests an agent answered last, so that a redelivery of one of them is
 * acknowledged without running or answering it again (docs/PROTOCOL.md section 10.2).
 */

/** A bounded set of tags: adding beyond `capacity` forgets the oldest. */
export class RecentTags {
  /** Made with the first tag: an agent that answered nothing holds no set. */
  #tags: Set<string> | undefined;
  /** The same tags in the order they were added, as a ring: the oldest is at `#next` once full. */
  #order: string[] | undefined;
  #next = 0;
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
    if (tags.has(tag)) return;
    const order = (this.#order ??= []);
    if (order.length === this.#capacity) {
      // Full: the ring's next slot holds the oldest tag.
      tags.delete(order[this.#next]!);
      order[this.#next] = tag;
    } else {
      order.push(tag);
    }
    this.#next = (this.#next + 1) % this.#capacity;
    tags.add(tag);
  }
}

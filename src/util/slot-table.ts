/**
 * A registry of values by small integer slot, for the message path's short-lived entries (calls
 * waiting for their response, publishes waiting for their acknowledgement, messages being
 * handled, requests being run).
 *
 * Why not a `Map` or a `Set`: V8 replaces a collection's hash table as entries come and go (to
 * grow, to shrink, to drop deleted entries), and the table it replaces keeps every entry it held
 * then, plus a link to its successor. Once one such table has lived long enough to be moved to the
 * old generation, each table replaced after it stays reachable through those links until the next
 * full collection, and a young-generation collection cannot tell: it keeps alive whatever they
 * held (a call's promises, messages and buffers) and, as that survives a second collection, moves
 * it to the old generation too. Under load this fed itself: with 64 calls in flight about 8 KiB per
 * call moved to the old generation and a full collection ran every half second, in most runs but
 * not all (docs/BENCHMARKS.md, "Where a pipelined call's memory went"). Here an entry lives in one
 * array slot, cleared when it is taken; the array is replaced only when more entries are live at
 * once than ever before.
 */
export class SlotTable<V> {
  readonly #values: Array<V | undefined> = [];
  /** Slots free for reuse, most recently freed last. */
  readonly #free: number[] = [];
  #size = 0;

  /** How many values are in the table. */
  get size(): number {
    return this.#size;
  }

  /** Put `value` in a free slot; returns the slot. */
  add(value: V): number {
    const slot = this.#free.length > 0 ? this.#free.pop()! : this.#values.length;
    this.#values[slot] = value;
    this.#size++;
    return slot;
  }

  /** The value in `slot`, if any. */
  get(slot: number): V | undefined {
    return this.#values[slot];
  }

  /** Remove the value in `slot` and return it (undefined if the slot is empty or out of range). */
  take(slot: number): V | undefined {
    const value = this.#values[slot];
    if (value === undefined) return undefined;
    this.#values[slot] = undefined;
    this.#free.push(slot);
    this.#size--;
    return value;
  }

  /** Every slot holding a value, with its value (a copy: the table may change while it is read). */
  entries(): Array<[number, V]> {
    const out: Array<[number, V]> = [];
    const values = this.#values;
    for (let slot = 0; slot < values.length; slot++) {
      const value = values[slot];
      if (value !== undefined) out.push([slot, value]);
    }
    return out;
  }
}

/**
 * A map from strings to values with the values in a {@link SlotTable}: the `Map` underneath holds
 * only each key's slot number, so that the hash tables it leaves behind hold keys and small
 * integers, not the values (see {@link SlotTable}). The `Map` methods the message path uses;
 * `values()` lists the values in slot order, not insertion order.
 */
export class SlotMap<V> {
  readonly #slots = new Map<string, number>();
  readonly #table = new SlotTable<V>();

  get size(): number {
    return this.#slots.size;
  }

  has(key: string): boolean {
    return this.#slots.has(key);
  }

  get(key: string): V | undefined {
    const slot = this.#slots.get(key);
    return slot === undefined ? undefined : this.#table.get(slot);
  }

  set(key: string, value: V): this {
    const slot = this.#slots.get(key);
    if (slot !== undefined) this.#table.take(slot);
    this.#slots.set(key, this.#table.add(value));
    return this;
  }

  delete(key: string): boolean {
    const slot = this.#slots.get(key);
    if (slot === undefined) return false;
    this.#slots.delete(key);
    this.#table.take(slot);
    return true;
  }

  /** The values (a copy, in slot order: the map may change while it is read). */
  values(): V[] {
    return this.#table.entries().map(([, value]) => value);
  }
}

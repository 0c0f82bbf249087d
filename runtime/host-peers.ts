/**
 * What a host knows of the other hosts: each one's record as last seen, and when it last changed
 * on this host's own clock (no clocks of different machines are compared for reaping).
 */
import type { HostEntry } from "../src/pool/pool-backend.ts";

/** Another host, as last seen. */
export interface Peer {
  readonly entry: HostEntry;
  /** When its record last changed, on this host's clock (ms since the epoch). */
  readonly seenAt: number;
}

/** The other hosts of every pool under the prefix, fed by a watch of the host records. */
export class Peers {
  readonly #peers = new Map<string, Peer>();

  /** A host record was written (`self`: this host's current id, which is not a peer). */
  observe(entry: HostEntry, self: string): void {
    if (entry.value.hostId === self) return;
    const known = this.#peers.get(entry.value.hostId);
    if (known === undefined || known.entry.revision !== entry.revision) {
      this.#peers.set(entry.value.hostId, { entry, seenAt: Date.now() });
    }
  }

  /** A host record was removed. */
  remove(hostId: string): void {
    this.#peers.delete(hostId);
  }

  /** Forget a host reaped at `revision`, unless it has written since. */
  forget(hostId: string, revision: number): void {
    if (this.#peers.get(hostId)?.entry.revision === revision) this.#peers.delete(hostId);
  }

  has(hostId: string): boolean {
    return this.#peers.has(hostId);
  }

  /** Ids of the known hosts of `pool`. */
  idsIn(pool: string): string[] {
    return [...this.#peers.values()].filter((p) => p.entry.value.pool === pool).map((p) => p.entry.value.hostId);
  }

  /** Hosts of `pool` whose records have not changed for their own time to live, as of `now`. */
  silent(pool: string, now: number): Array<Peer & { readonly silentMs: number }> {
    const found: Array<Peer & { readonly silentMs: number }> = [];
    for (const peer of this.#peers.values()) {
      const silentMs = now - peer.seenAt;
      if (peer.entry.value.pool === pool && silentMs >= peer.entry.value.ttlMs) found.push({ ...peer, silentMs });
    }
    return found;
  }
}

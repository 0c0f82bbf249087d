/**
 * What `academy hosts` and `academy agents` show: rows built from a pool backend's host records,
 * placements and registry (printed by the command as tables: `cli-output.ts`).
 */
import { EntityRole } from "../src/identifiers.ts";
import type { PoolBackend } from "../src/pool/pool-backend.ts";
import type { Placement } from "../src/pool/records.ts";

/** One row of `academy hosts`. */
export interface HostRow {
  readonly hostId: string;
  readonly name: string;
  readonly pool: string;
  readonly hostname: string;
  readonly pid: number;
  readonly load: number;
  readonly capacity: number;
  /** Since the last heartbeat reached the server, in ms. */
  readonly heartbeatAgeMs: number;
  readonly ttlMs: number;
  /** serving, draining, or late (no heartbeat for longer than two heartbeat intervals). */
  readonly state: "serving" | "draining" | "late";
  readonly startedAt: string;
  readonly types: readonly string[];
  readonly version: string;
}

/** One row of `academy agents`. */
export interface AgentRow {
  readonly agentId: string;
  readonly name: string | undefined;
  readonly type: string | undefined;
  /** Mailbox status: active or terminated. */
  readonly status: string;
  /** Placement state on a pool (queued, running, retrying, completed, failed); none if not launched on a pool. */
  readonly placement: string | undefined;
  readonly pool: string | undefined;
  readonly host: string | undefined;
  readonly attempt: number | undefined;
  readonly registeredAt: string;
}

/** The hosts `backend` knows (of `filter.pool`, if given), by pool and host id. */
export async function listHostRows(backend: PoolBackend, filter: { pool?: string } = {}): Promise<HostRow[]> {
  const now = Date.now();
  return (await backend.listHosts(filter.pool))
    .map(({ value: h, written }) => {
      const heartbeatAgeMs = Math.max(0, now - written.getTime());
      return {
        hostId: h.hostId,
        name: h.name,
        pool: h.pool,
        hostname: h.hostname,
        pid: h.pid,
        load: h.load,
        capacity: h.capacity,
        heartbeatAgeMs,
        ttlMs: h.ttlMs,
        state: h.draining ? "draining" : heartbeatAgeMs > 2 * h.heartbeatMs ? "late" : "serving",
        startedAt: new Date(h.startedAt).toISOString(),
        types: h.types,
        version: h.version,
      } satisfies HostRow;
    })
    .sort((a, b) => a.pool.localeCompare(b.pool) || a.hostId.localeCompare(b.hostId));
}

/**
 * The agents `backend`'s registry knows, with their placements: active ones (every one with
 * `filter.all`), those placed on `filter.pool` or held by `filter.host` when given; by
 * registration time.
 */
export async function listAgentRows(
  backend: PoolBackend,
  filter: { pool?: string; host?: string; all?: boolean } = {},
): Promise<AgentRow[]> {
  const placements = new Map<string, Placement>();
  for (const p of await backend.listPlacements(filter.pool)) {
    const known = placements.get(p.uid);
    if (known === undefined || p.updatedAt > known.updatedAt) placements.set(p.uid, p);
  }
  const records = (await backend.listMailboxes()).filter((r) => r.role === EntityRole.Agent);
  const rows: AgentRow[] = [];
  for (const r of records) {
    const p = placements.get(r.uid);
    if (filter.pool !== undefined && p === undefined) continue;
    if (filter.host !== undefined && p?.host !== filter.host) continue;
    if (filter.all !== true && r.status !== "active") continue;
    rows.push({
      agentId: r.uid,
      name: r.name ?? undefined,
      type: r.type,
      status: r.status,
      placement: p?.state,
      pool: p?.pool,
      host: p?.host ?? undefined,
      attempt: p?.attempt,
      registeredAt: new Date(r.registeredAt).toISOString(),
    });
  }
  return rows.sort((a, b) => a.registeredAt.localeCompare(b.registeredAt) || a.agentId.localeCompare(b.agentId));
}

/** A duration in ms as `850ms`, `4.2s`, `3m10s`, `2h05m`. */
export function formatAge(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  const s = Math.floor(ms / 1_000);
  if (s < 3_600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3_600)}h${String(Math.floor((s % 3_600) / 60)).padStart(2, "0")}m`;
}

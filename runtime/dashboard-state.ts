/**
 * What `academy dashboard` knows and shows, as plain data: host records, placements and registry
 * records as the KV watches deliver them, mailbox depths and dead letters as polled, and the
 * actions per second worked out from the action counts hosts publish in their records. A
 * `DashboardState` is fed by `dashboard.ts` and turned into a `DashboardView` (rows ready to
 * render) on demand; it says which parts of the page changed.
 */
import { EntityRole } from "../src/identifiers.ts";
import type { DeadLetter } from "../src/exchange/dead-letters.ts";
import type { HostEntry, MailboxEntry } from "../src/pool/pool-backend.ts";
import type { Placement } from "../src/pool/records.ts";

/** The parts of the page, each re-rendered on its own when it changes. */
export const DashboardSection = {
  Summary: "summary",
  Hosts: "hosts",
  Agents: "agents",
  Letters: "letters",
} as const;
export type DashboardSection = (typeof DashboardSection)[keyof typeof DashboardSection];

/** Most agent rows shown (the newest first); the rest are counted. */
export const MAX_AGENT_ROWS = 500;
/** Terminated agents shown (the most recently terminated), beside every active one. */
export const TERMINATED_AGENT_ROWS = 20;
/** Dead letters shown (the newest first). */
export const MAX_LETTER_ROWS = 50;
/** Seconds of actions-per-second history kept (one point per tick). */
export const RATE_HISTORY = 60;

/** One host, as shown. */
export interface HostView {
  readonly hostId: string;
  readonly name: string;
  readonly pool: string;
  readonly machine: string;
  readonly load: number;
  readonly capacity: number;
  /** serving, draining, or late (no heartbeat for longer than two intervals: dead, or stalled). */
  readonly state: "serving" | "draining" | "late";
  /** Since its last heartbeat reached the server, in ms. */
  readonly heartbeatAgeMs: number;
  /** Actions its agents ran per second, between its last two heartbeats; undefined until known. */
  readonly actionsPerSecond: number | undefined;
  readonly version: string;
}

/** One agent, as shown. */
export interface AgentView {
  readonly agentId: string;
  readonly name: string | undefined;
  readonly type: string | undefined;
  /** Mailbox status: active or terminated. */
  readonly status: string;
  /** Placement state on a pool; undefined for agents not launched on a pool. */
  readonly placement: string | undefined;
  readonly pool: string | undefined;
  readonly host: string | undefined;
  /** Messages in its mailbox (waiting or being handled), as last polled. */
  readonly mailboxDepth: number;
  /** The error of its last failed run (`<type>: <message>`). */
  readonly lastError: string | undefined;
  readonly registeredAt: number;
}

/** One dead letter, as shown. */
export interface LetterView {
  readonly id: number;
  readonly kind: string;
  /** The mailbox uid (mailbox letters) or pool (launch letters). */
  readonly where: string;
  readonly time: number;
  readonly reason: string | undefined;
  readonly error: string | undefined;
}

/** Everything the page shows, at one moment. */
export interface DashboardView {
  readonly at: number;
  readonly prefix: string;
  /** `connected`, or `waiting` (with why) while the exchange or its pools cannot be read. */
  readonly connection: { readonly state: "connected" | "waiting"; readonly detail?: string | undefined };
  readonly hosts: readonly HostView[];
  readonly agents: { readonly rows: readonly AgentView[]; readonly active: number; readonly terminated: number; readonly hidden: number };
  readonly letters: { readonly rows: readonly LetterView[]; readonly total: number };
  /** Actions per second over every live host, now and for the last {@link RATE_HISTORY} ticks. */
  readonly actions: { readonly perSecond: number; readonly history: readonly number[] };
}

/** A host record as received, with what the rate needs. */
interface HostSeen {
  readonly entry: HostEntry;
  /** Actions per second between the last two records that carried counts. */
  readonly rate: number | undefined;
}

/** The state behind the page. */
export class DashboardState {
  readonly prefix: string;
  readonly #clock: () => number;
  readonly #hosts = new Map<string, HostSeen>();
  readonly #placements = new Map<string, Placement>();
  readonly #mailboxes = new Map<string, MailboxEntry>();
  readonly #letters = new Map<number, LetterView>();
  #depths: ReadonlyMap<string, number> = new Map();
  #letterCount: number | undefined;
  #history: number[] = [];
  #connection: DashboardView["connection"] = { state: "waiting", detail: "connecting" };
  readonly #listeners = new Set<(section: DashboardSection) => void>();

  constructor(prefix: string, clock: () => number = Date.now) {
    this.prefix = prefix;
    this.#clock = clock;
  }

  /** Call `listener` with each section that changed; returns a function that stops it. */
  onChange(listener: (section: DashboardSection) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(...sections: DashboardSection[]): void {
    for (const section of sections) for (const listener of this.#listeners) listener(section);
  }

  /** The data source is connected, or waiting (and why). */
  setConnection(state: "connected" | "waiting", detail?: string): void {
    if (this.#connection.state === state && this.#connection.detail === detail) return;
    this.#connection = { state, detail };
    this.#changed(DashboardSection.Summary);
  }

  /** A host record was written. */
  putHost(entry: HostEntry): void {
    const previous = this.#hosts.get(entry.value.hostId);
    this.#hosts.set(entry.value.hostId, { entry, rate: rateBetween(previous, entry) });
    this.#changed(DashboardSection.Hosts, DashboardSection.Summary);
  }

  /** A host record was removed (the host left, or was reaped). */
  removeHost(hostId: string): void {
    if (this.#hosts.delete(hostId)) this.#changed(DashboardSection.Hosts, DashboardSection.Summary);
  }

  /** Forget every host, placement and mailbox (before the watches deliver them again on a reconnect). */
  clearRecords(): void {
    this.#hosts.clear();
    this.#placements.clear();
    this.#mailboxes.clear();
    this.#changed(DashboardSection.Hosts, DashboardSection.Agents, DashboardSection.Summary);
  }

  /** A placement was written: an agent's latest on any pool is the one shown. */
  putPlacement(placement: Placement): void {
    const known = this.#placements.get(placement.uid);
    if (known !== undefined && known.updatedAt > placement.updatedAt) return;
    this.#placements.set(placement.uid, placement);
    this.#changed(DashboardSection.Agents);
  }

  /** A registry record was written (agents only; user mailboxes are not shown). */
  putMailbox(entry: MailboxEntry): void {
    if (entry.role !== EntityRole.Agent) return;
    this.#mailboxes.set(entry.uid, entry);
    this.#changed(DashboardSection.Agents, DashboardSection.Summary);
  }

  /** A registry record was removed (garbage collection). */
  removeMailbox(uid: string): void {
    if (this.#mailboxes.delete(uid)) this.#changed(DashboardSection.Agents, DashboardSection.Summary);
  }

  /** Mailbox depths as last polled (absent: empty). */
  setDepths(depths: ReadonlyMap<string, number>): void {
    if (sameMap(this.#depths, depths)) return;
    this.#depths = depths;
    this.#changed(DashboardSection.Agents);
  }

  /** Dead letters newly listed. */
  addLetters(letters: readonly DeadLetter[]): void {
    if (letters.length === 0) return;
    for (const letter of letters) this.#letters.set(letter.id, letterView(letter));
    this.#trimLetters();
    this.#changed(DashboardSection.Letters, DashboardSection.Summary);
  }

  /** The dead letters with an id of at least `from`, as listed now (those gone were replayed or purged). */
  replaceLettersFrom(from: number, letters: readonly DeadLetter[]): void {
    const before = this.#letters.size;
    const listed = new Set(letters.map((l) => l.id));
    let changed = false;
    for (const id of [...this.#letters.keys()]) {
      if (id >= from && !listed.has(id)) {
        this.#letters.delete(id);
        changed = true;
      }
    }
    for (const letter of letters) {
      if (!this.#letters.has(letter.id)) changed = true;
      this.#letters.set(letter.id, letterView(letter));
    }
    this.#trimLetters();
    if (changed || before !== this.#letters.size) this.#changed(DashboardSection.Letters, DashboardSection.Summary);
  }

  /** The id of the newest dead letter known, 0 if none. */
  get lastLetterId(): number {
    let last = 0;
    for (const id of this.#letters.keys()) last = Math.max(last, id);
    return last;
  }

  /** The id of the oldest dead letter shown, undefined if none. */
  get firstLetterId(): number | undefined {
    let first: number | undefined;
    for (const id of this.#letters.keys()) first = first === undefined ? id : Math.min(first, id);
    return first;
  }

  /** The dead letters the exchange keeps, in all. */
  setLetterCount(count: number): void {
    if (this.#letterCount === count) return;
    this.#letterCount = count;
    this.#changed(DashboardSection.Letters, DashboardSection.Summary);
  }

  #trimLetters(): void {
    const ids = [...this.#letters.keys()].sort((a, b) => b - a);
    for (const id of ids.slice(MAX_LETTER_ROWS)) this.#letters.delete(id);
  }

  /** One second passed: record the actions per second, and let ages move on the page. */
  tick(): void {
    this.#history.push(this.#actionsPerSecond(this.#clock()));
    if (this.#history.length > RATE_HISTORY) this.#history = this.#history.slice(-RATE_HISTORY);
    this.#changed(DashboardSection.Summary, DashboardSection.Hosts);
  }

  /** Actions per second over the hosts that are not late. */
  #actionsPerSecond(now: number): number {
    let total = 0;
    for (const { entry, rate } of this.#hosts.values()) if (rate !== undefined && hostState(entry, now) !== "late") total += rate;
    return total;
  }

  /** What the page shows now. */
  view(): DashboardView {
    const now = this.#clock();
    const hosts: HostView[] = [...this.#hosts.values()]
      .map(({ entry, rate }) => {
        const h = entry.value;
        return {
          hostId: h.hostId,
          name: h.name,
          pool: h.pool,
          machine: `${h.hostname}:${h.pid}`,
          load: h.load,
          capacity: h.capacity,
          state: hostState(entry, now),
          heartbeatAgeMs: Math.max(0, now - entry.written.getTime()),
          actionsPerSecond: rate,
          version: h.version,
        } satisfies HostView;
      })
      .sort((a, b) => a.pool.localeCompare(b.pool) || a.hostId.localeCompare(b.hostId));

    const all: AgentView[] = [];
    let active = 0;
    let terminated = 0;
    for (const m of this.#mailboxes.values()) {
      if (m.status === "active") active++;
      else terminated++;
      const p = this.#placements.get(m.uid);
      all.push({
        agentId: m.uid,
        name: m.name ?? undefined,
        type: m.type,
        status: m.status,
        placement: p?.state,
        pool: p?.pool,
        host: p?.host ?? undefined,
        mailboxDepth: this.#depths.get(m.uid) ?? 0,
        lastError: p?.error === undefined ? undefined : `${p.error.type}: ${p.error.message}`,
        registeredAt: m.registeredAt,
      });
    }
    const recentlyTerminated = new Set(
      [...this.#mailboxes.values()]
        .filter((m) => m.status !== "active")
        .sort((a, b) => (b.terminatedAt ?? 0) - (a.terminatedAt ?? 0))
        .slice(0, TERMINATED_AGENT_ROWS)
        .map((m) => m.uid),
    );
    const shown = all.filter((a) => a.status === "active" || recentlyTerminated.has(a.agentId)).sort((a, b) => b.registeredAt - a.registeredAt || a.agentId.localeCompare(b.agentId));
    const rows = shown.slice(0, MAX_AGENT_ROWS);

    const letters = [...this.#letters.values()].sort((a, b) => b.id - a.id);
    return {
      at: now,
      prefix: this.prefix,
      connection: this.#connection,
      hosts,
      agents: { rows, active, terminated, hidden: all.length - rows.length },
      letters: { rows: letters, total: Math.max(this.#letterCount ?? 0, letters.length) },
      actions: { perSecond: this.#history.at(-1) ?? this.#actionsPerSecond(now), history: [...this.#history] },
    };
  }
}

/** serving, draining or late, as `academy hosts` says (listing.ts). */
function hostState(entry: HostEntry, now: number): HostView["state"] {
  const h = entry.value;
  if (h.draining) return "draining";
  return now - entry.written.getTime() > 2 * h.heartbeatMs ? "late" : "serving";
}

/** Actions per second between a host's previous record and this one (their own clock), when both carry counts. */
function rateBetween(previous: HostSeen | undefined, entry: HostEntry): number | undefined {
  const now = entry.value;
  const before = previous?.entry.value;
  if (before?.stats === undefined || now.stats === undefined) return previous?.rate;
  const seconds = (now.heartbeatAt - before.heartbeatAt) / 1000;
  if (seconds <= 0) return previous?.rate;
  return Math.max(0, now.stats.actions - before.stats.actions) / seconds;
}

function letterView(letter: DeadLetter): LetterView {
  return {
    id: letter.id,
    kind: letter.kind,
    where: letter.mailbox ?? letter.pool ?? "",
    time: letter.time.getTime(),
    reason: letter.reason,
    error: letter.error,
  };
}

function sameMap(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, value] of a) if (b.get(key) !== value) return false;
  return true;
}

/**
 * Garbage collection of terminated mailboxes (`academy gc`): the registry keeps a record of every
 * mailbox ever registered, terminated ones included, and the placements bucket a placement of
 * every agent ever launched on a pool. The rules of what may go are a pure function over plain data
 * ({@link planCollection}); {@link collectGarbage} reads, applies them and deletes by
 * compare-and-set. docs/OPERATIONS.md states the rules for operators.
 */
import { InvalidConfigError } from "../errors.ts";
import type { MailboxStatus } from "../exchange/mailbox-status.ts";
import { EntityRole } from "../identifiers.ts";
import { isFinal } from "./placement.ts";
import type { MailboxEntry, PoolBackend } from "./pool-backend.ts";
import type { Placement } from "./records.ts";

/** `MailboxStatus.Terminated` (the pool layer sits below the exchange layer: type imports only). */
const TERMINATED: MailboxStatus = "terminated";

/** The shortest age `olderThanMs` may have: callers still waiting on a just-terminated mailbox are answered well within it. */
export const MIN_COLLECTABLE_AGE_MS = 60 * 60 * 1000;

/** What to collect. */
export interface CollectionPolicy {
  /** Collect mailboxes terminated at least this long ago, in ms (at least {@link MIN_COLLECTABLE_AGE_MS}). */
  readonly olderThanMs: number;
  /** The time to measure ages from, ms since the epoch. */
  readonly now: number;
  /**
   * Which mailboxes: agents only, or user mailboxes (one per closed client or manager) too.
   * @defaultValue "all"
   */
  readonly roles?: "agents" | "all";
}

/** A terminated mailbox that may go, with its agent's placements. */
export interface Collectable {
  readonly mailbox: MailboxEntry;
  readonly placements: readonly Placement[];
}

/** A terminated mailbox that must stay, and why. */
export interface Kept {
  readonly mailbox: MailboxEntry;
  readonly reason: string;
}

/** What {@link planCollection} decided. */
export interface CollectionPlan {
  readonly collect: readonly Collectable[];
  /** Terminated mailboxes old enough that are kept anyway. */
  readonly kept: readonly Kept[];
}

/**
 * Which mailbox records (and placements) may be deleted. The rules:
 * 1. only terminated mailboxes (an active one is never touched);
 * 2. terminated at least `olderThanMs` ago (records without a termination time are kept);
 * 3. an agent with a placement that is not final (queued, running, retrying) is kept: a host may
 *    still run it or restart it;
 * 4. user mailboxes only when `roles` is `"all"`.
 * @throws {InvalidConfigError} if `olderThanMs` is below {@link MIN_COLLECTABLE_AGE_MS}.
 */
export function planCollection(mailboxes: readonly MailboxEntry[], placements: readonly Placement[], policy: CollectionPolicy): CollectionPlan {
  if (!Number.isFinite(policy.olderThanMs) || policy.olderThanMs < MIN_COLLECTABLE_AGE_MS) {
    throw new InvalidConfigError(
      `Only mailboxes terminated at least ${MIN_COLLECTABLE_AGE_MS / 60_000} minutes ago may be collected (got ${policy.olderThanMs} ms)`,
      { option: "olderThanMs" },
    );
  }
  const byAgent = new Map<string, Placement[]>();
  for (const p of placements) {
    let list = byAgent.get(p.uid);
    if (list === undefined) byAgent.set(p.uid, (list = []));
    list.push(p);
  }
  const collect: Collectable[] = [];
  const kept: Kept[] = [];
  for (const mailbox of mailboxes) {
    if (mailbox.status !== TERMINATED) continue;
    if (mailbox.role === EntityRole.User && policy.roles === "agents") continue;
    if (mailbox.terminatedAt === undefined) {
      kept.push({ mailbox, reason: "no termination time recorded" });
      continue;
    }
    if (policy.now - mailbox.terminatedAt < policy.olderThanMs) continue;
    const own = byAgent.get(mailbox.uid) ?? [];
    const live = own.find((p) => !isFinal(p.state));
    if (live !== undefined) {
      kept.push({ mailbox, reason: `placement on pool '${live.pool}' is ${live.state}` });
      continue;
    }
    collect.push({ mailbox, placements: own });
  }
  return { collect, kept };
}

/** What {@link collectGarbage} did (or, in a dry run, would do). */
export interface CollectionReport extends CollectionPlan {
  /** Mailbox records deleted (none in a dry run). */
  readonly deletedMailboxes: number;
  /** Placements deleted (none in a dry run). */
  readonly deletedPlacements: number;
  /** Records that changed between the read and the delete, and were kept. */
  readonly changed: readonly string[];
}

/**
 * Apply {@link planCollection} to what `backend` holds now. Each placement, then the mailbox
 * record, is deleted by compare-and-set on the revision read, so anything written since is kept.
 * @param dryRun - only plan; delete nothing.
 */
export async function collectGarbage(backend: PoolBackend, policy: CollectionPolicy, dryRun = false): Promise<CollectionReport> {
  const [mailboxes, placements] = await Promise.all([backend.listMailboxes(), backend.listPlacements()]);
  const plan = planCollection(mailboxes, placements, policy);
  let deletedMailboxes = 0;
  let deletedPlacements = 0;
  const changed: string[] = [];
  if (!dryRun) {
    for (const { mailbox, placements: own } of plan.collect) {
      let intact = true;
      for (const p of own) {
        const current = await backend.getPlacement(p.pool, p.uid);
        if (current === undefined) continue;
        if (!isFinal(current.value.state) || !(await backend.deletePlacement(p.pool, p.uid, current.revision))) {
          intact = false;
          break;
        }
        deletedPlacements++;
      }
      if (intact && (await backend.deleteMailbox(mailbox.uid, mailbox.revision))) deletedMailboxes++;
      else changed.push(mailbox.uid);
    }
  }
  return { ...plan, deletedMailboxes, deletedPlacements, changed };
}

/**
 * Mailbox status, and the one rule every path applies before it uses a mailbox: a missing
 * mailbox is a `BadEntityIdError`, a terminated one an `AgentTerminatedError` or
 * `UserTerminatedError`.
 */
import { AgentTerminatedError, BadEntityIdError, UserTerminatedError } from "../errors.ts";
import { EntityRole } from "../identifiers.ts";
import type { EntityId } from "../identifiers.ts";

/** Status of a mailbox in the exchange. */
export const MailboxStatus = {
  /** Never registered (or unknown to this exchange). */
  Missing: "missing",
  /** Registered and accepting messages. */
  Active: "active",
  /** Closed for good: takes no messages; its pending requests were answered with an error. */
  Terminated: "terminated",
} as const;
export type MailboxStatus = (typeof MailboxStatus)[keyof typeof MailboxStatus];

/** The error for a message to a terminated mailbox (`role` is needed when `id` is a bare uid). */
export function terminatedError(id: EntityId | string, role?: EntityId["role"]): Error {
  const uid = typeof id === "string" ? id : id.uid;
  const kind = typeof id === "string" ? role : id.role;
  const label = typeof id === "string" ? uid : id.toString();
  return kind === EntityRole.User
    ? new UserTerminatedError(`Mailbox of user ${label} is terminated`, { entityId: uid })
    : new AgentTerminatedError(`Mailbox of agent ${label} is terminated`, { entityId: uid });
}

/**
 * The error for using a mailbox with this status: `BadEntityIdError` when it is missing,
 * `AgentTerminatedError` / `UserTerminatedError` when it is terminated, none when it is active.
 */
export function mailboxError(status: MailboxStatus, id: EntityId | string, role?: EntityId["role"]): Error | undefined {
  if (status === MailboxStatus.Active) return undefined;
  if (status === MailboxStatus.Terminated) return terminatedError(id, role);
  const uid = typeof id === "string" ? id : id.uid;
  const label = typeof id === "string" ? `Mailbox ${uid}` : id.toString();
  return new BadEntityIdError(`${label} is not registered with the exchange`, { entityId: uid });
}

/**
 * Check that a mailbox can be used.
 * @throws {BadEntityIdError} if it is missing.
 * @throws {AgentTerminatedError | UserTerminatedError} if it is terminated.
 */
export function assertMailboxActive(status: MailboxStatus, id: EntityId | string, role?: EntityId["role"]): void {
  const error = mailboxError(status, id, role);
  if (error !== undefined) throw error;
}

/**
 * Check that a message may be sent to a mailbox. A mailbox of another site (`remote`) is known
 * only through a local mirror of that site's registry, which trails it: there only a terminated
 * mailbox is refused. A missing one may be registered but not mirrored yet; if it is really
 * missing, the far site's relay answers the request with `BadEntityIdError`.
 * @throws {BadEntityIdError} if it is missing (and local).
 * @throws {AgentTerminatedError | UserTerminatedError} if it is terminated.
 */
export function assertSendable(status: MailboxStatus, id: EntityId | string, remote: boolean, role?: EntityId["role"]): void {
  if (remote && status === MailboxStatus.Missing) return;
  assertMailboxActive(status, id, role);
}

/** Whether a message may be sent to a mailbox with this status (see {@link assertSendable}). */
export function isSendable(status: MailboxStatus, remote: boolean): boolean {
  return status === MailboxStatus.Active || (remote && status === MailboxStatus.Missing);
}

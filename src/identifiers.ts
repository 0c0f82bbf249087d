import { randomUUID } from "node:crypto";
import type { Agent } from "./agent/agent.ts";

/** The two kinds of mailbox owner. */
export const EntityRole = {
  Agent: "agent",
  User: "user",
} as const;
export type EntityRole = (typeof EntityRole)[keyof typeof EntityRole];

/** Fields shared by agent and user ids. */
abstract class BaseEntityId {
  abstract readonly role: EntityRole;
  /** Unique id (a UUID); also the mailbox's subject token and registry key. */
  readonly uid: string;
  /** Optional display name; not part of identity. */
  readonly name: string | undefined;

  constructor(uid: string, name?: string) {
    this.uid = uid;
    this.name = name ?? undefined;
  }

  /** Same mailbox? Ids compare by `uid` only. */
  equals(other: EntityId | null | undefined): boolean {
    return other != null && other.uid === this.uid;
  }

  toString(): string {
    const label = this.role === EntityRole.Agent ? "AgentId" : "UserId";
    return `${label}<${this.name ?? this.uid.slice(0, 8)}>`;
  }

  toJSON(): { role: EntityRole; uid: string; name?: string } {
    return this.name === undefined
      ? { role: this.role, uid: this.uid }
      : { role: this.role, uid: this.uid, name: this.name };
  }
}

/**
 * Identifies an agent's mailbox. The type parameter records the agent class for typed handles; it
 * does not exist at runtime.
 */
export class AgentId<A extends Agent = Agent> extends BaseEntityId {
  readonly role = EntityRole.Agent;
  declare readonly __agent?: A;

  /** A fresh id. */
  static create<A extends Agent = Agent>(name?: string): AgentId<A> {
    return new AgentId<A>(randomUUID(), name);
  }
}

/** Identifies a user client's mailbox. */
export class UserId extends BaseEntityId {
  readonly role = EntityRole.User;

  /** A fresh id. */
  static create(name?: string): UserId {
    return new UserId(randomUUID(), name);
  }
}

/** Any mailbox owner. */
export type EntityId = AgentId | UserId;

/** Rebuild an id from its role, uid and name (e.g. read from the registry). */
export function entityIdFrom(role: EntityRole, uid: string, name?: string): EntityId {
  return role === EntityRole.Agent ? new AgentId(uid, name) : new UserId(uid, name);
}

/** A fresh request tag (message id). */
export function newTag(): string {
  return randomUUID();
}

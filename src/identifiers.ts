import { randomFillSync, randomUUID } from "node:crypto";
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
  /**
   * The site (the prefix of an exchange on its own JetStream domain) whose exchange holds the
   * mailbox; `undefined` means the site of whichever exchange the id is used on. Ids minted by an
   * exchange that has a site identity (`domain` or `sites` set) carry it, so they stay valid when
   * passed to another site. Not part of identity: uids are unique.
   */
  readonly site: string | undefined;

  constructor(uid: string, name?: string, site?: string) {
    this.uid = uid;
    this.name = name ?? undefined;
    this.site = site ?? undefined;
  }

  /** Same mailbox? Ids compare by `uid` only. */
  equals(other: EntityId | null | undefined): boolean {
    return other != null && other.uid === this.uid;
  }

  toString(): string {
    const label = this.role === EntityRole.Agent ? "AgentId" : "UserId";
    const at = this.site === undefined ? "" : `@${this.site}`;
    return `${label}<${this.name ?? this.uid.slice(0, 8)}${at}>`;
  }

  toJSON(): { role: EntityRole; uid: string; name?: string; site?: string } {
    return {
      role: this.role,
      uid: this.uid,
      ...(this.name !== undefined && { name: this.name }),
      ...(this.site !== undefined && { site: this.site }),
    };
  }
}

/**
 * Identifies an agent's mailbox. The type parameter records the agent class for typed handles; it
 * does not exist at runtime.
 */
export class AgentId<A extends Agent = Agent> extends BaseEntityId {
  readonly role = EntityRole.Agent;
  declare readonly __agent?: A;

  /** A fresh id, on `site` if given. */
  static create<A extends Agent = Agent>(name?: string, site?: string): AgentId<A> {
    return new AgentId<A>(randomUUID(), name, site);
  }
}

/** Identifies a user client's mailbox. */
export class UserId extends BaseEntityId {
  readonly role = EntityRole.User;

  /** A fresh id, on `site` if given. */
  static create(name?: string, site?: string): UserId {
    return new UserId(randomUUID(), name, site);
  }
}

/** Any mailbox owner. */
export type EntityId = AgentId | UserId;

/** Rebuild an id from its role, uid, name and site (e.g. read from the registry). */
export function entityIdFrom(role: EntityRole, uid: string, name?: string, site?: string): EntityId {
  return role === EntityRole.Agent ? new AgentId(uid, name, site) : new UserId(uid, name, site);
}

/** Random bytes for {@link newTag}, filled 256 tags at a time (one system call, not one per tag). */
const tagEntropy = Buffer.alloc(16 * 256);
let tagOffset = tagEntropy.length;

/**
 * A fresh request tag (message id): 128 random bits as 22 characters of base64url, as unguessable
 * as a UUID v4 (122 random bits) in 14 fewer characters. A tag travels about ten times per call
 * (the request's and the response's `Nats-Msg-Id` and envelope, the result record's key and body,
 * each to the server and back), and nats-server's and nats.js's cost per message grows with its
 * bytes (docs/BENCHMARKS.md).
 */
export function newTag(): string {
  if (tagOffset === tagEntropy.length) {
    randomFillSync(tagEntropy);
    tagOffset = 0;
  }
  const tag = tagEntropy.toString("base64url", tagOffset, tagOffset + 16);
  tagOffset += 16;
  return tag;
}

/**
 * The type index's member lists (layout 2), as plain data: key names, the shard of a uid, the
 * value formats, and the edits that registration and termination make. The I/O around them
 * (compare-and-set, coalescing, reading) is in `type-member-lists.ts`.
 *
 * They live in a bucket of their own, `<p>_type_lists` (`NatsLayout.memberListsBucket`), which
 * other sites never mirror: a key updated twice by compare-and-set during an outage stalls a
 * mirror on nats-server 2.9.10 (docs/EDGE.md 4). Its keys:
 *
 * - `v2.types`: the catalog, every concrete agent type registered in this deployment with its
 *   ancestry (CBOR map of type name to array of text, own name first, ending with "Agent");
 * - `v2.members.<type token>.<shard>`: the active agents of that concrete type whose uid falls in
 *   the shard, value a CBOR array of `[uid, registry revision]` or `[uid, registry revision,
 *   display name]`;
 * - `v2.layout.ready`: present once the lists hold every agent of the deployment (written after a
 *   migration from the per-uid keys of layout 1 in the types bucket, or at once for a new one).
 *
 * Earlier versions kept the same keys in the types bucket itself ({@link LEGACY_LIST_KEYS}): a
 * provisioning process builds the lists anew in their own bucket, then purges those.
 *
 * A cold discover reads the catalog and the lists of the matching concrete types, each key by its
 * name: 1 + {@link MEMBER_SHARDS} × (matching types) keys, whatever the number of agents. (Not by
 * a scan: a filtered last-per-subject consumer costs the server a walk of the bucket's stream.)
 * The registry revision lets it check every member against the registry in one request (a record
 * whose revision is still in the registry stream has not been terminated or removed since).
 */
import { typeNameToken } from "../../agent/agent-type.ts";
import { decodeValue, encodeValue } from "../../protocol/codec.ts";

/** Shards per concrete type: bounds the keys a discover reads, and the size of each list. */
export const MEMBER_SHARDS = 16;

/** Present when the member lists are complete (layout 2). */
export const LAYOUT_READY_KEY = "v2.layout.ready";
/** The layout version stored under {@link LAYOUT_READY_KEY}. */
export const MEMBER_LAYOUT_VERSION = 2;

/** Mailbox uids (as `natsLayout` accepts them). */
const UID = /^[A-Za-z0-9_-]{1,64}$/;

/** One active agent in a member list. */
export interface TypeMember {
  readonly uid: string;
  /** Revision (stream sequence) of the agent's registry record when it was registered. */
  readonly revision: number;
  readonly name?: string | undefined;
}

/** An edit of one member list. */
export type MemberEdit = { readonly kind: "add"; readonly member: TypeMember } | { readonly kind: "remove"; readonly uid: string };

/** The catalog's key. */
export const TYPE_CATALOG_KEY = "v2.types";

/**
 * Key filters, in the types bucket, of the lists, catalog and marker that earlier versions kept
 * there (none of them is a per-uid key of layout 1, which has two tokens; `v2.types` does too, and
 * is taken for a stale catalog only if its value decodes as one).
 */
export const LEGACY_LIST_KEYS = { catalog: TYPE_CATALOG_KEY, ready: LAYOUT_READY_KEY, lists: "v2.members.*.*" } as const;

/** The keys of every shard of a concrete type's member list. */
export function memberListKeys(typeName: string): string[] {
  const token = typeNameToken(typeName);
  return Array.from({ length: MEMBER_SHARDS }, (_, shard) => `v2.members.${token}.${shard}`);
}

/** The shard of `uid` (FNV-1a of its characters, which are ASCII). */
export function memberShard(uid: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < uid.length; i++) {
    hash ^= uid.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % MEMBER_SHARDS;
}

/** The key of the member list shard holding `uid` among agents of concrete type `typeName`. */
export function memberListKey(typeName: string, uid: string): string {
  return `v2.members.${typeNameToken(typeName)}.${memberShard(uid)}`;
}

/** Encode a member list. */
export function encodeMembers(members: readonly TypeMember[]): Uint8Array {
  return encodeValue(members.map((m) => (m.name === undefined ? [m.uid, m.revision] : [m.uid, m.revision, m.name])));
}

/**
 * Decode a member list; entries that are not members (wrong shapes, invalid uids) are skipped.
 * @returns undefined if the value is not a list at all (garbage written over the key).
 */
export function decodeMembers(bytes: Uint8Array): TypeMember[] | undefined {
  let value: unknown;
  try {
    value = decodeValue(bytes);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  const members: TypeMember[] = [];
  for (const entry of value as unknown[]) {
    if (!Array.isArray(entry) || entry.length < 2 || entry.length > 3) continue;
    const [uid, revision, name] = entry as unknown[];
    if (typeof uid !== "string" || !UID.test(uid)) continue;
    if (typeof revision !== "number" || !Number.isSafeInteger(revision) || revision < 1) continue;
    if (name !== undefined && typeof name !== "string") continue;
    members.push(name === undefined ? { uid, revision } : { uid, revision, name });
  }
  return members;
}

/** A catalog: concrete type name to its ancestry (own name first). */
export type TypeCatalog = ReadonlyMap<string, readonly string[]>;

/** Encode a catalog. */
export function encodeCatalog(catalog: TypeCatalog): Uint8Array {
  return encodeValue(Object.fromEntries([...catalog].map(([type, chain]) => [type, [...chain]])));
}

/**
 * Decode a catalog; entries that are not a type's ancestry (an array of type names whose first is
 * the type) are skipped. Undefined if the value is not a map at all.
 */
export function decodeCatalog(bytes: Uint8Array): Map<string, string[]> | undefined {
  let value: unknown;
  try {
    value = decodeValue(bytes);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) return undefined;
  const catalog = new Map<string, string[]>();
  for (const [type, chain] of value instanceof Map ? value : Object.entries(value)) {
    if (typeof type !== "string" || !Array.isArray(chain) || chain.length < 1) continue;
    if (!chain.every((t) => typeof t === "string" && t.length > 0) || chain[0] !== type) continue;
    catalog.set(type, chain as string[]);
  }
  return catalog;
}

/**
 * Apply edits, in order, to a member list (a member appears at most once, by uid; the last add
 * wins). Returns undefined when nothing changed.
 */
export function applyMemberEdits(current: readonly TypeMember[], edits: readonly MemberEdit[]): TypeMember[] | undefined {
  const byUid = new Map(current.map((m) => [m.uid, m]));
  let changed = false;
  for (const edit of edits) {
    if (edit.kind === "add") {
      const previous = byUid.get(edit.member.uid);
      if (previous !== undefined && previous.revision === edit.member.revision && previous.name === edit.member.name) continue;
      byUid.set(edit.member.uid, edit.member);
      changed = true;
    } else if (byUid.delete(edit.uid)) {
      changed = true;
    }
  }
  return changed ? [...byUid.values()] : undefined;
}

/** The registry stream's state that says which records are unchanged since a revision. */
export interface RegistryStreamState {
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Sequences removed inside [firstSeq, lastSeq] (the stream info's `deleted` list). */
  readonly deleted: ReadonlySet<number>;
}

/**
 * Whether a member's registry record is still the one written when it was registered: the
 * registry keeps one message per key, so a record that was terminated (or removed) since no
 * longer has its message at that revision.
 */
export function isCurrentMember(member: TypeMember, state: RegistryStreamState): boolean {
  return member.revision >= state.firstSeq && member.revision <= state.lastSeq && !state.deleted.has(member.revision);
}

/** The type index's member lists as plain data (layout 2): keys, shards, formats, edits, the check. */
import { describe, expect, test } from "vitest";
import { encodeValue } from "../../src/protocol/codec.ts";
import {
  MEMBER_SHARDS,
  applyMemberEdits,
  decodeCatalog,
  decodeMembers,
  encodeCatalog,
  encodeMembers,
  isCurrentMember,
  memberListKey,
  memberListKeys,
  memberShard,
} from "../../src/exchange/nats/type-members.ts";

describe("member lists", () => {
  test("a uid always falls in the same shard, within the bound, and uids spread over every shard", () => {
    const counts = new Array<number>(MEMBER_SHARDS).fill(0);
    for (let i = 0; i < 4000; i++) {
      const uid = crypto.randomUUID();
      const shard = memberShard(uid);
      expect(shard).toBe(memberShard(uid));
      expect(shard).toBeGreaterThanOrEqual(0);
      expect(shard).toBeLessThan(MEMBER_SHARDS);
      counts[shard]!++;
    }
    // 250 expected per shard: none empty, none more than twice its share.
    for (const count of counts) {
      expect(count).toBeGreaterThan(100);
      expect(count).toBeLessThan(500);
    }
  });

  test("keys are single KV keys of the type's token and shard; every shard key is listed", () => {
    expect(memberListKey("my.Counter", "abc")).toMatch(/^v2\.members\.my=2ECounter\.\d+$/);
    const keys = memberListKeys("my.Counter");
    expect(keys).toHaveLength(MEMBER_SHARDS);
    expect(keys).toContain(memberListKey("my.Counter", "abc"));
    for (const key of keys) expect(key).toMatch(/^[-/=.\w]+$/);
  });

  test("lists round-trip, with and without display names", () => {
    const members = [{ uid: "a-1", revision: 7 }, { uid: "b_2", revision: 9, name: "bee" }];
    expect(decodeMembers(encodeMembers(members))).toEqual(members);
  });

  test("decoding skips entries that are not members, and refuses values that are not lists", () => {
    const value = encodeValue([
      ["ok", 3],
      ["bad uid!", 3],
      ["x".repeat(65), 3],
      ["neg", -1],
      ["zero", 0],
      ["float", 1.5],
      ["name", 4, 42],
      ["long", 4, "n", "extra"],
      "not-an-entry",
      ["ok2", 5, "named"],
    ]);
    expect(decodeMembers(value)).toEqual([{ uid: "ok", revision: 3 }, { uid: "ok2", revision: 5, name: "named" }]);
    expect(decodeMembers(encodeValue({ a: 1 }))).toBeUndefined();
    expect(decodeMembers(new Uint8Array([0xff, 0x00, 0x13]))).toBeUndefined();
  });

  test("edits: adds replace by uid, removes drop, and an edit that changes nothing says so", () => {
    const start = [{ uid: "a", revision: 1 }];
    expect(applyMemberEdits(start, [{ kind: "add", member: { uid: "a", revision: 1 } }])).toBeUndefined();
    expect(applyMemberEdits(start, [{ kind: "remove", uid: "zz" }])).toBeUndefined();
    expect(applyMemberEdits(start, [{ kind: "add", member: { uid: "b", revision: 2 } }, { kind: "remove", uid: "a" }])).toEqual([{ uid: "b", revision: 2 }]);
    // A later add of the same uid (registered again under a new revision) wins.
    expect(applyMemberEdits(start, [{ kind: "add", member: { uid: "a", revision: 5, name: "n" } }])).toEqual([{ uid: "a", revision: 5, name: "n" }]);
    // Add then remove in one batch (a registration and a termination coalesced).
    expect(applyMemberEdits([], [{ kind: "add", member: { uid: "c", revision: 3 } }, { kind: "remove", uid: "c" }])).toEqual([]);
  });

  test("the catalog keeps only ancestries that start with their own type", () => {
    const catalog = new Map([["Sub", ["Sub", "Base", "Agent"]], ["Base", ["Base", "Agent"]]]);
    expect(decodeCatalog(encodeCatalog(catalog))).toEqual(catalog);
    const garbage = encodeValue({ Sub: ["Sub", "Agent"], Liar: ["Other", "Agent"], Empty: [], Num: [1], Str: "Agent" });
    expect(decodeCatalog(garbage)).toEqual(new Map([["Sub", ["Sub", "Agent"]]]));
    expect(decodeCatalog(encodeValue(["Sub"]))).toBeUndefined();
    expect(decodeCatalog(new Uint8Array([0xff]))).toBeUndefined();
  });

  test("a member is current while its record's message is still in the registry stream", () => {
    const state = { firstSeq: 10, lastSeq: 100, deleted: new Set([42]) };
    expect(isCurrentMember({ uid: "a", revision: 50 }, state)).toBe(true);
    expect(isCurrentMember({ uid: "a", revision: 10 }, state)).toBe(true);
    expect(isCurrentMember({ uid: "a", revision: 100 }, state)).toBe(true);
    // Updated (terminated) or removed since: its message is gone.
    expect(isCurrentMember({ uid: "a", revision: 42 }, state)).toBe(false);
    expect(isCurrentMember({ uid: "a", revision: 9 }, state)).toBe(false);
    // A revision the registry has not reached (not written by the library).
    expect(isCurrentMember({ uid: "a", revision: 101 }, state)).toBe(false);
  });
});

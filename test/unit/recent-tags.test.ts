/** The answered-tags memory of an agent (src/engine/recent-tags.ts). */
import { expect, test } from "vitest";
import { RecentTags } from "../../src/engine/recent-tags.ts";

test("remembers the last `capacity` tags, forgetting the oldest first; a tag added again keeps its place", () => {
  const tags = new RecentTags(3);
  expect(tags.has("a")).toBe(false);
  for (const tag of ["a", "b", "c"]) tags.add(tag);
  expect(["a", "b", "c"].map((t) => tags.has(t))).toEqual([true, true, true]);
  tags.add("b");
  tags.add("d");
  expect(["a", "b", "c", "d"].map((t) => tags.has(t))).toEqual([false, true, true, true]);
  for (const tag of ["e", "f"]) tags.add(tag);
  expect(["b", "c", "d", "e", "f"].map((t) => tags.has(t))).toEqual([false, false, true, true, true]);
  for (let i = 0; i < 100; i++) tags.add(`t${i}`);
  expect(tags.has("t96")).toBe(false);
  expect(["t97", "t98", "t99"].map((t) => tags.has(t))).toEqual([true, true, true]);
});

test("a capacity below one remembers one tag", () => {
  const tags = new RecentTags(0);
  tags.add("a");
  tags.add("b");
  expect([tags.has("a"), tags.has("b")]).toEqual([false, true]);
});

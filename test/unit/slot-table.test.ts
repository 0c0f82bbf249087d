/** The message path's registries without `Map`s holding their values (src/util/slot-table.ts). */
import { describe, expect, test } from "vitest";
import { SlotMap, SlotTable } from "../../src/util/slot-table.ts";

describe("SlotTable", () => {
  test("values live in slots until taken; freed slots are reused; taking an empty slot gives nothing", () => {
    const table = new SlotTable<string>();
    const a = table.add("a");
    const b = table.add("b");
    expect(a).not.toBe(b);
    expect(table.size).toBe(2);
    expect(table.get(a)).toBe("a");
    expect(table.take(a)).toBe("a");
    expect(table.get(a)).toBeUndefined();
    expect(table.take(a)).toBeUndefined();
    expect(table.take(99)).toBeUndefined();
    expect(table.size).toBe(1);
    const c = table.add("c");
    expect(c).toBe(a);
    expect(table.entries()).toEqual([
      [a, "c"],
      [b, "b"],
    ]);
  });

  test("entries() is a copy: taking while iterating is safe", () => {
    const table = new SlotTable<number>();
    for (let i = 0; i < 5; i++) table.add(i);
    for (const [slot] of table.entries()) table.take(slot);
    expect(table.size).toBe(0);
    expect(table.entries()).toEqual([]);
  });
});

describe("SlotMap", () => {
  test("get, set (replacing), has, delete, size and values, as a Map's", () => {
    const map = new SlotMap<{ n: number }>();
    const one = { n: 1 };
    map.set("x", one).set("y", { n: 2 });
    expect(map.size).toBe(2);
    expect(map.get("x")).toBe(one);
    expect(map.has("y")).toBe(true);
    map.set("x", { n: 3 });
    expect(map.size).toBe(2);
    expect(map.get("x")).toEqual({ n: 3 });
    expect(map.values().map((v) => v.n).sort()).toEqual([2, 3]);
    expect(map.delete("x")).toBe(true);
    expect(map.delete("x")).toBe(false);
    expect(map.get("x")).toBeUndefined();
    expect(map.has("x")).toBe(false);
    expect(map.size).toBe(1);
    expect(map.values()).toEqual([{ n: 2 }]);
  });
});

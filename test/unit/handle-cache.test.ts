/**
 * A client keeps one handle per agent while anything holds it, and the handles that decoded
 * messages mint (every agent id a sender chooses to put in an argument) do not accumulate.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, test } from "vitest";
import { AgentId, LocalExchangeFactory } from "../../src/index.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

describe("handle cache", () => {
  test("the same handle while it is held; unheld handles are released", async () => {
    const factory = new LocalExchangeFactory();
    const client = await factory.createUserClient();
    try {
      const kept = AgentId.create();
      const handle = client.getHandle(kept);
      expect(client.getHandle(new AgentId(kept.uid))).toBe(handle);
      for (let i = 0; i < 20_000; i++) client.getHandle(AgentId.create());
      expect(client.cachedHandles).toBeGreaterThan(1);
      // Collect, then let the finalization callbacks run, until the cache is back to what is held.
      for (let round = 0; round < 50 && client.cachedHandles > 1; round++) {
        gc();
        await sleep(10);
      }
      expect(client.cachedHandles).toBe(1);
      expect(client.getHandle(kept)).toBe(handle);
    } finally {
      await client.close();
      await factory.close();
    }
  });
});

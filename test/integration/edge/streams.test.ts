/**
 * A stream across sites: a cloud caller reads the items of an agent on an edge site. The request
 * and the credits go through the cloud's outbox to the site, the frames through the site's outbox
 * back (docs/EDGE.md); the items arrive in order, each once, and `break` cancels the generator.
 */
import { describe, expect, test, vi } from "vitest";
import { Streamer } from "../../fixtures/streaming-agents.ts";
import { linkedCloudAndSiteForFile } from "../../support/edge.ts";

const linked = linkedCloudAndSiteForFile();

describe("streams across sites", () => {
  test("a linked.cloud caller streams from an agent on an edge site: in order, each once; break cancels it there", async () => {
    const agent = new Streamer();
    const launched = await linked.s1Manager.launch(agent);
    const remote = linked.cloudManager.getHandle(launched.agentId);
    expect(remote.agentId.site).toBe("s1");
    const items: unknown[] = [];
    for await (const item of remote.invokeStream("count", [2000], { window: 64 })) items.push(item);
    expect(items).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    const taken: unknown[] = [];
    for await (const item of remote.invokeStream("endless", [], { window: 8 })) {
      taken.push(item);
      if (taken.length === 5) break;
    }
    expect(taken).toEqual([0, 1, 2, 3, 4]);
    await vi.waitFor(() => expect(agent.events.at(-1)).toBe("finally"), { timeout: 15_000 });
  });
});

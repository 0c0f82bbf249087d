/**
 * The hub-and-leaf fixture of academy-nats/testing: domains, leaf links through uplinks that cut
 * and restore, deny rules, restarts, and the TCP proxy on its own.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { connect as netConnect } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { NatsServerError, startNatsLeafTopology, startTcpProxy } from "../../../src/testing/index.ts";
import type { NatsLeafTopology } from "../../../src/testing/index.ts";

let topology: NatsLeafTopology;

beforeAll(async () => {
  topology = await startNatsLeafTopology({
    hubDomain: "core",
    sites: [{ name: "a", denyImports: ["secret.>"], denyExports: ["secret.>"] }, { name: "b", domain: "bee" }],
  });
});

afterAll(async () => {
  await topology?.[Symbol.asyncDispose]();
});

/** Whether a core message published on the hub reaches a subscriber on `site`'s leaf. */
async function crosses(site: string, subject: string): Promise<boolean> {
  const leaf = await connect({ servers: topology.site(site).server.url });
  const hub = await connect({ servers: topology.hub.url });
  try {
    const sub = leaf.subscribe(subject, { max: 1, timeout: 1_000 });
    await leaf.flush();
    // Interest needs a moment to cross the link: publish until it arrives or the wait ends.
    const received = (async () => {
      try {
        for await (const _ of sub) return true;
      } catch {
        return false;
      }
      return false;
    })();
    const timer = setInterval(() => hub.publish(subject, "x"), 50);
    const result = await received;
    clearInterval(timer);
    return result;
  } finally {
    await leaf.close();
    await hub.close();
  }
}

describe("startNatsLeafTopology", () => {
  test("each server serves JetStream in its own domain, and every leaf is linked", async () => {
    for (const [url, domain] of [[topology.hub.url, "core"], [topology.site("a").server.url, "a"], [topology.site("b").server.url, "bee"]] as const) {
      const nc = await connect({ servers: url });
      expect((await (await jetstreamManager(nc)).getAccountInfo()).domain).toBe(domain);
      await nc.close();
    }
    for (const site of topology.sites) expect(await site.isLinked()).toBe(true);
    expect(() => topology.site("nope")).toThrow(NatsServerError);
  });

  test("core messages cross a link, except the subjects its remote denies", async () => {
    expect(await crosses("a", "open.a")).toBe(true);
    expect(await crosses("a", "secret.a")).toBe(false);
    expect(await crosses("b", "secret.b")).toBe(true);
  });

  test("cutting an uplink drops that leaf only; restoring it, or restarting the leaf behind it, links it again", async () => {
    const a = topology.site("a");
    a.cut();
    await a.waitForLinkDown();
    expect(await a.isLinked()).toBe(false);
    expect(await topology.site("b").isLinked()).toBe(true);
    // The leaf does not find its way around the proxy (the hub advertises a sink).
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(await a.isLinked()).toBe(false);
    a.restore();
    await a.waitForLink();
    await a.server.restart();
    await a.waitForLink();
    await topology.hub.restart();
    await Promise.all(topology.sites.map((site) => site.waitForLink()));
  }, 30_000);
});

describe("startTcpProxy", () => {
  test("forwards, cuts every connection, refuses while cut, and forwards again after restore", async () => {
    const echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    await using proxy = await startTcpProxy({ targetPort: (echo.address() as AddressInfo).port });
    const roundTrip = (): Promise<string> =>
      new Promise((resolve) => {
        const socket = netConnect({ host: "127.0.0.1", port: proxy.port });
        let text = "";
        socket.on("data", (chunk) => {
          text += chunk.toString();
          socket.end();
        });
        socket.on("error", () => resolve("error"));
        socket.on("close", () => resolve(text === "" ? "closed" : text));
        socket.write("ping");
      });
    expect(await roundTrip()).toBe("ping");
    const held = netConnect({ host: "127.0.0.1", port: proxy.port });
    const heldClosed = new Promise<void>((resolve) => held.on("close", () => resolve()));
    held.on("error", () => undefined);
    await new Promise((resolve) => held.on("connect", resolve));
    // The proxy counts the connection when its server accepts it, in a turn of its own.
    await expect.poll(() => proxy.connections, { timeout: 5_000 }).toBe(1);
    proxy.cut();
    await heldClosed;
    expect(proxy.isOpen).toBe(false);
    expect(await roundTrip()).toBe("closed");
    proxy.restore();
    expect(await roundTrip()).toBe("ping");
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  });
});

/**
 * Edge sites on one machine (docs/EDGE.md): a cloud hub and a factory-floor site on a leaf node,
 * the site's uplink cut while the cloud calls an agent there. `npx tsx examples/edge.ts`.
 * Needs nats-server (it starts its own, on random ports).
 */
import { Agent, Manager, NatsExchangeFactory, action } from "../src/index.ts";
import { startNatsLeafTopology } from "../src/testing/index.ts";

/** An agent at the site. */
export class Press extends Agent {
  #parts = 0;
  @action async stamp(count: number): Promise<number> {
    this.#parts += count;
    return this.#parts;
  }
}

/** Runs the example; `log` receives each line it prints. Resolves with the press's final count. */
export async function edgeExample(log: (line: string) => void = console.log): Promise<number> {
  // No site's own subjects cross an uplink: only JetStream mirrors do (deploy/edge).
  const deny = ["cloud.>", "floor.>"];
  await using topology = await startNatsLeafTopology({ sites: [{ name: "floor", denyImports: deny, denyExports: deny }] });
  const floor = topology.site("floor");
  const cloud = new NatsExchangeFactory({ servers: topology.hub.url, prefix: "cloud", domain: "hub", sites: [{ name: "floor", domain: "floor" }] });
  const site = new NatsExchangeFactory({ servers: floor.server.url, prefix: "floor", domain: "floor", sites: [{ name: "cloud", domain: "hub" }] });
  await using cloudManager = await Manager.fromExchangeFactory(cloud);
  await using siteManager = await Manager.fromExchangeFactory(site);
  const press = await siteManager.launch(Press);
  for (;;) {
    // The cloud links to the site once the site has provisioned its prefix (a moment after start).
    try {
      await cloud.linkSite("floor");
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  const fromCloud = cloudManager.exchangeClient.getHandle(press.agentId);
  log(`press ${press.agentId} lives at site ${press.agentId.site}`);
  log(`cloud -> site, link up: ${await fromCloud.stamp(1)}`);
  // What the cloud reads about the site comes from mirrors: eventually consistent.
  while ((await cloudManager.exchangeClient.status(press.agentId)) !== "active") await new Promise((resolve) => setTimeout(resolve, 100));

  floor.cut();
  await floor.waitForLinkDown();
  const pending = fromCloud.stamp(10); // stored in the cloud's outbox
  log(`site -> site, uplink down: ${await press.stamp(100)}`);
  const found = await cloudManager.exchangeClient.discover(Press, { sites: ["floor"] });
  log(`the cloud still discovers ${found.length} press(es) at the site (from its mirror)`);

  floor.restore();
  const total = await pending;
  log(`cloud -> site, answered after the uplink returned: ${total}`);
  await siteManager.shutdown(press, { blocking: true });
  return total;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await edgeExample();
}

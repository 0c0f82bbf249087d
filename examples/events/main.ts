/**
 * Event-driven agents end to end (README.md beside this file):
 *
 * 1. a plain nats.js publisher (no library code) creates the ORDERS stream and puts JSON orders
 *    on `orders.new.<customer>`;
 * 2. three `OrderWorker` agents share them (group `shared`) and publish each priced order on
 *    `orders.priced.<customer>`;
 * 3. a runtime host of pool `customers` routes priced orders by customer: the first order of a
 *    customer launches that customer's `Customer` agent, which reads its customer's orders in
 *    order and keeps the totals;
 * 4. each `Customer` publishes its totals on `results.customer.<id>`, read by a plain subscriber.
 *
 *   npx tsx examples/events/main.ts [nats://127.0.0.1:4222]   (no argument: starts a nats-server)
 */
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Manager, NatsExchangeFactory, keyedAgentId } from "../../src/index.ts";
import { RuntimeHost } from "../../runtime/index.ts";
import { startNatsServer } from "../../src/testing/index.ts";
import { Customer, OrderWorker } from "./agents.ts";
import type { CustomerTotals, Order } from "./agents.ts";

/** Run the example against `servers`; resolves with each customer's last published totals. */
export async function main(servers: string, options: { orders?: number; customers?: number; log?: (line: string) => void } = {}): Promise<Map<string, CustomerTotals>> {
  const log = options.log ?? ((line: string) => console.log(line));
  const count = options.orders ?? 60;
  const customers = options.customers ?? 5;
  const prefix = `orders_${process.pid}`;

  // The outside world: plain nats.js. It owns the stream.
  const nc = await connect({ servers });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "ORDERS", subjects: ["orders.>"] });
  const latest = new Map<string, CustomerTotals>();
  const expected = new Map<string, number>();
  let seen = 0;
  let allSeen!: () => void;
  const done = new Promise<void>((resolve) => (allSeen = resolve));
  const results = nc.subscribe("results.customer.*", {
    callback: (_error, m) => {
      const totals = m.json<CustomerTotals>();
      latest.set(totals.customer, totals);
      if (++seen === count) allSeen();
    },
  });

  // The agents: a host for the customers' pool (it routes by customer), three workers here.
  const exchange = { servers, prefix };
  const host = await RuntimeHost.start({ pool: "customers", classes: [Customer], exchange, capacity: 100 });
  const manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(exchange));
  try {
    const workers = await Promise.all([1, 2, 3].map(() => manager.launch(OrderWorker)));
    await Promise.all(workers.map((w) => w.ping()));

    const js = jetstream(nc);
    for (let i = 0; i < count; i++) {
      const customer = `c${i % customers}`;
      const order: Order = { id: `o${i}`, customer, items: [{ sku: "tea", qty: 1 + (i % 4), price: 4.5 }, { sku: "cup", qty: 1, price: 2 }] };
      expected.set(customer, Math.round(((expected.get(customer) ?? 0) + order.items.reduce((s, it) => s + it.qty * it.price, 0)) * 100) / 100);
      await js.publish(`orders.new.${customer}`, JSON.stringify(order));
    }
    log(`published ${count} orders of ${customers} customers`);
    await done;
    for (const [customer, totals] of [...latest].sort()) {
      log(`${customer}: ${totals.orders} orders, total ${totals.total.toFixed(2)} (expected ${expected.get(customer)!.toFixed(2)})`);
    }
    const priced = await Promise.all(workers.map((w) => w.pricedCount()));
    log(`orders priced per worker: ${priced.join(", ")}`);
    // The customer agents are ordinary agents: a handle from the customer's key reaches one.
    const c0 = manager.getHandle(keyedAgentId("Customer", "c0")) as unknown as { totals(): Promise<{ orders: number; total: number }> };
    log(`c0 asked directly: ${JSON.stringify(await c0.totals())}`);
    return latest;
  } finally {
    results.unsubscribe();
    await manager.close().catch(() => undefined);
    await host.drain();
    await jsm.streams.delete("ORDERS").catch(() => undefined);
    await nc.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = process.argv[2] ?? process.env.NATS_URL;
  if (url !== undefined) {
    await main(url);
  } else {
    await using server = await startNatsServer();
    console.log(`started nats-server at ${server.url}`);
    await main(server.url);
  }
}

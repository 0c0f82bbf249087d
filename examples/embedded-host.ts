/**
 * A runtime host embedded in an existing service: an HTTP server that also serves a host pool.
 * Agents launched on the pool (here by the service itself, or by anyone with `academy launch`)
 * run in this process; SIGTERM stops the HTTP server, shuts the service's agents down, and drains
 * the host, handing any other agents to the other hosts of the pool.
 *
 *   npx tsx examples/embedded-host.ts [nats://127.0.0.1:4222]     then: curl localhost:8080/increment
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { HostPoolExecutor, Manager, NatsExchangeFactory } from "../src/index.ts";
import type { NatsExchangeOptions } from "../src/index.ts";
import { RuntimeHost } from "../runtime/index.ts";
import { Counter } from "./agents.ts";

/** A running service. */
export interface Service {
  /** Where its HTTP server listens. */
  readonly url: string;
  readonly host: RuntimeHost;
  /** Stop serving HTTP, shut the service's agents down, drain the host. */
  stop(): Promise<void>;
}

/** Start the service: a host of pool `pool`, a counter agent on it, and HTTP routes that use it. */
export async function startService(options: { exchange: NatsExchangeOptions; port?: number; pool?: string }): Promise<Service> {
  const pool = options.pool ?? "service";
  // The host's agents and the service's own client each have their exchange (one connection each).
  const host = await RuntimeHost.start({ pool, classes: [Counter], exchange: options.exchange, capacity: 50 });
  const manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options.exchange), {
    executors: { pool: new HostPoolExecutor({ pool }) },
  });
  const counter = await manager.launch(Counter, { executor: "pool", args: [0] });

  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    const route = req.url === "/increment" ? counter.increment(1) : req.url === "/count" ? counter.get() : undefined;
    if (route === undefined) return reply(404, { error: "try /increment or /count" });
    route.then(
      (count) => reply(200, { count, hostId: host.hostId, agentsHere: host.load }),
      (error: unknown) => reply(500, { error: (error as Error).message }),
    );
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 8080, resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await manager.close(); // shuts the counter down (the host is still up to stop it)
      await host.drain(); // hands any other agents of the pool to the other hosts
    })());
  return { url, host, stop };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const service = await startService({ exchange: { servers: process.argv[2] ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222" } });
  console.log(`serving ${service.url}/increment and ${service.url}/count (host ${service.host.hostId}); SIGTERM stops`);
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => void service.stop().then(() => console.log("stopped"), (error: unknown) => console.error(error)));
  }
}

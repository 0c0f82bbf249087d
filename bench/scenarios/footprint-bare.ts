/**
 * Bare-NATS floor of the footprint scenario: one process, one NATS connection, N core
 * subscriptions (one per "agent", each answering requests), nothing else.
 *
 * `node --expose-gc .bench-build/bench/scenarios/footprint-bare.js <servers> <count>` (or the
 * TypeScript through tsx): connects
 * and prints `connected`, then obeys lines on stdin: `sub` subscribes `<count>` subjects
 * `bare.<i>`, flushes and prints `subscribed`; `gc` runs a full collection and prints
 * `gc {process.memoryUsage()}`. Idles between commands until SIGTERM.
 */
import { createInterface } from "node:readline";
import { connect } from "@nats-io/transport-node";

const [servers, countText] = process.argv.slice(2);
const count = Number(countText);
const nc = await connect({ servers: servers! });
process.once("SIGTERM", () => void nc.close().finally(() => process.exit(0)));
process.stdout.write("connected\n");
for await (const line of createInterface({ input: process.stdin })) {
  if (line === "sub") {
    for (let i = 0; i < count; i++) {
      nc.subscribe(`bare.${i}`, { callback: (_error, msg) => void msg.respond(msg.data) });
    }
    await nc.flush();
    process.stdout.write("subscribed\n");
  } else if (line === "gc") {
    (globalThis as { gc?: () => void }).gc?.();
    process.stdout.write(`gc ${JSON.stringify(process.memoryUsage())}\n`);
  }
}

/** examples/events/: a plain publisher's orders priced by shared workers and totalled by keyed customer agents. */
import { expect, test } from "vitest";
import { main } from "../../../examples/events/main.ts";
import { startTestNats } from "../../support/nats.ts";

test("the events example: every order priced once and totalled by its customer's agent, in order", async () => {
  await using nats = await startTestNats();
  const lines: string[] = [];
  const totals = await main(nats.url, { orders: 60, customers: 5, log: (line) => lines.push(line) });
  expect([...totals.keys()].sort()).toEqual(["c0", "c1", "c2", "c3", "c4"]);
  for (const line of lines.filter((l) => /^c\d: /.test(l))) {
    const [, got, want] = /total (\S+) \(expected (\S+)\)/.exec(line)!;
    expect(got, line).toBe(want);
  }
  for (const t of totals.values()) {
    expect(t.orders).toBe(12);
    // The last order each customer's agent handled is its last one: orders arrive in order.
    expect(Number(t.lastOrder.slice(1))).toBe(55 + Number(t.customer.slice(1)));
  }
  const perWorker = lines.find((l) => l.startsWith("orders priced per worker: "))!.slice("orders priced per worker: ".length).split(", ").map(Number);
  expect(perWorker.reduce((a, b) => a + b, 0)).toBe(60);
}, 60_000);

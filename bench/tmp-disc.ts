import { NatsExchangeFactory } from "../src/index.ts";
import { startNatsServer } from "../src/testing/index.ts";
import { BenchEcho } from "./agents.ts";
import type { AgentClass } from "../src/index.ts";
import { Session } from "node:inspector/promises";
import { writeFileSync } from "node:fs";
await using server = await startNatsServer();
const make = (name: string, parent: AgentClass): AgentClass => { const cls = { [name]: class extends parent {} }[name]! as AgentClass; Object.defineProperty(cls, "agentType", { value: name }); return cls; };
const root = make("BenchRoot", BenchEcho as unknown as AgentClass);
const fams = Array.from({ length: 4 }, (_, i) => make(`F${i}`, root));
const leaves = Array.from({ length: 15 }, (_, i) => make(`L${i}`, fams[i % 4]!));
const concrete = [root, ...fams, ...leaves];
const setup = new NatsExchangeFactory({ servers: server.url, prefix: "d" });
const reg = await setup.createUserClient();
const n = 10000;
for (let next = 0; next < n; ) { const b = Array.from({ length: Math.min(250, n - next) }, (_, i) => reg.registerAgent(concrete[(next + i) % concrete.length]!)); next += b.length; await Promise.all(b); }
await setup.close();
const session = new Session(); session.connect(); await session.post("Profiler.enable"); 
for (let i = 0; i < 6; i++) {
  const f = new NatsExchangeFactory({ servers: server.url, prefix: "d" });
  const c = await f.createUserClient();

  const s = performance.now();
  const found = await c.discover(root);
  console.log(found.length, (performance.now() - s).toFixed(1));

  await f.close();
}

/**
 * Scenario 4, discover: with 10,000 registered agents across a 20-type class tree, how long
 * `discover` takes on a client's first call (cold: a new factory and connection, reading the KV
 * type index) and after (warm: answered from the client's registry view). Next to it, interleaved
 * per query: the bare KV client listing the same index keys (`kv.keys(filter)`) on a new
 * connection.
 */
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { NatsExchangeFactory } from "../../src/index.ts";
import type { AgentClass } from "../../src/index.ts";
import { agentTypeName, typeNameToken } from "../../src/agent/agent-type.ts";
import { BenchEcho } from "../agents.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { ms, summarize, time } from "../lib/stats.ts";
import type { Summary } from "../lib/stats.ts";

/** A class tree of 20 agent types: a root, 4 families under it, 15 leaves spread under the families. */
function classTree(): { root: AgentClass; family: AgentClass; leaf: AgentClass; concrete: AgentClass[] } {
  const make = (name: string, parent: AgentClass): AgentClass => {
    const cls = { [name]: class extends parent {} }[name]! as AgentClass;
    Object.defineProperty(cls, "agentType", { value: name });
    return cls;
  };
  const root = make("BenchRoot", BenchEcho as unknown as AgentClass);
  const families = Array.from({ length: 4 }, (_, i) => make(`BenchFamily${i}`, root));
  const leaves = Array.from({ length: 15 }, (_, i) => make(`BenchLeaf${i}`, families[i % 4]!));
  return { root, family: families[0]!, leaf: leaves[0]!, concrete: [root, ...families, ...leaves] };
}

interface Row {
  query: string;
  found: number;
  /** Opening a new factory and user client (connect, check the streams, register the user). */
  clientStartMs: number;
  /** The client's first discover. */
  coldMs: number;
  warm: Summary;
  bareKeysColdMs: number;
  bareKeysFound: number;
}

export default async function discover(ctx: BenchContext): Promise<ScenarioResult> {
  const { server } = ctx;
  const count = 10_000;
  const prefix = ctx.prefix("discover");
  const tree = classTree();
  const setup = new NatsExchangeFactory({ servers: server.url, prefix });
  try {
    await using registrar = await setup.createUserClient();
    for (let next = 0; next < count; ) {
      const batch = Array.from({ length: Math.min(250, count - next) }, (_, i) => registrar.registerAgent(tree.concrete[(next + i) % tree.concrete.length]!));
      next += batch.length;
      await Promise.all(batch);
    }
  } finally {
    await setup.close();
  }
  ctx.log(`discover: registered ${count} agents`);

  const rows: Row[] = [];
  for (const [query, type] of [
    ["root type (all)", tree.root],
    ["a family + subclasses", tree.family],
    ["a leaf type", tree.leaf],
  ] as const) {
    // Bare: a new connection listing the index keys of the type with the KV client.
    const nc = await connect({ servers: server.url });
    let bareKeysFound = 0;
    const bareStart = performance.now();
    const kv = await new Kvm(nc).open(`${prefix}_types`);
    for await (const _key of await kv.keys(`${typeNameToken(agentTypeName(type))}.*`)) bareKeysFound++;
    const bareKeysColdMs = performance.now() - bareStart;
    await nc.close();

    // Cold: a new process would open a new factory (connection); its first discover reads the index.
    const factory = new NatsExchangeFactory({ servers: server.url, prefix });
    try {
      const opening = performance.now();
      await using client = await factory.createUserClient();
      const start = performance.now();
      const clientStartMs = start - opening;
      const found = (await client.discover(type)).length;
      const coldMs = performance.now() - start;
      // Warm: once the registry view has caught up, answers come from memory.
      while ((await client.discover(type)).length !== found) await new Promise((r) => setTimeout(r, 20));
      const samples: number[] = [];
      for (let i = 0; i < (ctx.quick ? 100 : 300); i++) await time(samples, () => client.discover(type));
      rows.push({ query, found, clientStartMs, coldMs, warm: summarize(samples), bareKeysColdMs, bareKeysFound });
    } finally {
      await factory.close();
    }
  }
  const all = rows[0]!;
  return {
    id: "discover",
    title: `4. Discover with ${count.toLocaleString("en-US")} agents across a 20-type class tree (ms)`,
    headers: ["query", "found", "client start", "cold (1st call)", "warm p50", "warm p99", "bare kv.keys() cold", "keys"],
    rows: rows.map((r) => [r.query, String(r.found), ms(r.clientStartMs), ms(r.coldMs), ms(r.warm.p50Ms), ms(r.warm.p99Ms), ms(r.bareKeysColdMs), String(r.bareKeysFound)]),
    figures: { agents: count, types: tree.concrete.length, rows },
    targets: [
      { name: "discover warm p50, 10,000 agents", goal: "< 2 ms", measured: `${ms(Math.max(...rows.map((r) => r.warm.p50Ms)))} ms`, met: rows.every((r) => r.warm.p50Ms < 2) },
      { name: "discover cold, 10,000 agents", goal: "< 100 ms", measured: `${ms(Math.max(...rows.map((r) => r.coldMs)))} ms`, met: rows.every((r) => r.coldMs < 100) },
    ],
    notes: [
      "client start = a new factory and user client (connect, check streams and buckets, register the user); cold = its first discover, which reads the KV type index.",
      "warm = later calls, answered from the client's registry view after one stream-info round trip that proves the view current.",
      `bare = a new connection, open the index bucket, list its keys for the type (kv.keys); the root query lists ${all.bareKeysFound} keys.`,
    ],
  };
}

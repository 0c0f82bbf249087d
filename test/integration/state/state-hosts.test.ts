/**
 * Durable state on runtime hosts (child processes, `academy host`) against a real nats-server:
 * the state survives kill -9 of its host with no increment lost or applied twice, and a host
 * frozen past its time to live, replaced, then woken cannot write the state of the agent it ran:
 * the write fails with StateConflictError and the agent stops there. A reminder keeps firing
 * through kill -9 of its agent's host, each due time once.
 */
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, test } from "vitest";
import { HostPoolExecutor, Manager, NatsExchangeFactory, decodeStateRecord } from "../../../src/index.ts";
import type { Handle } from "../../../src/index.ts";
import { decodeValue } from "../../../src/protocol/codec.ts";
import { Reminded, StatefulCounter } from "../../fixtures/state-agents.ts";
import { HOST_AGENTS, spawnHost } from "../../support/host-process.ts";
import type { HostProcess } from "../../support/host-process.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

const STATE_AGENTS = fileURLToPath(new URL("../../fixtures/state-agents.ts", import.meta.url));
const FAST = { heartbeatMs: 300, hostTtlMs: 1_500 } as const;

let serial = 0;
const hosts: HostProcess[] = [];

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.kill()));
});

async function pool(): Promise<{ manager: Manager; factory: NatsExchangeFactory; start(): Promise<HostProcess> } & AsyncDisposable> {
  const prefix = `sh${process.pid}_${++serial}`;
  const factory = new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix });
  const manager = await Manager.fromExchangeFactory(factory, { executors: { workers: new HostPoolExecutor({ pool: "workers" }) }, maxRetries: 0 });
  return {
    manager,
    factory,
    async start() {
      const host = await spawnHost({ servers: shared.nats.url, prefix, pool: "workers", modules: [HOST_AGENTS, STATE_AGENTS], ...FAST });
      hosts.push(host);
      return host;
    },
    async [Symbol.asyncDispose]() {
      const closed = manager.close().catch(() => undefined);
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      await Promise.all(hosts.splice(0).map((h) => h.kill()));
    },
  };
}

async function storedCount(factory: NatsExchangeFactory, uid: string): Promise<{ count: number; owner: string }> {
  const record = decodeStateRecord((await (await factory.stateStore()).get(uid))!.bytes);
  return { count: (decodeValue(record.value!) as { count: number }).count, owner: record.owner };
}

describe("durable state on runtime hosts", () => {
  test("100 increments, kill -9 of the agent's host among them: on the new host the state is exactly the last acknowledged one", async () => {
    await using p = await pool();
    const [a, b] = [await p.start(), await p.start()];
    const counter: Handle<StatefulCounter> = await p.manager.launch(StatefulCounter, { executor: "workers" });
    const home = await counter.where();
    const [victim, survivor] = home === a.child.pid ? [a, b] : [b, a];

    const results: number[] = [];
    // Five at a time, so that requests are in flight (some applied, not yet acknowledged) at the kill.
    for (let batch = 0; batch < 20; batch++) {
      const calls = Array.from({ length: 5 }, () => counter.increment(1));
      if (batch === 10) await victim.kill();
      results.push(...(await Promise.all(calls)));
    }
    expect(await counter.where()).toBe(survivor.child.pid);
    // Each increment answered once, with a distinct count: none lost, none applied twice.
    expect([...results].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(await counter.get()).toBe(100);
    expect((await storedCount(p.factory, counter.agentId.uid)).count).toBe(100);
  });

  test("a host frozen past its time to live cannot write the state when it wakes: StateConflictError, and it stops the agent", { timeout: 60_000 }, async () => {
    await using p = await pool();
    const frozen = await p.start();
    const counter: Handle<StatefulCounter> = await p.manager.launch(StatefulCounter, { executor: "workers" });
    expect(await counter.increment(1)).toBe(1);
    const other = await p.start();
    const before = await storedCount(p.factory, counter.agentId.uid);

    // The action sleeps 2 s before changing the state; its host freezes during the sleep.
    const slow = counter.slowIncrement(2_000);
    // Running, not only sent (a request frozen in the mailbox would never try the write).
    await frozen.waitFor(/"msg":"slow increment running"/);
    frozen.signal("SIGSTOP");
    // Reaped and replaced: the other host loads the state (taking it over) and runs the request again.
    expect(await slow).toBe(2);
    expect(await counter.where()).toBe(other.child.pid);
    const after = await storedCount(p.factory, counter.agentId.uid);
    expect(after.owner).not.toBe(before.owner);

    // Woken, the frozen host's action finishes and tries to write: refused.
    frozen.signal("SIGCONT");
    const refused = await frozen.waitFor(/the agent's state was taken over by another run of the agent; stopping it/, 15_000);
    expect((JSON.parse(refused) as { err: { type: string } }).err.type).toBe("StateConflictError");
    await frozen.waitFor(/"msg":"agent stopped"/, 10_000);
    // The state is what the new home wrote; the woken host's increment was not applied.
    expect(await storedCount(p.factory, counter.agentId.uid)).toEqual({ count: 2, owner: after.owner });
    expect(await counter.increment(1)).toBe(3);
  });

  test("a reminder every 500 ms keeps firing through kill -9 of its agent's host: over 10 s no due time twice, none lost", { timeout: 60_000 }, async () => {
    await using p = await pool();
    const [a, b] = [await p.start(), await p.start()];
    const agent: Handle<Reminded> = await p.manager.launch(Reminded, { executor: "workers" });
    const home = await agent.where();
    const victim = home === a.child.pid ? a : b;
    const survivor = victim === a ? b : a;
    // catch-up: even due times that came due while no scheduler ran would be fired (here the
    // survivor's scheduler keeps running; the agent's requests wait in its mailbox while it moves).
    const set = await agent.remind("tick", { action: "onReminder", everyMs: 500, misfire: "catch-up" });
    const startedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await victim.kill();
    const until = startedAt + 10_000;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now())));
    await agent.forget("tick");
    expect(await agent.where()).toBe(survivor.child.pid);
    // Every due time from the first up to 10 s later, each once (the last may not have been fired
    // before the cancel). Those fired wait in the mailbox while the agent moves and are handled
    // after it restarts: on a loaded machine the backlog can still be in the mailbox now, so wait
    // for them rather than reading once.
    const expected = Math.floor((until - set.dueAt) / 500);
    const waitUntil = Date.now() + 15_000;
    let fires = await agent.fires("tick");
    while (fires.length < expected && Date.now() < waitUntil) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      fires = await agent.fires("tick");
    }
    expect(fires[0]).toBe(set.dueAt);
    for (let i = 1; i < fires.length; i++) expect(fires[i]! - fires[i - 1]!, fires.join(",")).toBe(500);
    expect(fires.length).toBeGreaterThanOrEqual(expected);
  });
});

/**
 * Reminders (docs/STATE.md section 6), run against every exchange: durable timers set by an agent,
 * fired into its mailbox as requests to one of its actions, once per due time (however many
 * schedulers run), with the misfire policies for due times nobody fired, waiting in the mailbox
 * while the agent is not running, listed and cancelled, and deleted with a terminated mailbox.
 */
import { describe, expect, test } from "vitest";
import { InvalidConfigError, Manager, MisfirePolicy, ReminderScheduler } from "../../src/index.ts";
import type { ExchangeFactory, Handle, ReminderStore } from "../../src/index.ts";
import { Reminded } from "../fixtures/state-agents.ts";
import type { ConformanceTarget } from "./exchange-conformance.ts";

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Due times that are each `everyMs` after the one before: none fired twice, none skipped. */
function expectContiguous(fires: readonly number[], everyMs: number): void {
  for (let i = 1; i < fires.length; i++) expect(fires[i]! - fires[i - 1]!, `fire ${i} of ${fires.join(",")}`).toBe(everyMs);
}

async function firesAtLeast(agent: Handle<Reminded>, name: string, count: number, timeoutMs = 10_000): Promise<number[]> {
  return eventually(async () => {
    const fires = await agent.fires(name);
    return fires.length >= count ? fires : undefined;
  }, timeoutMs, `${count} fires of ${name}`);
}

export function describeReminderConformance(name: string, target: () => ConformanceTarget): void {
  async function open(options: { reminders?: boolean } = {}, factory: ExchangeFactory = target().newFactory()): Promise<{ manager: Manager; store: ReminderStore }> {
    const manager = await Manager.fromExchangeFactory(factory, options);
    return { manager, store: await factory.reminderStore!() };
  }

  describe(`reminders: ${name}`, () => {
    test("a repeating reminder calls its action every interval with its payload, once per due time; list and cancel", async () => {
      const { manager } = await open();
      await using _ = manager;
      const agent = await manager.launch(Reminded);
      const set = await agent.remind("tick", { action: "onReminder", everyMs: 200, payload: { n: 1 } });
      expect(set).toMatchObject({ name: "tick", action: "onReminder", everyMs: 200, misfire: MisfirePolicy.FireOnce, payload: { n: 1 } });
      expect((await agent.reminders()).map((r) => r.name)).toEqual(["tick"]);
      const fires = await firesAtLeast(agent, "tick", 4);
      expect(fires[0]).toBe(set.dueAt);
      expectContiguous(fires, 200);
      expect((await agent.payloads()).every((p) => JSON.stringify(p) === '{"n":1}')).toBe(true);

      expect(await agent.forget("tick")).toBe(true);
      expect(await agent.forget("tick")).toBe(false);
      expect(await agent.reminders()).toEqual([]);
      const after = (await agent.fires("tick")).length;
      // Nothing fires after the cancel (at most one fire already on its way).
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect((await agent.fires("tick")).length).toBeLessThanOrEqual(after + 1);
    });

    test("a reminder set again while it fires is replaced: the new one fires, the old one no more", async () => {
      const { manager } = await open();
      await using _ = manager;
      const agent = await manager.launch(Reminded);
      for (let round = 1; round <= 3; round++) {
        await agent.remind("tick", { action: "onReminder", everyMs: 100, payload: round });
        await eventually(async () => ((await agent.payloads()).includes(round) ? true : undefined), 5_000, `a fire with payload ${round}`);
      }
      await agent.forget("tick");
      const payloads = await agent.payloads();
      // In order: once the new one fired, the old one never again.
      expect(payloads).toEqual([...payloads].sort((a, b) => (a as number) - (b as number)));
    });

    test("a one-shot reminder fires once at its time and is gone; the scheduler publishes it once", async () => {
      const { manager, store } = await open({ reminders: false });
      await using _ = manager;
      await using scheduler = await ReminderScheduler.start(store);
      const agent = await manager.launch(Reminded);
      const at = Date.now() + 200;
      await agent.remind("once", { action: "onReminder", at: new Date(at) });
      expect(await firesAtLeast(agent, "once", 1)).toEqual([at]);
      await eventually(async () => ((await store.get(agent.agentId.uid, "once")) === undefined ? true : undefined), 5_000, "the reminder deleted");
      expect(await agent.reminders()).toEqual([]);
      // Not published again while its deletion travels back through the watch.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(scheduler.fired).toBe(1);
      expect(scheduler.size).toBe(0);
    });

    test("a reminder due while its agent is not running waits in its mailbox", async () => {
      const { manager, store } = await open();
      await using _ = manager;
      const registration = await manager.registerAgent(Reminded);
      const first = await manager.launch(Reminded, { registration });
      const at = Date.now() + 300;
      await first.remind("later", { action: "onReminder", at });
      await manager.shutdown(first, { blocking: true, terminate: false });
      // Fired while nobody reads the mailbox: the one-shot reminder is gone, its request waits.
      await eventually(async () => ((await store.get(registration.agentId.uid, "later")) === undefined ? true : undefined), 10_000, "the reminder fired");
      const other = new Manager(await manager.exchangeFactory.createUserClient(), { reminders: false });
      await using __ = other;
      const again = await other.launch(Reminded, { registration });
      expect(await firesAtLeast(again, "later", 1)).toEqual([at]);
    });

    test("with several schedulers on the exchange each due time still reaches the agent once", async () => {
      const { manager, store } = await open();
      await using _ = manager;
      const second = await ReminderScheduler.start(store);
      const third = await ReminderScheduler.start(store);
      try {
        const agent = await manager.launch(Reminded);
        await agent.remind("tick", { action: "onReminder", everyMs: 100 });
        const fires = await firesAtLeast(agent, "tick", 10);
        expectContiguous(fires, 100);
        await agent.forget("tick");
      } finally {
        await second.close();
        await third.close();
      }
    });

    test("due times missed while no scheduler ran follow the misfire policy", async () => {
      const { manager, store } = await open({ reminders: false });
      await using _ = manager;
      const [catchUp, once, skip] = await Promise.all([manager.launch(Reminded), manager.launch(Reminded), manager.launch(Reminded)]);
      const firstAt = Date.now() - 1_050;
      const options = { action: "onReminder", everyMs: 200, firstAt };
      await catchUp!.remind("r", { ...options, misfire: MisfirePolicy.CatchUp });
      await once!.remind("r", { ...options, misfire: MisfirePolicy.FireOnce });
      await skip!.remind("r", { ...options, misfire: MisfirePolicy.Skip });
      const started = Date.now();
      await using scheduler = await ReminderScheduler.start(store, { lateMs: 100 });
      void scheduler;
      // The scheduler knows the reminders once started, and plans their fires on its next timer
      // turn: "now" for the misfire policy is about here, however long starting took.
      const ready = Date.now();
      const caught = await firesAtLeast(catchUp!, "r", 8);
      // Every missed due time, from the first, then on time.
      expect(caught[0]).toBe(firstAt);
      expectContiguous(caught, 200);
      const onceFires = await firesAtLeast(once!, "r", 3);
      // One fire for the latest missed due time, then on time.
      const latestMissed = firstAt + Math.floor((started - firstAt) / 200) * 200;
      expect(onceFires[0]).toBeGreaterThanOrEqual(latestMissed);
      expect(onceFires[0]).toBeLessThanOrEqual(ready + 200);
      expectContiguous(onceFires, 200);
      const skipFires = await firesAtLeast(skip!, "r", 2);
      // None of the missed ones.
      expect(skipFires[0]).toBeGreaterThan(started - 100 - 200);
      expectContiguous(skipFires, 200);
    });

    test("a terminated agent's reminders are deleted; bad options are InvalidConfigError", async () => {
      const { manager, store } = await open();
      await using _ = manager;
      const agent = await manager.launch(Reminded);
      await expect(agent.remind("bad name", { action: "onReminder", everyMs: 200 })).rejects.toBeInstanceOf(InvalidConfigError);
      await expect(agent.remind("r", { action: "onReminder", everyMs: 5 })).rejects.toBeInstanceOf(InvalidConfigError);
      await expect(agent.remind("r", { action: "onReminder" })).rejects.toBeInstanceOf(InvalidConfigError);
      await agent.remind("r", { action: "onReminder", everyMs: 60_000 });
      expect(await store.list(agent.agentId.uid)).toHaveLength(1);
      await manager.shutdown(agent, { blocking: true, terminate: true });
      expect(await store.list(agent.agentId.uid)).toEqual([]);
    });
  });
}

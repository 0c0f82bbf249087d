/**
 * Academy parity, run against every exchange beside `exchange-conformance.ts`: the behaviours
 * issue 10 found differing from Academy (each test failed before its fix), and the Academy APIs
 * added for it.
 */
import { pino } from "pino";
import { describe, expect, test } from "vitest";
import {
  ActionCancelledError,
  MailboxStatus,
  Manager,
  PingCancelledError,
  ReturnWhen,
  WaitTimeoutError,
} from "../../src/index.ts";
import type { ManagerOptions } from "../../src/index.ts";
import type { ConformanceTarget } from "./exchange-conformance.ts";
import {
  Counter,
  Dawdler,
  GatedFailure,
  SlowStarter,
  StubbornLoop,
} from "../fixtures/agents.ts";

/** A pino logger that keeps its records, to check what was logged. */
function recordingLogger(): { logger: ManagerOptions["logger"] & object; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, records };
}

/** Whether `promise` settles within `ms` (it keeps running either way). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}

export function describeParityConformance(name: string, target: () => ConformanceTarget): void {
  async function open(options: ManagerOptions = {}): Promise<Manager> {
    return Manager.fromExchangeFactory(target().newFactory(), options);
  }

  describe(`${name}: Academy parity`, () => {
    describe("shutdown of work that ignores its signal", () => {
      test("an action that ignores its signal is abandoned after the grace: shutdown returns, the caller was cancelled at once", async () => {
        const { logger, records } = recordingLogger();
        await using manager = await open({ logger });
        const agent = new Dawdler();
        const handle = await manager.launch(agent, { config: { shutdownGraceMs: 200 } });
        const slow = handle.slow(60_000).catch((e: unknown) => e);
        await agent.started.promise;
        const start = Date.now();
        await manager.shutdown(handle, { timeoutMs: 10_000 });
        expect(Date.now() - start).toBeLessThan(5_000);
        expect(await slow).toBeInstanceOf(ActionCancelledError);
        expect(manager.running()).toEqual([]);
        expect(await manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Terminated);
        expect(records.some((r) => r.action === "slow" && /abandon/.test(String(r.msg)))).toBe(true);
      });

      test("a loop that never checks its signal is abandoned after the grace; close() returns", async () => {
        const { logger, records } = recordingLogger();
        const manager = await open({ logger });
        const agent = new StubbornLoop();
        const handle = await manager.launch(agent, { config: { shutdownGraceMs: 200 } });
        await agent.looping.promise;
        await manager.shutdown(handle, { timeoutMs: 2_000 });
        expect(manager.running()).toEqual([]);
        expect(await manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Terminated);
        expect(records.some((r) => r.loop === "spin" && /abandon/.test(String(r.msg)))).toBe(true);
        const again = await manager.launch(new StubbornLoop(), { config: { shutdownGraceMs: 200 } });
        await again.ping();
        expect(await settlesWithin(manager.close(), 5_000)).toBe(true);
      });
    });


    describe("handles", () => {
      test("handle.shutdown() only sends: it returns before a slow startup ends, and for an agent nobody runs yet", async () => {
        await using manager = await open();
        const agent = new SlowStarter();
        const handle = await manager.launch(agent);
        expect(await settlesWithin(manager.shutdown(handle, { blocking: false }), 2_000)).toBe(true);
        agent.gate.resolve();
        await manager.wait([handle], { timeoutMs: 10_000 });

        const registration = await manager.registerAgent(Counter);
        expect(await settlesWithin(manager.getHandle(registration).shutdown(), 2_000)).toBe(true);
        // The request waited in the mailbox: the agent shuts down as soon as it runs.
        const late = await manager.launch(Counter, { registration });
        await manager.wait([late], { timeoutMs: 10_000 });
        expect(await manager.exchangeClient.status(registration.agentId)).toBe(MailboxStatus.Terminated);
      });

      test("a ping waiting for a startup that fails is answered with PingCancelledError", async () => {
        const manager = await open();
        try {
          const agent = new GatedFailure();
          const handle = await manager.launch(agent);
          const ping = handle.ping().catch((e: unknown) => e);
          // A round trip to another agent from the same client: the ping is in the mailbox by now.
          await (await manager.launch(Counter)).increment();
          agent.gate.resolve();
          expect(await ping).toBeInstanceOf(PingCancelledError);
        } finally {
          await manager.close().catch(() => undefined);
        }
      });
    });
    describe("manager", () => {
      test("wait with first-exception and a timeout returns the done and pending agents when one stopped cleanly", async () => {
        await using manager = await open();
        const a = await manager.launch(Counter);
        const b = await manager.launch(Counter);
        await manager.shutdown(a);
        const result = await manager.wait([a, b], { returnWhen: ReturnWhen.FirstException, timeoutMs: 100 });
        expect(result.done.map((id) => id.uid)).toEqual([a.agentId.uid]);
        expect(result.pending.map((id) => id.uid)).toEqual([b.agentId.uid]);
        // Nothing stopped in time: a timeout, whatever returnWhen says.
        await expect(manager.wait([b], { returnWhen: ReturnWhen.FirstException, timeoutMs: 50 })).rejects.toThrow(WaitTimeoutError);
        await expect(manager.wait([b], { returnWhen: ReturnWhen.FirstCompleted, timeoutMs: 50 })).rejects.toThrow(WaitTimeoutError);
        expect((await manager.wait([a], { returnWhen: ReturnWhen.FirstCompleted })).done.map((id) => id.uid)).toEqual([a.agentId.uid]);
      });
    });
  });
}

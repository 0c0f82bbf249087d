/**
 * Academy parity, run against every exchange beside `exchange-conformance.ts`: the behaviours
 * issue 10 found differing from Academy (each test failed before its fix), and the Academy APIs
 * added for it.
 */
import { pino } from "pino";
import { describe, expect, test } from "vitest";
import {
  ActionArgumentsError,
  ActionCancelledError,
  AgentStateError,
  AgentTerminatedError,
  EventLoopExecutor,
  InvalidClientError,
  InvalidConfigError,
  MailboxStatus,
  Manager,
  PingCancelledError,
  ReturnWhen,
  SendOnlyClientError,
  UnknownExecutorError,
  WaitTimeoutError,
} from "../../src/index.ts";
import type { ActionContext, Handle, ManagerOptions } from "../../src/index.ts";
import type { ConformanceTarget } from "./exchange-conformance.ts";
import {
  Busy,
  CallerProbe,
  ContextCounter,
  Counter,
  Dawdler,
  GatedFailure,
  HandleHolder,
  Parent,
  RingNode,
  SlowStarter,
  SourceCaller,
  SourceProbe,
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


    describe("action context", () => {
      test("@action({ context: true }) with an omitted optional argument: the context never takes its place", async () => {
        await using manager = await open();
        const handle = await manager.launch(ContextCounter);
        const first = await handle.inc();
        expect(first.count).toBe(1);
        expect(typeof first.tag).toBe("string");
        expect((await handle.inc(5)).count).toBe(6);
      });

      test("@action({ context: true }) refuses arguments in the context's place", async () => {
        await using manager = await open();
        const handle = await manager.launch(ContextCounter);
        await expect(handle.action("inc", 1, "not a context")).rejects.toThrow(ActionArgumentsError);
        // @ts-expect-error: the typed proxy takes no argument in the context's place
        await expect(handle.inc(1, {} as ActionContext)).rejects.toThrow(ActionArgumentsError);
        expect((await handle.inc(2)).count).toBe(2);
      });

      test("this.actionContext: the action, and whether its caller is an agent or a user, with a handle to an agent caller", async () => {
        await using manager = await open();
        const probe = new SourceProbe();
        const probeHandle = await manager.launch(probe);
        const fromUser = await probeHandle.whoCalled();
        expect(fromUser).toMatchObject({
          action: "whoCalled",
          source: manager.exchangeClient.clientId.uid,
          sourceRole: "user",
          isAgentSource: false,
          isUserSource: true,
        });
        const caller = await manager.launch(SourceCaller);
        const fromAgent = await caller.ask(probeHandle);
        expect(fromAgent).toMatchObject({ source: caller.agentId.uid, sourceRole: "agent", isAgentSource: true, isUserSource: false });
        expect(fromAgent.tag).not.toBe(fromUser.tag);
        expect(await caller.askCallBack(probeHandle, 3)).toBe(3);
        await expect(probeHandle.callBack(1)).rejects.toThrow(InvalidClientError);
        expect(await probe.outside.promise).toBeInstanceOf(AgentStateError);
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

      test("a handle stored in an agent before launch(instance) sends from the agent's own mailbox", async () => {
        await using manager = await open();
        const probe = await manager.launch(CallerProbe);
        expect(await probe.caller()).toBe(manager.exchangeClient.clientId.uid);
        const agent = new HandleHolder(manager.getHandle(probe.agentId));
        const holder = await manager.launch(agent);
        expect(await holder.askPeer()).toBe(holder.agentId.uid);
        expect(await agent.startupCaller.promise).toBe(holder.agentId.uid);
        // Outside the agent, the same handle still sends from the manager's client.
        expect(await agent.peer.caller()).toBe(manager.exchangeClient.clientId.uid);
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
    describe("Academy APIs", () => {
      test("launchBatch: a ring whose nodes get each other's handles as launch arguments, in one call", async () => {
        await using manager = await open();
        const ring = await manager.launchBatch(
          Array.from({ length: 3 }, (_, i) => ({ agent: RingNode, name: `node-${i}`, args: (h: readonly Handle[]) => [h[(i + 1) % 3]] })),
        );
        expect(ring.map((h) => h.agentId.name)).toEqual(["node-0", "node-1", "node-2"]);
        expect(await (ring[0] as Handle<RingNode>).pass(5)).toBe(ring[2]!.agentId.uid);
        // Each node's handle to the next arrived bound to the node itself.
        expect(await (ring[1] as Handle<RingNode>).whoAmIToNext()).toBe(ring[1]!.agentId.uid);
        expect(manager.running().length).toBe(3);
      });

      test("launchBatch refuses a bad entry before registering anything", async () => {
        await using manager = await open();
        await expect(
          manager.launchBatch([{ agent: RingNode, args: (h: readonly Handle[]) => [h[1]] }, { agent: RingNode, executor: "nowhere" }]),
        ).rejects.toThrow(UnknownExecutorError);
        expect(await manager.exchangeClient.discover(RingNode)).toEqual([]);
        expect(manager.running()).toEqual([]);
      });

      test("agentLaunchAlongside: children run with the parent and are shut down with it", async () => {
        await using manager = await open();
        const parent = await manager.launch(Parent);
        const child = await parent.spawnCounter();
        expect(child.agentId.name).toBe("child-counter");
        expect(await child.increment(2)).toBe(2);
        expect(await parent.incrementChild(3)).toBe(5);
        const probe = await manager.launch(CallerProbe);
        const holder = await parent.spawnHolder(probe);
        // Its launch argument arrived bound to the child itself.
        expect(await holder.askPeer()).toBe(holder.agentId.uid);
        const recorder = await parent.spawnRecorder();
        expect(await recorder.record("x")).toBe(1);
        // Children belong to their parent, not to the manager.
        expect(manager.running().map((id) => id.uid).sort()).toEqual([parent.agentId.uid, probe.agentId.uid].sort());
        await manager.shutdown(parent);
        for (const id of [child.agentId, holder.agentId, recorder.agentId]) {
          expect(await manager.exchangeClient.status(id)).toBe(MailboxStatus.Terminated);
        }
        await expect(child.increment()).rejects.toThrow(AgentTerminatedError);
      });

      test("agentStats: calls handled, failed and in flight per action, run times, loop states, uptime", async () => {
        await using manager = await open();
        const agent = new Busy();
        const busy = await manager.launch(agent);
        for (let i = 0; i < 3; i++) await busy.work(5);
        await expect(busy.fail()).rejects.toThrow("failed on purpose");
        const holding = busy.hold();
        await agent.holding.promise;
        const stats = await busy.agentStats();
        expect(stats).toMatchObject({ agentId: busy.agentId.uid, agentType: "Busy", state: "running", children: 0 });
        expect(stats.startedAt).toBeLessThanOrEqual(Date.now());
        expect(stats.uptimeMs).toBeGreaterThanOrEqual(0);
        const work = stats.actions.work!;
        expect([work.handled, work.failed, work.inFlight]).toEqual([3, 0, 0]);
        expect(work.meanMs).toBeGreaterThan(1);
        expect(work.p99Ms).toBeGreaterThanOrEqual(work.meanMs! * 0.9);
        expect(work.p99Ms).toBeLessThanOrEqual(work.maxMs!);
        expect(stats.actions.fail).toMatchObject({ handled: 1, failed: 1, inFlight: 0 });
        expect(stats.actions.hold).toMatchObject({ handled: 0, inFlight: 1, meanMs: undefined, p99Ms: undefined });
        // The agentStats call itself is running too.
        expect([stats.handled, stats.failed, stats.inFlight]).toEqual([4, 1, 2]);
        expect(stats.loops).toEqual([{ name: "watch", kind: "loop", state: "running" }]);
        agent.gate.resolve();
        await holding;
        expect((await busy.agentStats()).actions.hold).toMatchObject({ handled: 1, inFlight: 0 });
      });

      test("registerAgents, userId, exchangeClient.factory(), addExecutor and setDefaultExecutor", async () => {
        await using manager = await open();
        expect(manager.userId.uid).toBe(manager.exchangeClient.clientId.uid);
        expect(manager.userId.role).toBe("user");
        expect(manager.exchangeClient.factory()).toBe(manager.exchangeFactory);
        // As Academy's Manager(exchange_client): the factory comes from the client.
        const second = new Manager(await manager.exchangeFactory.createUserClient(), { maxRetries: 1 });
        expect(second.exchangeFactory).toBe(manager.exchangeFactory);
        expect(await (await second.launch(Counter)).increment(1)).toBe(1);
        await second.close();
        const [a, b] = await manager.registerAgents([Counter, { agent: Counter, name: "b" }]);
        expect(b!.agentId.name).toBe("b");
        expect((await manager.exchangeClient.discover(Counter)).map((id) => id.uid).sort()).toEqual([a!.agentId.uid, b!.agentId.uid].sort());
        const executor = new EventLoopExecutor();
        expect(manager.addExecutor("second", executor)).toBe(manager);
        expect(() => manager.addExecutor("second", executor)).toThrow(InvalidConfigError);
        expect(() => manager.setDefaultExecutor("nowhere")).toThrow(UnknownExecutorError);
        expect(manager.setDefaultExecutor("second").defaultExecutor).toBe("second");
        const counter = await manager.launch(Counter, { registration: a! });
        expect(await counter.increment(2)).toBe(2);
      });

      test("createUserClient({ startListener: false }): a send-only client registers, discovers and sends shutdowns, and refuses calls", async () => {
        await using manager = await open();
        const sender = await manager.exchangeFactory.createUserClient({ startListener: false });
        try {
          expect(sender.listening).toBe(false);
          const counter = await manager.launch(Counter);
          expect((await sender.discover(Counter)).map((id) => id.uid)).toEqual([counter.agentId.uid]);
          await expect(sender.getHandle(counter.agentId).increment()).rejects.toThrow(SendOnlyClientError);
          await expect(sender.getHandle(counter.agentId).ping()).rejects.toThrow(SendOnlyClientError);
          await sender.getHandle(counter.agentId).shutdown();
          await manager.wait([counter], { timeoutMs: 10_000 });
          expect(await sender.status(counter.agentId)).toBe(MailboxStatus.Terminated);
        } finally {
          await sender.close();
        }
        expect(await manager.exchangeClient.status(sender.clientId)).toBe(MailboxStatus.Terminated);
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

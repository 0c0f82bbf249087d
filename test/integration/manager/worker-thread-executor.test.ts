/**
 * The worker-thread executor, on the in-process exchange and on NATS: agents run in worker threads
 * of their own, restart in fresh workers, survive `process.exit` with their in-flight requests,
 * queue for a free worker; and the agent-module registry the workers find classes in.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { threadId as mainThreadId } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  Agent,
  AgentDefinitionError,
  AgentTerminatedError,
  ExecutorError,
  InvalidConfigError,
  LocalExchangeFactory,
  MailboxStatus,
  Manager,
  NatsExchangeFactory,
  action,
} from "../../../src/index.ts";
import type { ExchangeFactory, Handle, ManagerOptions } from "../../../src/index.ts";
import { loadAgentClasses, requireAgentClass } from "../../../src/manager/agent-modules.ts";
import { WorkerThreadExecutor } from "../../../src/manager/worker-thread-executor.ts";
import type { WorkerThreadExecutorOptions } from "../../../src/manager/worker-thread-executor.ts";
import { deferred } from "../../../src/util/deferred.ts";
import { Caller, Counter, Cruncher, Exiter, FlakyStartup, Relay, Spawner } from "../../fixtures/worker-agents.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

const AGENTS = new URL("../../fixtures/worker-agents.ts", import.meta.url);
const DUPLICATE_AGENTS = new URL("../../fixtures/worker-agents-duplicate.ts", import.meta.url);
const BROKEN_AGENTS = new URL("../../fixtures/broken-agent-module.ts", import.meta.url);
/** Workers load the TypeScript fixtures through tsx (see the preload for why not `--import tsx`). */
const EXEC_ARGV = ["--import", new URL("../../fixtures/register-tsx.mjs", import.meta.url).href];

/** Lives in the main thread (event-loop executor); `arrived` resolves when an agent calls `arrive`. */
class Latch extends Agent {
  readonly #arrived = deferred();
  readonly arrived = this.#arrived.promise;

  @action
  async arrive(): Promise<void> {
    this.#arrived.resolve();
  }
}

/** Defined here only, so no worker can find it in the agent modules. */
class NotInModules extends Agent {
  @action
  async hello(): Promise<string> {
    return "hello";
  }
}

let dir: string;
let serial = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "worker-executor-"));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
});

/** A path in the test's temporary directory that does not exist yet. */
function tempPath(name: string): string {
  return join(dir, `${name}-${++serial}`);
}

const exchanges: Array<{ name: string; create(): ExchangeFactory }> = [
  { name: "in-process", create: () => new LocalExchangeFactory() },
  {
    name: "NATS",
    create: () =>
      new NatsExchangeFactory({
        servers: shared.nats.url,
        prefix: `wte${process.pid}_${++serial}`,
        ...(shared.nats.connectionOptions.user === undefined
          ? {}
          : { connectionOptions: { user: shared.nats.connectionOptions.user, pass: shared.nats.connectionOptions.pass } }),
      }),
  },
];

/** A manager whose default executor is a fresh worker-thread executor, and that executor. */
async function workerManager(
  factory: ExchangeFactory,
  options: Partial<WorkerThreadExecutorOptions> = {},
  managerOptions: ManagerOptions = {},
): Promise<{ manager: Manager; executor: WorkerThreadExecutor }> {
  const executor = new WorkerThreadExecutor({ modules: [AGENTS], execArgv: EXEC_ARGV, ...options });
  const manager = await Manager.fromExchangeFactory(factory, {
    executors: { workers: executor },
    retryBackoffMs: 10,
    ...managerOptions,
  });
  return { manager, executor };
}

/** The error `manager.wait` raises for these agents (fails the test if it raises none). */
async function waitError(manager: Manager, agents: Parameters<Manager["wait"]>[0]): Promise<Error> {
  const error = await manager.wait(agents, { raiseError: true, timeoutMs: 20_000 }).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(error, "the agent should have failed").toBeInstanceOf(Error);
  return error!;
}

/**
 * What a call settles with: its error, or `"resolved"`. Handled from the start, so that a call
 * failing before the test looks at it is not an unhandled rejection.
 */
function settled(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    () => "resolved",
    (error: unknown) => error,
  );
}

describe.each(exchanges)("WorkerThreadExecutor on the $name exchange", ({ create }) => {
  test("runs each agent in a worker thread: actions, discover, shutdown, wait", async () => {
    const { manager, executor } = await workerManager(create());
    try {
      const counter = await manager.launch(Counter, { args: [5] });
      expect(await counter.increment(2)).toBe(7);
      const counterThread = await counter.threadId();
      expect(counterThread).not.toBe(mainThreadId);
      expect(await manager.exchangeClient.discover(Counter)).toContainEqual(counter.agentId);

      // A CPU-bound agent blocks only its own thread: while it spins, the main thread and the
      // counter's worker answer; the spin ends only when the main thread writes the flag.
      const cruncher = await manager.launch(Cruncher);
      expect(await cruncher.countPrimes(20_000)).toBe(2262);
      const latch = new Latch();
      const latchHandle = await manager.launch(latch, { executor: "event-loop" });
      const flag = tempPath("flag");
      const spin = cruncher.spinUntil(flag, latchHandle, 15_000);
      await latch.arrived;
      expect(await counter.increment(1)).toBe(8);
      writeFileSync(flag, "go");
      const spun = await spin;
      expect(spun.sawFlag).toBe(true);
      expect([mainThreadId, counterThread]).not.toContain(spun.threadId);
      expect(executor.running).toBe(2);

      await manager.shutdown(cruncher);
      expect(await manager.exchangeClient.status(cruncher.agentId)).toBe(MailboxStatus.Terminated);
      await counter.stop();
      await manager.wait([counter], { raiseError: true, timeoutMs: 20_000 });
      expect(manager.running().map((id) => id.uid)).toEqual([latchHandle.agentId.uid]);
      expect(executor.running).toBe(0);
    } finally {
      await manager.close();
    }
  });

  test("a handle passed as a launch argument works inside the worker", async () => {
    const { manager } = await workerManager(create());
    try {
      const target = await manager.launch(Counter, { executor: "event-loop" });
      const caller = await manager.launch(Caller, { args: [target] });
      expect(await caller.callTarget(3)).toBe(3);
      expect(await caller.callTarget(4)).toBe(7);
      expect(await target.count()).toBe(7);
    } finally {
      await manager.close();
    }
  });

  test("launchBatch: a ring of agents in worker threads, each launched with the next one's handle", async () => {
    const { manager } = await workerManager(create(), { maxWorkers: 2 });
    try {
      const [a, b] = await manager.launchBatch([
        { agent: Relay, args: (h: readonly Handle[]) => [h[1]] },
        { agent: Relay, args: (h: readonly Handle[]) => [h[0]] },
      ]);
      const threads = await a.pass(3);
      expect(threads).toHaveLength(4);
      expect([threads[2], threads[3]]).toEqual([threads[0], threads[1]]);
      expect(threads[0]).not.toBe(threads[1]);
      expect(threads).not.toContain(mainThreadId);
      await manager.shutdown(b);
    } finally {
      await manager.close();
    }
  });

  test("agentLaunchAlongside in a worker: the child runs in its parent's thread and stops with it", async () => {
    const { manager } = await workerManager(create());
    try {
      const spawner = await manager.launch(Spawner);
      const child = await spawner.spawn(10);
      expect(await child.increment(1)).toBe(11);
      expect(await child.threadId()).toBe(await spawner.threadId());
      expect((await spawner.agentStats()).children).toBe(1);
      await manager.shutdown(spawner);
      expect(await manager.exchangeClient.status(child.agentId)).toBe(MailboxStatus.Terminated);
    } finally {
      await manager.close();
    }
  });

  test("an agent failing at startup restarts in a fresh worker; the last failure is raised", async () => {
    const { manager } = await workerManager(create());
    try {
      const flaky = await manager.launch(FlakyStartup, { args: [tempPath("attempts"), 2], maxRetries: 2 });
      expect(await flaky.attempts()).toBe(3);

      const doomed = await manager.launch(FlakyStartup, { args: [tempPath("attempts"), 2], maxRetries: 1 });
      const error = await waitError(manager, [doomed]);
      expect(error.name).toBe("Error");
      expect(error.message).toBe("startup failure 2");
      await expect(doomed.attempts()).rejects.toBeInstanceOf(AgentTerminatedError);
    } finally {
      await manager.close().catch(() => undefined);
    }
  });

  test("process.exit in an action fails the agent with ExecutorError and terminates its mailbox", async () => {
    const { manager } = await workerManager(create());
    try {
      const exiter = await manager.launch(Exiter);
      const pending = settled(exiter.with({ timeoutMs: 20_000 }).exit(3));
      const error = await waitError(manager, [exiter]);
      expect(error).toBeInstanceOf(ExecutorError);
      expect(error.message).toContain("exit code 3");
      expect((error.cause as { exitCode?: number }).exitCode).toBe(3);
      // The request in flight is not left waiting.
      expect(await pending).toBeInstanceOf(AgentTerminatedError);
    } finally {
      await manager.close().catch(() => undefined);
    }
  });

  test("with retries, a worker that exits is replaced and the in-flight request is answered", async () => {
    const { manager } = await workerManager(create(), {}, { maxRetries: 1 });
    try {
      const exiter = await manager.launch(Exiter);
      const marker = tempPath("marker");
      // The first run exits mid-request; the request returns to the mailbox and the second run answers it.
      expect(await exiter.exitOnce(marker)).toBe("survived");
      await manager.shutdown(exiter);
    } finally {
      await manager.close();
    }
  });

  test("maxWorkers = 1 queues a second agent until the first stops", async () => {
    const { manager, executor } = await workerManager(create(), { maxWorkers: 1 });
    try {
      const first = await manager.launch(Counter);
      const second = await manager.launch(Counter, { args: [100] });
      expect(executor.queued).toBe(1);
      expect(await first.increment(1)).toBe(1);
      const waiting = second.increment(1);
      expect(await first.increment(1)).toBe(2);
      expect(executor.queued).toBe(1);
      expect(executor.running).toBe(1);

      await manager.shutdown(first);
      expect(await waiting).toBe(101);
      expect(executor.queued).toBe(0);
      expect(executor.running).toBe(1);
    } finally {
      await manager.close();
    }
  });

  test("launching an instance on the worker executor fails with ExecutorError", async () => {
    const { manager, executor } = await workerManager(create());
    try {
      const handle = await manager.launch(new Counter());
      const error = await waitError(manager, [handle]);
      expect(error).toBeInstanceOf(ExecutorError);
      expect(error.message).toContain("instance");
      expect(await manager.exchangeClient.status(handle.agentId)).toBe(MailboxStatus.Terminated);
      expect(executor.running).toBe(0);
    } finally {
      await manager.close().catch(() => undefined);
    }
  });

  test("launching an agent type the modules do not export fails at launch with AgentDefinitionError", async () => {
    const { manager } = await workerManager(create());
    try {
      const error = (await manager.launch(NotInModules).catch((e: unknown) => e)) as Error;
      expect(error).toBeInstanceOf(AgentDefinitionError);
      expect((error as AgentDefinitionError).agentType).toBe("NotInModules");
      expect(error.message).toContain("worker-agents.ts");
      // Refused before registration: no mailbox was made for it.
      expect(await manager.exchangeClient.discover(NotInModules)).toEqual([]);
      expect(manager.running()).toEqual([]);
    } finally {
      await manager.close().catch(() => undefined);
    }
  });
});

describe("WorkerThreadExecutor", () => {
  test("validates its options", () => {
    expect(() => new WorkerThreadExecutor({ modules: [] })).toThrow(InvalidConfigError);
    expect(() => new WorkerThreadExecutor({ modules: [AGENTS], maxWorkers: 0 })).toThrow(InvalidConfigError);
    expect(() => new WorkerThreadExecutor({ modules: [AGENTS], maxWorkers: 1.5 })).toThrow(InvalidConfigError);
  });

  test("an uncaught exception in the worker fails the run with ExecutorError carrying it", async () => {
    const { manager } = await workerManager(new LocalExchangeFactory());
    try {
      const exiter = await manager.launch(Exiter);
      // The crash (a timer throwing) may come before or after the action's reply: either is fine.
      const call = exiter.throwUncaught("thrown from a timer").catch(() => undefined);
      const error = await waitError(manager, [exiter]);
      await call;
      expect(error).toBeInstanceOf(ExecutorError);
      expect(error.message).toContain("crashed");
      expect((error.cause as Error).message).toBe("thrown from a timer");
    } finally {
      await manager.close().catch(() => undefined);
    }
  });

  test("an agent module that cannot be imported fails the launch itself with the import error", async () => {
    const { manager } = await workerManager(new LocalExchangeFactory(), { modules: [AGENTS, BROKEN_AGENTS] });
    try {
      const error = (await manager.launch(Counter).catch((e: unknown) => e)) as Error;
      expect(error).toBeInstanceOf(ExecutorError);
      expect(await manager.exchangeClient.discover(Counter)).toEqual([]);
      expect(error.message).toContain("broken-agent-module.ts");
      expect((error.cause as Error).message).toBe("broken on purpose");
    } finally {
      await manager.close().catch(() => undefined);
    }
  });

  test("close() terminates running workers and fails queued launches", async () => {
    const { manager, executor } = await workerManager(new LocalExchangeFactory(), { maxWorkers: 1 });
    try {
      const running = await manager.launch(Counter);
      const queued = await manager.launch(Counter);
      expect(await running.increment(1)).toBe(1);
      expect(executor.queued).toBe(1);
      await executor.close();
      for (const handle of [running, queued]) {
        const error = await waitError(manager, [handle]);
        expect(error).toBeInstanceOf(ExecutorError);
        expect(error.message).toContain("closed");
      }
      expect(executor.running).toBe(0);
      expect(executor.queued).toBe(0);
      await expect(queued.increment(1)).rejects.toBeInstanceOf(AgentTerminatedError);
    } finally {
      await manager.close().catch(() => undefined);
    }
  });
});

describe("loadAgentClasses", () => {
  test("collects every exported agent class by type name", async () => {
    const classes = await loadAgentClasses([AGENTS]);
    expect([...classes.keys()].sort()).toEqual(["Caller", "Counter", "Cruncher", "Exiter", "FlakyStartup", "Relay", "Spawner"]);
    expect(classes.get("Counter")).toBe(Counter);
    expect(requireAgentClass(classes, "Cruncher")).toBe(Cruncher);
  });

  test("takes paths relative to the working directory, and the same class twice", async () => {
    const classes = await loadAgentClasses(["test/fixtures/worker-agents.ts", "./test/fixtures/worker-agents.ts", AGENTS]);
    expect(classes.get("Counter")).toBe(Counter);
  });

  test("rejects two classes with the same type name, naming both modules", async () => {
    const error = await loadAgentClasses([AGENTS, DUPLICATE_AGENTS]).catch((e: unknown) => e as AgentDefinitionError);
    expect(error).toBeInstanceOf(AgentDefinitionError);
    expect((error as AgentDefinitionError).agentType).toBe("Counter");
    expect((error as Error).message).toContain("worker-agents.ts");
    expect((error as Error).message).toContain("worker-agents-duplicate.ts");
  });

  test("a module that fails to import is an ExecutorError with the cause", async () => {
    const broken = await loadAgentClasses([BROKEN_AGENTS]).catch((e: unknown) => e as Error);
    expect(broken).toBeInstanceOf(ExecutorError);
    expect((broken as Error).cause).toBeInstanceOf(Error);
    expect(((broken as Error).cause as Error).message).toBe("broken on purpose");

    const missing = await loadAgentClasses(["./test/fixtures/no-such-module.ts"]).catch((e: unknown) => e as Error);
    expect(missing).toBeInstanceOf(ExecutorError);
    expect((missing as Error).message).toContain("no-such-module.ts");
  });

  test("requireAgentClass names the missing type and the modules searched", async () => {
    const classes = await loadAgentClasses([AGENTS]);
    let error: unknown;
    try {
      requireAgentClass(classes, "Nope", [AGENTS]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AgentDefinitionError);
    expect((error as AgentDefinitionError).agentType).toBe("Nope");
    expect((error as Error).message).toContain("worker-agents.ts");
  });
});

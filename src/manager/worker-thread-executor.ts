/**
 * Runs each launched agent in a worker thread of its own, so CPU-bound agents do not block the
 * manager's event loop (or each other).
 */
import { availableParallelism } from "node:os";
import { MessagePort, Worker } from "node:worker_threads";
import type { ResourceLimits } from "node:worker_threads";
import type { Agent } from "../agent/agent.ts";
import { agentTypeName } from "../agent/agent-type.ts";
import type { AgentClass } from "../agent/agent-type.ts";
import { resolveRuntimeConfig } from "../agent/runtime-config.ts";
import type { RuntimeConfig } from "../agent/runtime-config.ts";
import { AgentDefinitionError, ExecutorError, InvalidConfigError } from "../errors.ts";
import type { UserExchangeClient } from "../exchange/exchange-client.ts";

import type { WorkerFactoryDescriptor } from "../exchange/exchange-factory.ts";
import { encodeValue } from "../protocol/codec.ts";
import { fromFailure } from "../protocol/failure.ts";
import { assertNever } from "../protocol/messages.ts";
import { silentLogger } from "../util/logger.ts";
import type { Logger } from "../util/logger.ts";
import { agentModuleName } from "./agent-modules.ts";
import { runWithRetries } from "./executor.ts";
import type { AgentExecution, AgentExecutor, LaunchSpec, PrepareSpec, RunOutcome } from "./executor.ts";
import type { WorkerLaunchData, WorkerProbeData, WorkerProbeReport, WorkerReport } from "./worker-entry.ts";

/** The `executor` field of this executor's errors. */
const EXECUTOR = "worker-thread";

/**
 * The worker's main module, next to this one: `.ts` when this file runs from the TypeScript
 * sources (tests, tsx), `.js` in the compiled package.
 */
const WORKER_ENTRY = new URL(
  `./worker-entry${/\.ts$/.test(new URL(import.meta.url).pathname) ? ".ts" : ".js"}`,
  import.meta.url,
);

/** Options of {@link WorkerThreadExecutor}. */
export interface WorkerThreadExecutorOptions {
  /**
   * Modules that export the agent classes (file paths, `file:` URLs or package specifiers; relative
   * paths against `process.cwd()`). Each worker imports them all and runs the exported class whose
   * type name (`agentTypeName`) is the launched class's; see `loadAgentClasses`. Required: a class
   * cannot cross threads, only its name can.
   */
  modules: Array<string | URL>;
  /**
   * Most agents running at once (one worker thread each). Further launches wait, first in first
   * out, until a running agent stops.
   * @defaultValue `os.availableParallelism()`
   */
  maxWorkers?: number;
  /**
   * Node options of the workers, e.g. a preload that registers a TypeScript loader when the agent
   * modules (or this library) are `.ts` files. Note that on Node 20 `--import tsx` registers tsx's
   * hooks in the main thread only; preload a module that calls `register()` from `"tsx/esm/api"`
   * instead.
   * @defaultValue the parent's `process.execArgv`, as Node does
   */
  execArgv?: string[];
  /** Heap and stack limits of each worker; a worker that exceeds them dies (a failed, retryable run). */
  resourceLimits?: ResourceLimits;
  /**
   * Logger of the executor's own events (workers started, crashed). The agents in the workers log
   * to the worker's stdout at the level of the manager's logger (silent when it is).
   * @defaultValue silent
   */
  logger?: Logger;
}

/** What the executor knows of one live worker. */
interface LiveWorker {
  /** Set when `close()` terminated the worker. */
  killed: boolean;
  /** Resolves once the worker has exited. */
  readonly exited: Promise<void>;
}

/** One run in a worker: its outcome, and whether the agent's engine got to report it. */
interface WorkerRun {
  readonly outcome: RunOutcome;
  /**
   * The engine reported the outcome itself, having already settled the mailbox per the config.
   * When false (the worker died, or never ran the agent), the executor settles it.
   */
  readonly reported: boolean;
}

/**
 * Runs each agent in a fresh worker thread (`node:worker_threads`), for its whole life: the agent
 * keeps its worker until it stops, so at most `maxWorkers` agents run at once and further launches
 * queue (FIFO) until one stops. A retried agent holds its place across retries and gets a fresh
 * worker for each run.
 *
 * The worker imports `modules` and finds the agent's class by type name; constructor arguments
 * reach it CBOR-encoded (handles among them arrive bound to the agent's client), and the exchange
 * is reached through the factory's worker descriptor (`ExchangeFactory.forWorker`): a message port
 * to the in-process exchange, or a connection of the worker's own to NATS. Launching an instance
 * rather than a class fails: instances cannot cross threads.
 *
 * Failure semantics: a worker that dies without reporting an outcome (`process.exit` in agent code,
 * an uncaught exception, running out of memory under `resourceLimits`) is a failed, retryable run
 * with an {@link ExecutorError}; requests it was handling go back to the mailbox (at-least-once)
 * and reach the next run. When the last run ends that way and the agent's `terminateOnError` is
 * set, the executor terminates the mailbox itself, as the engine would have, so that callers get
 * `AgentTerminatedError` rather than wait forever.
 *
 * ```ts
 * const manager = await Manager.fromExchangeFactory(factory, {
 *   executors: { workers: new WorkerThreadExecutor({ modules: ["./dist/agents.js"] }) },
 * });
 * const solver = await manager.launch(Solver, { args: [42] });
 * ```
 */
export class WorkerThreadExecutor implements AgentExecutor, AsyncDisposable {
  readonly #modules: readonly string[];
  readonly #maxWorkers: number;
  readonly #execArgv: string[] | undefined;
  readonly #resourceLimits: ResourceLimits | undefined;
  readonly #logger: Logger;
  readonly #workers = new Map<Worker, LiveWorker>();
  readonly #waiting: Array<{ resolve(): void; reject(error: Error): void }> = [];
  readonly #executions = new Set<Promise<void>>();
  /** Agents holding a worker slot (running, or between two runs). */
  #busy = 0;
  /** The type names the modules export, as a worker thread imports them (kept once it succeeds). */
  #exported: Promise<ReadonlySet<string>> | undefined;
  #closing: Promise<void> | undefined;

  /** @throws {InvalidConfigError} for no modules or a `maxWorkers` that is not a positive integer. */
  constructor(options: WorkerThreadExecutorOptions) {
    const modules = [...(options.modules ?? [])];
    if (modules.length === 0) {
      throw new InvalidConfigError("A WorkerThreadExecutor needs the modules that export its agent classes", {
        option: "modules",
      });
    }
    this.#modules = modules.map(agentModuleName);
    const maxWorkers = options.maxWorkers ?? availableParallelism();
    if (!Number.isInteger(maxWorkers) || maxWorkers < 1) {
      throw new InvalidConfigError(`maxWorkers must be a positive integer (got ${maxWorkers})`, { option: "maxWorkers" });
    }
    this.#maxWorkers = maxWorkers;
    this.#execArgv = options.execArgv === undefined ? undefined : [...options.execArgv];
    this.#resourceLimits = options.resourceLimits;
    this.#logger = (options.logger ?? silentLogger).child({ executor: EXECUTOR });
  }

  /** Most agents running at once. */
  get maxWorkers(): number {
    return this.#maxWorkers;
  }

  /** Agents that hold a worker (running, or restarting after a failed run). */
  get running(): number {
    return this.#busy;
  }

  /** Launched agents waiting for a worker. */
  get queued(): number {
    return this.#waiting.length;
  }

  /**
   * Check, before the agent is registered, that a worker thread can import the agent modules and
   * finds the agent's type in them: the launch fails with the import error itself, rather than the
   * agent's callers seeing only its terminated mailbox. The modules are imported once per
   * executor, in a short-lived worker (with the executor's `execArgv`); a failed import is tried
   * again at the next launch.
   * @throws {ExecutorError} when the modules cannot be imported (the module's error is the `cause`).
   * @throws {AgentDefinitionError} (with `agentType`) when no module exports the agent's type.
   */
  async prepare(spec: PrepareSpec): Promise<void> {
    if (typeof spec.agent === "object") return; // an instance: refused by execute, as before
    const exported = await this.#exportedTypes();
    const type = spec.agentType.name;
    if (!exported.has(type)) {
      const modules = this.#modules.map((m) => `'${m}'`).join(", ");
      throw new AgentDefinitionError(
        `No agent class of type '${type}' is exported by the agent modules (${modules}); found: ${[...exported].sort().join(", ") || "none"}`,
        { agentType: type },
      );
    }
  }

  #exportedTypes(): Promise<ReadonlySet<string>> {
    if (this.#exported === undefined) {
      const probing = this.#probe();
      this.#exported = probing;
      probing.catch(() => {
        if (this.#exported === probing) this.#exported = undefined;
      });
    }
    return this.#exported;
  }

  /** Import the modules in a worker thread; the type names they export. */
  async #probe(): Promise<ReadonlySet<string>> {
    const workerData: WorkerProbeData = { probe: true, modules: this.#modules };
    const worker = new Worker(WORKER_ENTRY, {
      workerData,
      name: "academy module probe",
      ...(this.#execArgv === undefined ? {} : { execArgv: this.#execArgv }),
      ...(this.#resourceLimits === undefined ? {} : { resourceLimits: this.#resourceLimits }),
    });
    const report = await new Promise<WorkerProbeReport | Error>((resolve) => {
      let received: WorkerProbeReport | undefined;
      let failure: unknown;
      worker.on("message", (message: WorkerProbeReport) => (received ??= message));
      worker.on("error", (error) => (failure ??= error));
      worker.once("exit", (exitCode) =>
        resolve(
          received ??
            new ExecutorError(`A worker thread importing the agent modules exited (exit code ${exitCode}) without reporting`, {
              executor: EXECUTOR,
              cause: failure,
            }),
        ),
      );
    });
    if (report instanceof Error) throw report;
    if (report.type === "probe-failed") throw fromFailure(report.failure);
    return new Set(report.types);
  }

  /**
   * Start running an agent, in a worker once one is free. Returns at once; `done` rejects with
   * {@link ExecutorError} if `spec.agent` is an instance, or if the executor is (or gets) closed
   * before the agent has stopped.
   */
  execute<A extends Agent>(spec: LaunchSpec<A>): AgentExecution {
    const done = this.#execute(spec as unknown as LaunchSpec);
    const tracked = done.catch(() => undefined).finally(() => this.#executions.delete(tracked));
    this.#executions.add(tracked);
    return { done };
  }

  /**
   * Terminate the workers still running (their runs fail with {@link ExecutorError}, not retried),
   * fail the launches still queued the same way, and wait for every execution to end. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    const error = this.#closedError();
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
    await Promise.all(
      [...this.#workers].map(async ([worker, live]) => {
        live.killed = true;
        await worker.terminate();
        await live.exited;
      }),
    );
    await Promise.all([...this.#executions]);
  }

  async #execute(spec: LaunchSpec): Promise<void> {
    const agentId = spec.registration.agentId;
    const logger = this.#logger.child({ agentId: agentId.uid, agentType: spec.registration.agentType.name });
    let reported = false;
    try {
      if (typeof spec.agent !== "function") {
        throw new ExecutorError(
          `Agent ${agentId} was launched as an instance; a worker thread can only run an agent class ` +
            "(launch the class with its constructor arguments in `args`)",
          { executor: EXECUTOR },
        );
      }
      // A type name is what the worker looks up anyway.
      const agentType = typeof spec.agent === "string" ? spec.agent : agentTypeName(spec.agent as AgentClass);
      await this.#acquire();
      try {
        await runWithRetries(spec, async (config, attempt) => {
          const run = await this.#runInWorker(spec, agentType, config, attempt, logger);
          reported = run.reported;
          return run.outcome;
        });
      } finally {
        this.#release();
      }
    } catch (error) {
      if (!reported) await this.#settleMailbox(spec, logger);
      throw error;
    }
  }

  /** Wait for a worker slot (FIFO). */
  #acquire(): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(this.#closedError());
    if (this.#busy < this.#maxWorkers) {
      this.#busy++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** Free a slot, or hand it straight to the first waiting launch. */
  #release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next.resolve();
    else this.#busy--;
  }

  /** One run of the agent in a fresh worker. Never rejects. */
  async #runInWorker(
    spec: LaunchSpec,
    agentType: string,
    config: RuntimeConfig,
    attempt: number,
    logger: Logger,
  ): Promise<WorkerRun> {
    if (this.#closing !== undefined) return failed(this.#closedError(), false);
    // Called for every run: a port to the in-process exchange is transferred, so used once.
    let descriptor: WorkerFactoryDescriptor;
    try {
      descriptor = spec.exchangeFactory.forWorker();
    } catch (error) {
      return failed(error, false);
    }
    const level = spec.logger.level;
    const data: WorkerLaunchData = {
      agentType,
      modules: this.#modules,
      args: spec.args,
      registration: encodeValue(spec.registration),
      config,
      factory: { module: descriptor.module, data: descriptor.data },
      ...(level === "silent" ? {} : { logLevel: level, logBindings: { ...spec.logger.bindings(), attempt } }),
    };
    let worker: Worker;
    try {
      worker = new Worker(WORKER_ENTRY, {
        workerData: data,
        transferList: [...descriptor.transfer],
        name: `academy ${agentType}`,
        ...(this.#execArgv === undefined ? {} : { execArgv: this.#execArgv }),
        ...(this.#resourceLimits === undefined ? {} : { resourceLimits: this.#resourceLimits }),
      });
    } catch (error) {
      for (const item of descriptor.transfer) if (item instanceof MessagePort) item.close();
      return failed(new ExecutorError(`Could not start a worker thread for agent ${spec.registration.agentId}`, {
        executor: EXECUTOR,
        cause: error,
      }), false);
    }
    logger.debug({ threadId: worker.threadId, attempt }, "worker started");

    let report: WorkerReport | undefined;
    let workerError: unknown;
    let live!: LiveWorker;
    const run = new Promise<WorkerRun>((resolve) => {
      worker.on("message", (message: WorkerReport) => {
        report ??= message;
      });
      worker.on("error", (error) => {
        workerError ??= error;
      });
      worker.once("exit", (exitCode) => {
        this.#workers.delete(worker);
        resolve(this.#conclude(spec, report, workerError, exitCode, live.killed, logger));
      });
    });
    live = { killed: false, exited: run.then(() => undefined) };
    this.#workers.set(worker, live);
    return run;
  }

  /** What a finished worker's run amounts to. */
  #conclude(
    spec: LaunchSpec,
    report: WorkerReport | undefined,
    workerError: unknown,
    exitCode: number,
    killed: boolean,
    logger: Logger,
  ): WorkerRun {
    const agentId = spec.registration.agentId;
    if (report !== undefined) {
      switch (report.type) {
        case "succeeded":
          return { outcome: { ok: true }, reported: true };
        case "failed":
          return { outcome: { ok: false, error: fromFailure(report.failure), retryable: report.retryable }, reported: true };
        case "crashed": {
          const cause = fromFailure(report.failure);
          logger.warn({ err: cause, exitCode }, "worker crashed");
          return failed(
            new ExecutorError(`The worker thread of agent ${agentId} crashed: ${cause.message}`, { executor: EXECUTOR, cause }),
            true,
          );
        }
        default:
          return assertNever(report);
      }
    }
    if (killed) return failed(this.#closedError(), false);
    const cause =
      workerError ?? Object.assign(new Error(`The worker thread exited with code ${exitCode}`), { exitCode });
    logger.warn({ err: cause, exitCode }, "worker exited without reporting an outcome");
    const reason = workerError === undefined ? "" : `: ${(workerError as Error)?.message ?? String(workerError)}`;
    return failed(
      new ExecutorError(
        `The worker thread of agent ${agentId} exited (exit code ${exitCode}) without reporting an outcome${reason}`,
        { executor: EXECUTOR, cause, exitCode },
      ),
      true,
    );
  }

  /**
   * After a last run that the agent's engine did not report (the worker died, or never ran the
   * agent), terminate the mailbox when the config says so, as the engine would have.
   */
  async #settleMailbox(spec: LaunchSpec, logger: Logger): Promise<void> {
    if (!resolveRuntimeConfig(spec.config).terminateOnError) return;
    let client: UserExchangeClient | undefined;
    try {
      client = await spec.exchangeFactory.createUserClient({ logger });
      await client.terminate(spec.registration.agentId);
    } catch (error) {
      logger.warn({ err: error }, "could not terminate the mailbox of a failed agent");
    } finally {
      await client?.close().catch((error: unknown) => logger.warn({ err: error }, "could not close a client"));
    }
  }

  #closedError(): ExecutorError {
    return new ExecutorError("The worker-thread executor is closed", { executor: EXECUTOR });
  }
}

function failed(error: unknown, retryable: boolean): WorkerRun {
  return { outcome: { ok: false, error, retryable }, reported: false };
}

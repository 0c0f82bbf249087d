/**
 * The main module of a `WorkerThreadExecutor` worker: runs one agent once, in this thread, and
 * reports how the run ended. Not part of the public API; only the types below are shared with the
 * executor (as type-only imports, which do not run this module).
 *
 * Steps: rebuild the exchange factory from its descriptor (importing the module it names), import
 * the agent modules and find the
 * agent's class by type name, run the agent (`runAgentOnce`), close the factory, post one
 * {@link WorkerReport}, exit. Setup failures (a module that cannot be imported, an unknown type)
 * fail the agent's startup, so the engine decides about its mailbox as for any startup error.
 * An uncaught exception or unhandled rejection (a floating promise in agent code) ends the worker
 * with a `crashed` report.
 */
import { isMainThread, parentPort, threadId, workerData } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";
import { pino } from "pino";
import { Agent } from "../agent/agent.ts";
import type { AgentClass } from "../agent/agent-type.ts";
import type { RuntimeConfig } from "../agent/runtime-config.ts";
import type { AgentSource } from "../engine/agent-engine.ts";
import { ExecutorError } from "../errors.ts";
import { WORKER_FACTORY_EXPORT } from "../exchange/exchange-factory.ts";
import type { ExchangeFactory, RebuildWorkerFactory } from "../exchange/exchange-factory.ts";
import type { AgentRegistration } from "../exchange/transport.ts";

import { decodeValue } from "../protocol/codec.ts";
import { toFailure } from "../protocol/failure.ts";
import type { Failure } from "../protocol/failure.ts";
import { silentLogger } from "../util/logger.ts";
import type { Logger } from "../util/logger.ts";
import { loadAgentClasses, requireAgentClass } from "./agent-modules.ts";
import { buildFromArgs, runAgentOnce } from "./executor.ts";
import type { RunOutcome } from "./executor.ts";

/** What the executor passes to a worker (`workerData`); structured-clonable. */
export interface WorkerLaunchData {
  /** Type name of the agent class to run (`agentTypeName`). */
  readonly agentType: string;
  /** Modules to import to find the class (paths, `file:` URLs or package specifiers). */
  readonly modules: readonly string[];
  /** Constructor arguments, CBOR-encoded. */
  readonly args: Uint8Array;
  /** The `AgentRegistration`, CBOR-encoded (its `AgentId` is a class). */
  readonly registration: Uint8Array;
  /** The config of this run. */
  readonly config: RuntimeConfig;
  /** The exchange factory's descriptor, without its transfer list (a port arrives inside `data`). */
  readonly factory: { readonly module: string; readonly data: unknown };
  /** Pino level of the worker's logger (to stdout); none means silent. */
  readonly logLevel?: string | undefined;
  /** Bindings of the worker's logger (the manager's, plus the worker's). */
  readonly logBindings?: Record<string, unknown> | undefined;
}

/**
 * What the executor passes to a probe worker: import the agent modules and report the type names
 * they export (or the import error), before any agent of them is registered.
 */
export interface WorkerProbeData {
  readonly probe: true;
  readonly modules: readonly string[];
}

/** What a probe worker posts back. */
export type WorkerProbeReport =
  | { readonly type: "probed"; readonly types: readonly string[] }
  | { readonly type: "probe-failed"; readonly failure: Failure };

/** What a worker posts back: exactly one report, then it exits. */
export type WorkerReport =
  /** The agent ran and stopped normally. */
  | { readonly type: "succeeded" }
  /** The run failed; `retryable` is the engine's verdict. */
  | { readonly type: "failed"; readonly failure: Failure; readonly retryable: boolean }
  /** An uncaught exception or unhandled rejection ended the worker. */
  | { readonly type: "crashed"; readonly failure: Failure };

/**
 * The factory, in this worker, for the exchange a descriptor describes: built by the function
 * the descriptor's module exports.
 * @throws {ExecutorError} when the module cannot be imported or exports no such function.
 */
async function rebuildFactory(descriptor: WorkerLaunchData["factory"], logger: Logger): Promise<ExchangeFactory> {
  let rebuild: unknown;
  try {
    rebuild = ((await import(descriptor.module)) as Record<string, unknown>)[WORKER_FACTORY_EXPORT];
  } catch (error) {
    throw new ExecutorError(`A worker cannot import the exchange factory module ${descriptor.module}`, {
      executor: "worker-thread",
      cause: error,
    });
  }
  if (typeof rebuild !== "function") {
    throw new ExecutorError(`The exchange factory module ${descriptor.module} exports no ${WORKER_FACTORY_EXPORT} function`, {
      executor: "worker-thread",
    });
  }
  return (rebuild as RebuildWorkerFactory)(descriptor.data, logger);
}

/**
 * An agent source whose build fails with `error`: the engine then treats the error as a failed
 * startup (logs it, terminates the mailbox per `terminateOnError`, reports it retryable), exactly
 * as for a constructor that throws. `Agent` stands in for the class that could not be found; it
 * is used only to read the (empty) member list.
 */
function failingSource(error: unknown): AgentSource {
  return {
    agentClass: Agent as unknown as AgentClass,
    build(): never {
      throw error;
    },
  };
}

function report(outcome: RunOutcome): WorkerReport {
  return outcome.ok
    ? { type: "succeeded" }
    : { type: "failed", failure: toFailure(outcome.error), retryable: outcome.retryable };
}

async function run(data: WorkerLaunchData, logger: Logger, onFinished: () => void): Promise<WorkerReport> {
  let factory: ExchangeFactory;
  try {
    factory = await rebuildFactory(data.factory, logger);
  } catch (error) {
    // Without an exchange the mailbox cannot even be reached; a retry would fail the same way.
    (data.factory.data as { port?: MessagePort } | undefined)?.port?.close();
    return { type: "failed", failure: toFailure(error), retryable: false };
  }
  try {
    const registration = decodeValue(data.registration) as AgentRegistration;
    let source: AgentSource;
    try {
      const classes = await loadAgentClasses(data.modules);
      source = buildFromArgs(requireAgentClass(classes, data.agentType, data.modules), data.args);
    } catch (error) {
      source = failingSource(error);
    }
    const outcome = await runAgentOnce(source, { registration, exchangeFactory: factory, logger }, data.config);
    onFinished();
    return report(outcome);
  } catch (error) {
    onFinished();
    return { type: "failed", failure: toFailure(error), retryable: true };
  } finally {
    await factory.close().catch((error: unknown) => logger.warn({ err: error }, "could not close the exchange factory"));
  }
}

if (isMainThread || parentPort === null) {
  throw new ExecutorError("worker-entry is the main module of an executor's worker thread; do not import it", {
    executor: "worker-thread",
  });
}
const port = parentPort;
if ((workerData as Partial<WorkerProbeData>).probe === true) {
  const { modules } = workerData as WorkerProbeData;
  let report: WorkerProbeReport;
  try {
    report = { type: "probed", types: [...(await loadAgentClasses(modules)).keys()] };
  } catch (error) {
    report = { type: "probe-failed", failure: toFailure(error) };
  }
  port.postMessage(report);
  process.exit(0);
}
const data = workerData as WorkerLaunchData;
const logger =
  data.logLevel === undefined || data.logLevel === "silent"
    ? silentLogger
    : pino({ level: data.logLevel }).child({ ...data.logBindings, threadId });

/** Set once the agent's run has ended: a later uncaught error (while cleaning up) does not change its outcome. */
let finished = false;
const crash = (error: unknown): void => {
  if (finished) {
    logger.warn({ err: error }, "uncaught error after the agent stopped");
    return;
  }
  port.postMessage({ type: "crashed", failure: toFailure(error) } satisfies WorkerReport);
  process.exit(1);
};
process.on("uncaughtException", crash);
process.on("unhandledRejection", crash);

port.postMessage((await run(data, logger, () => (finished = true))) satisfies WorkerReport);
process.exit(0);

/**
 * The README's interceptors and deadlines, runnable (in process): `npx tsx examples/interceptors.ts`.
 * A request id follows a request from agent to agent, and a user's timeout stops the agent its
 * callee calls, though that call has no timeout of its own.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, LocalExchangeFactory, Manager, action, currentAction, currentDeadline } from "../src/index.ts";
import type { AgentInterceptor, CallerInterceptor, Handle } from "../src/index.ts";
import { deferred } from "../src/util/deferred.ts";

/** Inside an action, pass its request's id on to the calls it makes; elsewhere start one. */
export const requestIds: CallerInterceptor = {
  outboundRequest(input, next) {
    input.headers["x-request-id"] = currentAction()?.headers?.["x-request-id"] ?? randomUUID();
    return next(input);
  },
};

/** Note each action with its request id (and whether it has a deadline) in `lines`. */
export function actionLog(lines: string[]): AgentInterceptor {
  return {
    async action(input, next) {
      const headers = input.request.headers;
      lines.push(`${input.request.action}: request ${headers?.["x-request-id"]}${headers?.["academy-deadline"] ? ", with a deadline" : ""}`);
      return next(input);
    },
  };
}

export class Worker extends Agent {
  /** Settles with how the last interrupted piece of work stopped. */
  stopped = deferred<string>();
  /** Works for `ms`, unless the action's signal aborts first (cancel, deadline, shutdown). */
  @action async work(ms: number): Promise<string> {
    const scope = currentAction()!;
    try {
      await sleep(ms, undefined, { signal: scope.signal });
      return "done";
    } catch (error) {
      this.stopped.resolve(`the worker stopped: ${(scope.signal.reason as Error).name}; its deadline was ${currentDeadline() ? "set" : "unset"}`);
      throw error;
    }
  }
}

export class Boss extends Agent {
  /** Settles with how the boss's last failed call ended. */
  gaveUp = deferred<string>();
  constructor(readonly worker: Handle<Worker>) {
    super();
  }
  /** Delegates to the worker, with no timeout of its own. */
  @action async delegate(ms: number): Promise<string> {
    try {
      return await this.worker.work(ms);
    } catch (error) {
      this.gaveUp.resolve(`the boss's call gave up: ${(error as Error).name}`);
      throw error;
    }
  }
}

/** @returns what happened, line by line. */
export async function interceptorsExample(): Promise<string[]> {
  const lines: string[] = [];
  const factory = new LocalExchangeFactory({ interceptors: { caller: [requestIds], agent: [actionLog(lines)] } });
  await using manager = await Manager.fromExchangeFactory(factory);
  const worker = new Worker();
  const boss = new Boss(await manager.launch(worker));
  const bossHandle = await manager.launch(boss);
  lines.push(`result: ${await bossHandle.delegate(10)}`);
  // The user gives up after 100 ms; the boss's call to the worker, made without a timeout, gives up
  // at the same moment, and the worker stops.
  const error = await bossHandle.with({ timeoutMs: 100 }).delegate(60_000).catch((e: unknown) => e);
  lines.push(`the user's call: ${(error as Error).name}`);
  lines.push(await boss.gaveUp.promise, await worker.stopped.promise);
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await interceptorsExample()) console.log(line);
}

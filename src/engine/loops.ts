/**
 * Running an agent's background members: `@loop` methods, `@timer` methods and `@event` handlers,
 * from the end of startup until the shutdown signal aborts.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Agent } from "../agent/agent.ts";
import { AgentEvent } from "../agent/agent-event.ts";
import type { LoopSpec } from "../agent/decorators.ts";
import { AgentDefinitionError } from "../errors.ts";
import type { EventInput } from "../interceptors/agent-interceptor.ts";
import { assertNever } from "../protocol/messages.ts";

type Method = (...args: unknown[]) => Promise<unknown>;

/** What a loop, timer or event handler of a running agent is doing. */
export const LoopState = {
  /** Waiting for startup to complete. */
  Waiting: "waiting",
  Running: "running",
  /** Returned (at shutdown, or by itself). */
  Stopped: "stopped",
  /** Threw. */
  Failed: "failed",
  /** Ignored its shutdown signal past the grace period; the engine stopped waiting for it. */
  Abandoned: "abandoned",
} as const;
/** What a loop is doing. */
export type LoopState = (typeof LoopState)[keyof typeof LoopState];

/** One loop, timer or event handler of a running agent, as the engine follows it. */
export interface LoopRun {
  readonly name: string;
  readonly kind: LoopSpec["kind"];
  state: LoopState;
  /** Settles when the member has returned or thrown. */
  done: Promise<void>;
}

/** Who runs one event handler: the agent's `event` interceptors, around the handler. */
export interface EventRunner {
  readonly agentId: string;
  readonly agentType: string;
  /** The composed `event` hooks, if any interceptor has one. */
  readonly chain: ((input: EventInput) => Promise<void>) | undefined;
}

/**
 * Run one loop, timer or event handler of `agent` until `signal` aborts. Each run of an event
 * handler goes through `events`' chain of `event` interceptors, when there is one.
 * @returns once the member returned, or its wait was aborted.
 * @throws what the member threw, or {@link AgentDefinitionError} for an `@event` handler whose
 * property holds no `AgentEvent`. An abort at shutdown is not an error.
 */
export async function runLoop(agent: Agent, spec: LoopSpec, signal: AbortSignal, events?: EventRunner): Promise<void> {
  const members = agent as unknown as Record<string, unknown>;
  const method = members[spec.name] as Method;
  try {
    switch (spec.kind) {
      case "loop":
        await method.call(agent, signal);
        break;
      case "timer":
        await runTimer(agent, method, spec.intervalMs!, signal);
        break;
      case "event": {
        const event = members[spec.event!];
        if (!(event instanceof AgentEvent)) {
          throw new AgentDefinitionError(`@event handler '${spec.name}' waits on '${spec.event}', which is not an AgentEvent`);
        }
        const chain = events?.chain;
        const input: EventInput | undefined =
          chain === undefined ? undefined : { agentId: events!.agentId, agentType: events!.agentType, handler: spec.name, event: spec.event! };
        while (await event.wait(signal)) {
          event.clear();
          await (chain === undefined ? method.call(agent) : chain(input!));
        }
        break;
      }
      default:
        assertNever(spec.kind);
    }
  } catch (error) {
    if (signal.aborted && (error === signal.reason || (error as Error)?.name === "AbortError")) return;
    throw error;
  }
}

/** Call `method` every `intervalMs`, the first time one interval from now, until `signal` aborts. */
async function runTimer(agent: Agent, method: Method, intervalMs: number, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      await sleep(intervalMs, undefined, { signal });
    } catch {
      return;
    }
    await method.call(agent);
  }
}

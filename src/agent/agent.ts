/**
 * The base class of every agent.
 */
import { AgentDefinitionError, AgentStateError } from "../errors.ts";
import type { AgentStats } from "../engine/agent-stats.ts";
import type { AgentExchangeClient } from "../exchange/exchange-client.ts";
import type { Handle } from "../exchange/handle.ts";
import type { MessageHeaders } from "../protocol/headers.ts";
import type { EventCodec } from "../protocol/event-codec.ts";
import type { EventPublishAck } from "../exchange/events.ts";

import type { AgentId, UserId } from "../identifiers.ts";
import type { Logger } from "../util/logger.ts";
import type { AgentReminders } from "../state/agent-reminders.ts";
import { agentTypeInfo } from "./agent-type.ts";
import type { AgentClass } from "./agent-type.ts";
import type { RuntimeConfig } from "./runtime-config.ts";
import { action, agentSpec } from "./decorators.ts";
import { parameterList } from "./parameters.ts";

/** What a running agent knows about its surroundings (`this.agentContext`). */
export interface AgentContext<A extends Agent = Agent> {
  readonly agentId: AgentId<A>;
  /** The agent's own exchange client: discover peers, get handles, check status. */
  readonly exchangeClient: AgentExchangeClient;
  /** Logger bound to the agent's id and type. */
  readonly logger: Logger;
  /** Aborts when the agent begins to shut down. */
  readonly shutdownSignal: AbortSignal;
  /**
   * Publish an event on `subject` (docs/EVENTS.md): a core NATS publish (at-most-once), or with
   * `durable` a JetStream publish acknowledged by the stream that captures the subject, with
   * `msgId` as its `Nats-Msg-Id` (stored once within the stream's duplicate window).
   * @returns the stream's acknowledgement (durable), else undefined.
   * @throws {SerializationError} when `data` cannot be encoded by the codec.
   * @throws {PayloadTooLargeError} beyond the server's `max_payload`.
   * @throws {ExchangeUnavailableError} when a durable publish is not acknowledged within the retry window
   *   (no stream captures the subject, or the server is unreachable).
   */
  publish(subject: string, data: unknown, options?: PublishOptions): Promise<EventPublishAck | undefined>;
}

/** Options of `agentContext.publish`. */
export interface PublishOptions {
  /**
   * Store the event in JetStream and wait for the stream's acknowledgement.
   * @defaultValue false (core publish)
   */
  readonly durable?: boolean;
  /** Durable publishes: the `Nats-Msg-Id` that de-duplicates the event. */
  readonly msgId?: string;
  /** NATS headers of the event. */
  readonly headers?: Readonly<Record<string, string>>;
  /** @defaultValue "json" */
  readonly codec?: EventCodec;
}

/**
 * The action being run and who asked for it (Academy's `ActionContext`): `this.actionContext` in
 * any action, and the last parameter of actions declared with `@action({ context: true })`.
 */
export interface ActionContext {
  /** The action's name. */
  readonly action: string;
  /** The request's tag. */
  readonly tag: string;
  /** Uid of the caller's mailbox (absent for requests from callers without one). */
  readonly source: string | undefined;
  /**
   * The caller's id: an `AgentId` or a `UserId`, as the caller stated its role (the library's
   * clients always do). Absent when the request has no `src`, or a foreign caller did not say.
   */
  readonly sourceId: AgentId | UserId | undefined;
  /** The caller is an agent (Academy's `is_agent_source`). */
  readonly isAgentSource: boolean;
  /** The caller is a user client (Academy's `is_user_source`). */
  readonly isUserSource: boolean;
  /**
   * A handle to the calling agent, bound to this agent's client (Academy's `source_handle`).
   * @throws {InvalidClientError} when the caller is not an agent (users serve no requests).
   */
  readonly sourceHandle: Handle;
  /** The request's headers, as the caller set them (absent when it set none). */
  readonly headers: MessageHeaders | undefined;
  /** Aborts when the caller cancels (timeout, abort signal), the deadline passes, or the agent shuts down. */
  readonly signal: AbortSignal;
  /** The agent's exchange client. */
  readonly exchangeClient: AgentExchangeClient;
  /**
   * Report progress of this action to its caller (a number, or any small value): a caller that
   * passed `onProgress` receives it. Reports are sent in order, one at a time; while one is on
   * its way only the latest of those made meanwhile is kept (so a fast loop cannot flood the
   * caller), and the last report always arrives before the result.
   * @returns whether the caller observes progress (false: the report was dropped at no cost).
   */
  reportProgress(progress: unknown): boolean;
}

/** What `agentDescribe` returns. */
export interface AgentDescription {
  readonly type: string;
  readonly chain: readonly string[];
  /** The class's static `description`, if any. */
  readonly description: string | undefined;
  readonly actions: ReadonlyArray<{
    readonly name: string;
    readonly description: string | undefined;
    /** The parameter list as written in the source, e.g. `"by = 1"`. */
    readonly parameters: string;
    /** Present (true) for a streaming action: call it with `handle.stream`. */
    readonly streaming?: true;
  }>;
}

/** Options of `agentLaunchAlongside`. */
export interface LaunchAlongsideOptions {
  /** Constructor arguments (ignored when launching an instance); handles among them arrive bound to the child. */
  args?: readonly unknown[];
  /** Display name, used when registering. */
  name?: string;
  /** The child's runtime config. @defaultValue `defaultRuntimeConfig` */
  config?: RuntimeConfig;
}

/** Options of `agentShutdown`. */
export interface AgentShutdownOptions {
  /** Override the config's termination decision (`terminateOnSuccess`). */
  terminate?: boolean;
}

/** @internal What the engine attaches to a running agent. */
export interface AgentBinding {
  readonly context: AgentContext;
  requestShutdown(options: AgentShutdownOptions): void;
  /** The context of the action of this agent running in the current async context, if any. */
  actionContext(): ActionContext | undefined;
  /** Launch an agent alongside this one. */
  launchAlongside<A extends Agent>(agent: AgentClass<A> | A, options: LaunchAlongsideOptions): Promise<Handle<A>>;
  /** The agent's statistics now. */
  stats(): AgentStats;
  /** The agent's reminders. */
  reminders(): AgentReminders;
}

/**
 * The runtime bindings of running agents. Shared by every copy of this library in the process
 * (through a registered symbol on `globalThis`), so an agent whose class extends another copy's
 * `Agent` (an application importing both the package and the sources) reads its own id and context.
 */
const bindings: WeakMap<Agent, AgentBinding> = ((globalThis as Record<symbol, unknown>)[Symbol.for("academy-nats.agentBindings")] ??=
  new WeakMap<Agent, AgentBinding>()) as WeakMap<Agent, AgentBinding>;

/**
 * The brand of `Agent`, its subclasses and their instances: a registered symbol, so that every
 * copy of this library in a process recognises the agents of the others (where `instanceof` sees
 * two different `Agent` classes).
 */
const AGENT_BRAND = Symbol.for("academy-nats.Agent");

/** @internal Attach (or detach, with `undefined`) the engine to an agent instance. */
export function bindAgent(agent: Agent, binding: AgentBinding | undefined): void {
  if (binding === undefined) bindings.delete(agent);
  else if (bindings.has(agent)) throw new AgentStateError("This agent instance is already running");
  else bindings.set(agent, binding);
}

/**
 * Base class of agents. Subclass it, mark async methods with `@action`, `@loop`, `@timer(ms)` or
 * `@event(prop)`, and launch it with a `Manager`. `Agent` itself cannot be instantiated.
 */
export abstract class Agent {
  /** Stable type name (defaults to the class name); set it when names may be minified or clash. */
  declare static agentType?: string;
  /** Optional description of the agent type, returned by `agentDescribe`. */
  declare static description?: string;

  constructor() {
    if (new.target === Agent) throw new AgentDefinitionError("Agent cannot be instantiated itself; subclass it");
  }

  #binding(): AgentBinding {
    const binding = bindings.get(this);
    if (binding === undefined) throw new AgentStateError("The agent is not running (no engine is attached yet)");
    return binding;
  }

  /**
   * This agent's id.
   * @throws {AgentStateError} before the agent has been launched.
   */
  get agentId(): AgentId<this> {
    return this.#binding().context.agentId as AgentId<this>;
  }

  /**
   * The running agent's context: id, exchange client, logger, shutdown signal.
   * @throws {AgentStateError} before the agent has been launched.
   */
  get agentContext(): AgentContext<this> {
    return this.#binding().context as AgentContext<this>;
  }

  /**
   * The action of this agent running in the current async context: its name, tag, caller
   * (`sourceId`, `isAgentSource`, `sourceHandle`), headers and signal. Works in the action and in
   * everything it calls or awaits; no parameter needed.
   * @throws {AgentStateError} outside an action of this agent (loops, hooks, other code).
   */
  get actionContext(): ActionContext {
    const context = this.#binding().actionContext();
    if (context === undefined) throw new AgentStateError("actionContext is only available inside an action of this agent");
    return context;
  }

  /**
   * This agent's reminders (docs/STATE.md): durable timers that call one of its actions `at` a
   * time or `everyMs`, stored by the exchange and fired into its mailbox whether or not it runs
   * then. `set(name, options)`, `cancel(name)`, `list()`.
   * @throws {AgentStateError} before the agent has been launched.
   */
  get agentReminders(): AgentReminders {
    return this.#binding().reminders();
  }

  /** Ask the engine to shut this agent down (an expected shutdown). Returns at once. */
  agentShutdown(options: AgentShutdownOptions = {}): void {
    this.#binding().requestShutdown(options);
  }

  /**
   * Launch an agent alongside this one (Academy's `agent_launch_alongside`): registered through
   * this agent's client and run in this agent's thread, so on whatever runs this agent (the
   * manager's event loop, its worker thread, its runtime host; a child takes no slot of its own).
   * Its lifetime is tied to this agent's: when this agent shuts down, after `agentOnShutdown`,
   * its children are shut down (terminating their mailboxes per their config) and waited for,
   * and this agent's run fails with their errors, if any.
   * @returns a handle to the child, bound to this agent's client, at once (its requests wait for
   *   its startup).
   * @throws {AgentStateError} before launch, or once this agent is shutting down.
   * @throws {AgentDefinitionError} for something that is not an agent class or instance.
   */
  agentLaunchAlongside<A extends Agent>(agent: AgentClass<A> | A, options: LaunchAlongsideOptions = {}): Promise<Handle<A>> {
    try {
      return this.#binding().launchAlongside(agent, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Runs once before any action or loop; requests that arrive earlier wait for it. */
  async agentOnStartup(): Promise<void> {}

  /** Runs once at shutdown, before loops are stopped and in-flight actions are cancelled. */
  async agentOnShutdown(): Promise<void> {}

  /** Built-in action: the agent's type, ancestry, and each action with its docs. */
  @action({ description: "Describe this agent: its type, ancestry and actions.", once: false })
  async agentDescribe(): Promise<AgentDescription> {
    const cls = this.constructor as typeof Agent & (new () => Agent);
    const info = agentTypeInfo(cls);
    return {
      type: info.name,
      chain: info.chain,
      description: Object.prototype.hasOwnProperty.call(cls, "description") ? cls.description : undefined,
      actions: [...agentSpec(cls).actions.values()].map((spec) => ({
        name: spec.name,
        description: spec.description,
        parameters: parameterList((this as unknown as Record<string, unknown>)[spec.name] ?? spec.method),
        ...(spec.streaming && { streaming: true as const }),
      })),
    };
  }

  /**
   * Built-in action (Academy's `agent_stats`): per action, calls handled, failed and in flight
   * with the mean and 99th percentile of their run times; each loop's state; uptime; children.
   */
  @action({ description: "Statistics of this agent: calls handled, failed and in flight, run times, loop states, uptime.", once: false })
  async agentStats(): Promise<AgentStats> {
    return this.#binding().stats();
  }
}

for (const target of [Agent, Agent.prototype]) Object.defineProperty(target, AGENT_BRAND, { value: true });

/** Whether `value` is `Agent` itself, of this or another copy of the library. */
export function isAgentBase(value: unknown): boolean {
  return typeof value === "function" && Object.prototype.hasOwnProperty.call(value, AGENT_BRAND);
}

/** Whether `value` is a class extending `Agent` (of any copy of the library), not `Agent` itself. */
export function isAgentSubclass(value: unknown): value is abstract new (...args: never[]) => Agent {
  return typeof value === "function" && (value as unknown as Record<symbol, unknown>)[AGENT_BRAND] === true && !isAgentBase(value);
}

/** Whether `value` is an instance of an `Agent` subclass (of any copy of the library). */
export function isAgentInstance(value: unknown): value is Agent {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[AGENT_BRAND] === true;
}

/**
 * What a value is, in words, for errors about something that should have been an agent class:
 * `a class 'Foo' that does not extend Agent`, `the string "Foo"`, `an instance of Bar`, `undefined`.
 */
export function describeValue(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (typeof value === "function") {
    const name = value.name === "" ? "an anonymous function" : `'${value.name}'`;
    return /^class[\s{]/.test(Function.prototype.toString.call(value)) ? `the class ${name}, which does not extend Agent` : `the function ${name}, which is not an Agent subclass`;
  }
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "object") {
    const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
    return ctor === undefined || ctor === "Object" ? "a plain object" : `an instance of ${ctor}, which is not an agent`;
  }
  return `${typeof value} ${String(value)}`;
}

/**
 * The engine that runs one agent once: connects the agent to its mailbox, starts it in Academy's
 * order, hands its requests to a {@link RequestDispatcher}, runs its loops, and shuts down in
 * Academy's order.
 */
import { Agent as AgentBase, bindAgent } from "../agent/agent.ts";
import type { Agent, AgentContext, PublishOptions } from "../agent/agent.ts";
import type { AgentClass } from "../agent/agent-type.ts";
import { agentSpec } from "../agent/decorators.ts";
import type { AgentSpec, LoopSpec } from "../agent/decorators.ts";
import { resolveRuntimeConfig } from "../agent/runtime-config.ts";
import type { ResolvedRuntimeConfig, RuntimeConfig } from "../agent/runtime-config.ts";
import { ActionCancelledError, AgentStateError, BadEntityIdError, InvalidConfigError, MailboxTerminatedError, StateConflictError, raiseErrors } from "../errors.ts";
import { runAsAgent } from "../exchange/client-scope.ts";
import type { AgentExchangeClient } from "../exchange/exchange-client.ts";
import type { ExchangeFactory } from "../exchange/exchange-factory.ts";
import type { ResultStore } from "../exchange/result-store.ts";
import type { AgentRegistration } from "../exchange/transport.ts";
import type { AgentId } from "../identifiers.ts";
import { currentAction, runOutsideActionScope } from "../interceptors/action-scope.ts";
import type { AgentInterceptor, EventInput } from "../interceptors/agent-interceptor.ts";
import { composeInterceptors } from "../interceptors/interceptors.ts";
import { runOutsideTrace } from "../interceptors/tracing.ts";
import { deferred } from "../util/deferred.ts";
import { silentLogger } from "../util/logger.ts";
import type { Logger } from "../util/logger.ts";
import { EngineActionContext } from "./action-context.ts";
import { ActionStatsRecorder } from "./agent-stats.ts";
import type { AgentStats } from "./agent-stats.ts";
import { ChildAgents } from "./child-agents.ts";
import { settleWithin } from "./grace.ts";
import { LoopState, runLoop } from "./loops.ts";
import type { EventRunner, LoopRun } from "./loops.ts";
import { RequestDispatcher } from "./request-dispatcher.ts";
import type { Admission } from "./request-dispatcher.ts";
import { AgentSubscriptions, callSubscriptionHandler } from "./subscriptions.ts";
import { encodeEvent, EventCodec } from "../protocol/event-codec.ts";
import type { EventBus, EventPublishAck } from "../exchange/events.ts";
import { declaredState } from "../state/persistent-state.ts";
import type { PersistentState } from "../state/persistent-state.ts";
import { StateSession } from "../state/state-session.ts";
import { AgentReminders } from "../state/agent-reminders.ts";
import { decodeValue, encodeValue } from "../protocol/codec.ts";
import type { ResponseBody } from "../protocol/messages.ts";
import type { ReminderStore } from "../state/reminder-store.ts";

const SETTLED: Promise<void> = Promise.resolve();

/** Lifecycle states of an engine. */
export const EngineState = {
  Created: "created",
  Starting: "starting",
  Running: "running",
  Stopping: "stopping",
  Stopped: "stopped",
  Failed: "failed",
} as const;
/** A lifecycle state of an engine. */
export type EngineState = (typeof EngineState)[keyof typeof EngineState];

/**
 * How to make the agent once its exchange client exists (so that handles among its constructor
 * arguments are bound to the agent's own client).
 */
export interface AgentBuilder<A extends Agent = Agent> {
  readonly agentClass: AgentClass<A>;
  build(client: AgentExchangeClient): A;
}

/** An agent instance, or a builder for one. */
export type AgentSource<A extends Agent = Agent> = A | AgentBuilder<A>;

/** Options of {@link AgentEngine}. */
export interface AgentEngineOptions {
  /** The exchange to run on; its agent-side interceptors apply to the agent's requests. */
  readonly exchangeFactory: ExchangeFactory;
  /** The agent's registration (its id and type). */
  readonly registration: AgentRegistration;
  /** @defaultValue `defaultRuntimeConfig` */
  readonly config?: RuntimeConfig;
  /** @defaultValue silent */
  readonly logger?: Logger;
  /**
   * Agent-side interceptors for this agent only, after (inside) the factory's: a runtime host
   * counts the actions of the agents it runs this way, whatever factory it was given.
   * @defaultValue none
   */
  readonly interceptors?: readonly AgentInterceptor[];
  /**
   * Consulted before each action request runs (a runtime host holds them while its lease is in
   * doubt, see `Admission`).
   * @defaultValue every action may run
   */
  readonly admission?: Admission;
}

/** Why and how the engine shuts down. */
export interface EngineShutdown {
  /** Expected (requested) shutdown, as opposed to a failure. */
  readonly expected: boolean;
  /** Explicit termination decision; undefined lets the config decide. */
  readonly terminate?: boolean | undefined;
  /**
   * Cancel running actions (`true`) or let them finish (`false`); undefined lets the config
   * (`cancelActionsOnShutdown`) decide. A host handing an agent over lets them finish.
   */
  readonly cancelActions?: boolean | undefined;
}

/**
 * Runs one agent once. `run()` resolves when the agent has shut down; it rejects with the startup
 * error, or with loop errors when `raiseLoopErrorsOnShutdown` is set.
 */
export class AgentEngine<A extends Agent = Agent> {
  readonly agentId: AgentId<A>;
  readonly #source: AgentSource<A>;
  #agent: A | undefined;
  readonly #factory: ExchangeFactory;
  readonly #registration: AgentRegistration;
  readonly #config: ResolvedRuntimeConfig;
  readonly #spec: AgentSpec;
  readonly #logger: Logger;
  readonly #dispatcher: RequestDispatcher;
  readonly #events: EventRunner;
  readonly #shutdownController = new AbortController();
  /** Resolves true once startup completed, false if shutdown began first. */
  readonly #ready = deferred<boolean>();
  readonly #shutdownRequested = deferred<EngineShutdown>();
  readonly #loopErrors: unknown[] = [];
  #state: EngineState = EngineState.Created;
  #retryable = false;
  #client: AgentExchangeClient | undefined;
  /** Agents launched alongside this one in this run; shut down with it. */
  readonly #children: ChildAgents;
  readonly #stats: ActionStatsRecorder;
  #loopRuns: readonly LoopRun[] = [];
  /** The agent's event subscriptions; undefined when it declares none (an idle agent then holds nothing for them). */
  readonly #subscriptions: AgentSubscriptions | undefined;
  #eventBus: Promise<EventBus | undefined> | undefined;
  /** The exchange's result records (effectively-once), if it keeps them. */
  #results: ResultStore | undefined;
  /** When startup completed (ms since the epoch). */
  #startedAt: number | undefined;
  /** The agent's durable state, if it declares one, and this run's hold on its record. */
  /** The agent's reminders, once it used them in this run. */
  #reminders: AgentReminders | undefined;
  #durable: { readonly object: PersistentState<unknown>; readonly session: StateSession } | undefined;

  /** @throws {InvalidConfigError} for an invalid `config`. */
  constructor(source: AgentSource<A>, options: AgentEngineOptions) {
    this.#source = source;
    this.#agent = source instanceof AgentBase ? source : undefined;
    this.agentId = options.registration.agentId as AgentId<A>;
    this.#factory = options.exchangeFactory;
    this.#registration = options.registration;
    this.#config = resolveRuntimeConfig(options.config);
    this.#spec = agentSpec(source instanceof AgentBase ? (source.constructor as AgentClass<A>) : source.agentClass);
    const baseLogger = options.logger ?? silentLogger;
    this.#logger = baseLogger.child({
      agentId: this.agentId.uid,
      agentType: options.registration.agentType.name,
    });
    const own = options.interceptors ?? [];
    const interceptors = own.length === 0 ? options.exchangeFactory.interceptors.agent : [...options.exchangeFactory.interceptors.agent, ...own];
    this.#events = {
      agentId: this.agentId.uid,
      agentType: options.registration.agentType.name,
      chain: composeInterceptors(interceptors, "event", (input) => this.#runHandler(input.handler)),
    };
    if (this.#spec.subscriptions.length > 0) {
      const runSubscriptionHandler = async (input: EventInput): Promise<void> => {
        await callSubscriptionHandler(this.agent, input);
      };
      const subscriptionChain = composeInterceptors(interceptors, "event", runSubscriptionHandler);
      this.#subscriptions = new AgentSubscriptions({
        specs: this.#spec.subscriptions,
        agentId: this.agentId,
        agentType: options.registration.agentType.name,
        logger: this.#logger,
        signal: this.#shutdownController.signal,
        run: subscriptionChain ?? runSubscriptionHandler,
      });
    }
    this.#children = new ChildAgents(
      (source, registration, config) =>
        new AgentEngine(source, { exchangeFactory: this.#factory, registration, config, logger: baseLogger, interceptors: options.interceptors }),
      this.#logger,
    );
    this.#stats = new ActionStatsRecorder(this.#spec.actions.keys());
    this.#dispatcher = new RequestDispatcher({
      stats: this.#stats,
      agentId: this.agentId,
      agentType: options.registration.agentType.name,
      spec: this.#spec,
      config: this.#config,
      logger: this.#logger,
      interceptors,
      ready: this.#ready.promise,
      onShutdownRequest: (terminate) => this.requestShutdown({ expected: true, terminate }),
      admission: options.admission,
    });
  }

  /**
   * The agent instance.
   * @throws {AgentStateError} before a builder-made agent has been built (early in `run()`).
   */
  get agent(): A {
    if (this.#agent === undefined) throw new AgentStateError("The agent has not been built yet");
    return this.#agent;
  }

  /**
   * Whether a failed run is worth retrying: it failed on its own (startup error, loop error, the
   * exchange unreachable), not at a requested shutdown nor for a missing or terminated mailbox.
   */
  get retryable(): boolean {
    return this.#retryable;
  }

  /** Current lifecycle state. */
  get state(): EngineState {
    return this.#state;
  }

  /**
   * The agent's statistics now (what its built-in action `agentStats` returns): per action calls
   * handled, failed and in flight with mean and p99 run times, loop states, uptime. Plain data,
   * for a metrics exporter to read.
   */
  stats(): AgentStats {
    const actions = this.#stats.snapshot();
    let handled = 0;
    let failed = 0;
    let inFlight = 0;
    for (const action of Object.values(actions)) {
      handled += action.handled;
      failed += action.failed;
      inFlight += action.inFlight;
    }
    return {
      agentId: this.agentId.uid,
      agentType: this.#registration.agentType.name,
      state: this.#state,
      startedAt: this.#startedAt,
      uptimeMs: this.#startedAt === undefined ? 0 : Date.now() - this.#startedAt,
      handled,
      failed,
      inFlight,
      actions,
      loops: this.#loopRuns.map((loop) => ({ name: loop.name, kind: loop.kind, state: loop.state })),
      children: this.#children.running,
      ...(this.#subscriptions?.declared === true && { subscriptions: this.#subscriptions.stats() }),
    };
  }

  /**
   * Ask the engine to shut down. The first request wins. Safe to call at any time, even before
   * startup completes (shutdown then follows startup).
   */
  requestShutdown(request: EngineShutdown = { expected: true }): void {
    this.#shutdownRequested.resolve(request);
  }

  /**
   * Run the agent until it shuts down. Single use.
   * @throws {AgentStateError} when called a second time.
   * @throws {BadEntityIdError | MailboxTerminatedError} when the agent's mailbox is missing or terminated.
   * @throws the startup error; loop errors (`raiseLoopErrorsOnShutdown`); the shutdown hook's error.
   */
  run(): Promise<void> {
    // An agent launched from inside an action does not run in that action's scope, nor in the
    // trace of whatever launched it.
    return runOutsideActionScope((engine) => runOutsideTrace((e) => e.#run(), engine), this);
  }

  async #run(): Promise<void> {
    if (this.#state !== EngineState.Created) throw new AgentStateError("An AgentEngine runs only once");
    this.#state = EngineState.Starting;
    const client = await this.#connect();
    // Everything the agent runs from here on (hooks, loops) sends through handles from its client.
    await runAsAgent(client, (engine) => engine.#serve(client), this);
  }

  /** Build and start the agent, serve until shutdown is requested, shut down. */
  async #serve(client: AgentExchangeClient): Promise<void> {
    let loops: LoopRun[] = [];
    try {
      const agent = (this.#agent ??= (this.#source as AgentBuilder<A>).build(client));
      this.#dispatcher.bind(agent);
      const context: AgentContext<A> = {
        agentId: this.agentId,
        exchangeClient: client,
        logger: this.#logger,
        shutdownSignal: this.#shutdownController.signal,
        publish: (subject, data, publishOptions) => this.#publish(subject, data, publishOptions),
      };
      bindAgent(agent, {
        context,
        requestShutdown: (options) => this.requestShutdown({ expected: true, terminate: options.terminate }),
        launchAlongside: (child, launchOptions) => this.#children.launch(client, child, launchOptions),
        stats: () => this.stats(),
        reminders: () => (this.#reminders ??= new AgentReminders(this.agentId.uid, () => this.#reminderStore())),
        actionContext: () => {
          const scope = currentAction();
          return scope instanceof EngineActionContext && scope.agentId === this.agentId.uid ? scope : undefined;
        },
      });
      await this.#loadState(agent, client);
      loops = this.#spec.loops.map((spec) => this.#startLoop(agent, spec));
      this.#loopRuns = loops;
      await agent.agentOnStartup();
      if (this.#subscriptions?.declared === true) await this.#subscriptions.start(await this.#eventBusOf(), this.#results);
    } catch (error) {
      this.#logger.error({ err: error }, "agent startup failed");
      await this.#shutdown({ expected: false }, false, loops).catch((shutdownError: unknown) => {
        this.#logger.warn({ err: shutdownError }, "shutdown after failed startup raised");
      });
      throw error;
    }
    this.#state = EngineState.Running;
    this.#startedAt = Date.now();
    this.#ready.resolve(true);
    this.#logger.info("agent started");
    await this.#shutdown(await this.#shutdownRequested.promise, true, loops);
  }

  /**
   * Load the agent's durable state, if it declares one, taking the record over from any earlier
   * run (docs/STATE.md, *Fencing*); from then on actions are checked against, and recorded in, it.
   * @throws {InvalidConfigError} when the exchange keeps no state.
   */
  async #loadState(agent: A, client: AgentExchangeClient): Promise<void> {
    const object = declaredState(agent);
    if (object === undefined) return;
    const store = await this.#factory.stateStore?.();
    if (store === undefined) {
      throw new InvalidConfigError(`Agent ${this.agentId} declares a durableState, but its exchange keeps no state (no stateStore)`, { option: "exchangeFactory" });
    }
    const uid = this.agentId.uid;
    const session = new StateSession(
      uid,
      store,
      object,
      {
        currentTag: () => {
          const scope = currentAction();
          return scope instanceof EngineActionContext && scope.agentId === uid ? scope.tag : undefined;
        },
        onConflict: (error) => this.#stateTakenOver(error),
      },
      this.#logger,
    );
    await session.load(client);
    this.#durable = { object, session };
    this.#dispatcher.useOutcomes({
      recorded: (tag) => {
        const found = session.recorded(tag);
        if (found === undefined) return undefined;
        return { response: found.response === undefined ? undefined : (decodeValue(found.response, client) as ResponseBody) };
      },
      record: (tag, body) => session.commit(tag, encodeValue(body)),
    });
  }

  /** Another run of this agent took its state over: stop, keeping the mailbox and the state. */
  #stateTakenOver(error: StateConflictError): void {
    this.#logger.warn({ err: error }, "the agent's state was taken over by another run of the agent; stopping it");
    this.requestShutdown({ expected: false, terminate: false, cancelActions: true });
  }

  /** Open the agent's exchange client; its mailbox's requests go to the dispatcher. */
  async #connect(): Promise<AgentExchangeClient> {
    let results: ResultStore | undefined;
    try {
      // Before any request can arrive: effectively-once needs the records from the first one.
      results = await this.#factory.resultStore?.();
      this.#client = await this.#factory.createAgentClient(this.#registration, (delivery) => this.#dispatcher.onRequest(delivery), {
        logger: this.#logger,
        onTerminated: () => {
          this.#logger.info("mailbox terminated; shutting down");
          this.requestShutdown({ expected: true, terminate: false });
        },
      });
    } catch (error) {
      this.#state = EngineState.Failed;
      // A missing or terminated mailbox will not come back; anything else (the exchange being
      // unreachable) may.
      this.#retryable = !(error instanceof BadEntityIdError || error instanceof MailboxTerminatedError);
      throw error;
    }
    this.#dispatcher.attach(this.#client, results);
    this.#results = results;
    return this.#client;
  }

  /**
   * Shut down in Academy's order: shutdown hook (if started), loops stopped, in-flight actions
   * cancelled or awaited, mailbox terminated or kept, client closed; then raise what failed.
   */
  async #shutdown(request: EngineShutdown, started: boolean, loops: LoopRun[]): Promise<void> {
    this.#state = EngineState.Stopping;
    this.#retryable = !request.expected;
    this.#ready.resolve(false);
    this.#shutdownController.abort(new ActionCancelledError(`Agent ${this.agentId} is shutting down`));
    const errors: unknown[] = [];
    const terminate = request.terminate ?? (request.expected ? this.#config.terminateOnSuccess : this.#config.terminateOnError);
    // Take no more events from now on (the event being handled finishes, or sees the signal).
    const subscriptions = this.#subscriptions?.declared === true ? this.#subscriptions : undefined;
    const subscriptionsStopped = subscriptions?.stop();

    if (started) {
      try {
        await this.agent.agentOnShutdown();
      } catch (error) {
        this.#logger.error({ err: error }, "agent shutdown hook failed");
        errors.push(error);
      }
    }
    // Then the agents launched alongside this one (Academy closes the agent's manager here).
    errors.push(...(await this.#children.shutdown()));
    const graceMs = this.#config.shutdownGraceMs;
    if (subscriptions !== undefined) {
      if ((await settleWithin([...subscriptions.inFlight(), { done: subscriptionsStopped! }], graceMs)).length > 0) {
        this.#logger.warn({ graceMs }, "event handler ignored its shutdown signal; abandoned (its event is delivered again)");
      }
      // Fenced: another run of the agent owns it now, and its consumers with it.
      if (terminate && this.#durable?.session.fenced === undefined) await subscriptions.remove();
    }
    for (const loop of await settleWithin(loops, graceMs)) {
      loop.state = LoopState.Abandoned;
      this.#logger.warn({ loop: loop.name, kind: loop.kind, graceMs }, "loop ignored its shutdown signal; abandoned (it may still run to its end)");
    }
    await this.#dispatcher.settle(terminate, request.cancelActions ?? this.#config.cancelActionsOnShutdown, graceMs);

    const client = this.#client!;
    const fenced = this.#durable?.session.fenced;
    if (terminate && fenced === undefined) {
      try {
        await client.terminate(this.agentId);
      } catch (error) {
        this.#logger.warn({ err: error }, "could not terminate mailbox");
      }
      await this.#deleteState();
      await this.#deleteReminders();
    }
    await client.close();
    this.#durable?.object.detach();
    if (this.#agent !== undefined) bindAgent(this.#agent, undefined);
    if (fenced !== undefined) {
      // Not worth retrying here: the agent runs elsewhere now.
      this.#retryable = false;
      errors.unshift(fenced);
    }

    if (this.#config.raiseLoopErrorsOnShutdown) errors.unshift(...this.#loopErrors);
    this.#state = errors.length > 0 || !request.expected ? EngineState.Failed : EngineState.Stopped;
    this.#logger.info({ terminate, expected: request.expected }, "agent stopped");
    raiseErrors(errors, `Agent ${this.agentId} failed`);
  }

  /** The exchange's events, asked for once. */
  #eventBusOf(): Promise<EventBus | undefined> {
    this.#eventBus ??= this.#factory.events?.() ?? Promise.resolve(undefined);
    return this.#eventBus;
  }

  /** `agentContext.publish`: encode, then publish on the exchange's events. */
  async #publish(subject: string, data: unknown, options: PublishOptions = {}): Promise<EventPublishAck | undefined> {
    const bus = await this.#eventBusOf();
    if (bus === undefined) throw new InvalidConfigError("This agent's exchange offers no events to publish to (ExchangeFactory.events)", { option: "exchange" });
    const bytes = encodeEvent(options.codec ?? EventCodec.Json, data);
    return bus.publish(subject, bytes, { durable: options.durable, msgId: options.msgId, headers: options.headers });
  }

  /** The mailbox was terminated: delete the state record, unless the state is kept (`keepOnTerminate`). */
  async #deleteState(): Promise<void> {
    const durable = this.#durable;
    if (durable === undefined || durable.object.options.keepOnTerminate) return;
    try {
      if (!(await durable.session.delete())) this.#logger.warn("agent state not deleted: another run of the agent owns it");
    } catch (error) {
      this.#logger.warn({ err: error }, "could not delete the agent's state");
    }
  }

  /** The exchange's reminders. @throws {InvalidConfigError} when the exchange keeps none. */
  async #reminderStore(): Promise<ReminderStore> {
    const store = await this.#factory.reminderStore?.();
    if (store === undefined) throw new InvalidConfigError(`Agent ${this.agentId} uses reminders, but its exchange keeps none (no reminderStore)`, { option: "exchangeFactory" });
    return store;
  }

  /**
   * The mailbox was terminated: delete the agent's reminders if this run set or cancelled any
   * (reminders set by earlier runs go when a scheduler finds the mailbox terminated).
   */
  async #deleteReminders(): Promise<void> {
    if (this.#reminders?.used !== true) return;
    try {
      await (await this.#reminderStore()).deleteAll(this.agentId.uid);
    } catch (error) {
      this.#logger.warn({ err: error }, "could not delete the agent's reminders");
    }
  }

  /** Start a loop; it runs once startup completed. */
  #startLoop(agent: A, spec: LoopSpec): LoopRun {
    const run: LoopRun = { name: spec.name, kind: spec.kind, state: LoopState.Waiting, done: SETTLED };
    run.done = this.#runLoop(agent, spec, run);
    return run;
  }

  /** Run an event handler of the agent (the end of the `event` interceptor chain). */
  async #runHandler(handler: string): Promise<void> {
    const agent = this.agent as unknown as Record<string, () => Promise<unknown>>;
    await agent[handler]!.call(agent);
  }

  /** Run a loop once startup completed; a failure is recorded and (per config) shuts the agent down. */
  async #runLoop(agent: A, spec: LoopSpec, run: LoopRun): Promise<void> {
    if (!(await this.#ready.promise)) {
      run.state = LoopState.Stopped;
      return;
    }
    run.state = LoopState.Running;
    try {
      await runLoop(agent, spec, this.#shutdownController.signal, this.#events);
      if (run.state === LoopState.Running) run.state = LoopState.Stopped;
    } catch (error) {
      if (run.state === LoopState.Running) run.state = LoopState.Failed;
      this.#logger.error({ err: error, loop: spec.name }, "agent loop failed");
      this.#loopErrors.push(error);
      if (this.#config.shutdownOnLoopError) this.requestShutdown({ expected: false });
    }
  }
}

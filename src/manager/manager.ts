/**
 * The manager: launches agents on executors, waits for them, restarts failed ones, shuts them
 * down. Mirrors Academy's `Manager`.
 */
import type { Agent } from "../agent/agent.ts";
import { describeValue, isAgentBase, isAgentInstance, isAgentSubclass } from "../agent/agent.ts";
import { agentTypeInfo } from "../agent/agent-type.ts";
import type { AgentClass, AgentTypeInfo } from "../agent/agent-type.ts";
import { resolveRuntimeConfig } from "../agent/runtime-config.ts";
import type { RuntimeConfig } from "../agent/runtime-config.ts";
import {
  AgentAlreadyLaunchedError,
  AgentDefinitionError,
  BadEntityIdError,
  ClientClosedError,
  InvalidConfigError,
  MailboxTerminatedError,
  RequestTimeoutError,
  UnknownExecutorError,
  WaitTimeoutError,
  raiseErrors,
} from "../errors.ts";
import type { RegisterAgentsEntry, RegisteredAgents, UserExchangeClient } from "../exchange/exchange-client.ts";

import type { CreateUserClientOptions, ExchangeFactory } from "../exchange/exchange-factory.ts";
import { AgentHandle } from "../exchange/handle.ts";
import { LocalExchangeFactory } from "../exchange/local/local-exchange-factory.ts";
import type { Handle } from "../exchange/handle.ts";
import type { AgentRegistration } from "../exchange/transport.ts";

import { AgentId } from "../identifiers.ts";
import type { UserId } from "../identifiers.ts";
import { encodeValue } from "../protocol/codec.ts";
import { silentLogger } from "../util/logger.ts";
import type { Logger } from "../util/logger.ts";
import { timerDelay } from "../util/timers.ts";
import { ReminderScheduler } from "../state/reminder-scheduler.ts";
import { EventLoopExecutor } from "./event-loop-executor.ts";
import type { AgentExecutor } from "./executor.ts";
import { launchBatch } from "./launch-batch.ts";
import type { BatchAgent, BatchLaunch } from "./launch-batch.ts";

/** Name of the executor every manager has unless told otherwise. */
export const EVENT_LOOP_EXECUTOR = "event-loop";

/** Options of {@link Manager}. */
export interface ManagerOptions {
  /**
   * Executors by name. The event-loop executor is always present as `"event-loop"` unless a
   * different executor is given under that name.
   * @defaultValue `{ "event-loop": new EventLoopExecutor() }`
   */
  executors?: Record<string, AgentExecutor>;
  /**
   * Executor used when `launch` names none.
   * @defaultValue the only executor given, else `"event-loop"`
   */
  defaultExecutor?: string;
  /**
   * Restarts of a failed agent, under the same id and mailbox: an agent runs at most
   * `maxRetries + 1` times. Runs before the last keep the mailbox on failure; after the last
   * failure the mailbox is terminated when the agent's `terminateOnError` is set (the default), so
   * waiting callers get `AgentTerminatedError` rather than hang.
   * @defaultValue 0
   */
  maxRetries?: number;
  /**
   * Delay before the first restart, in ms; doubles for each further restart (capped at 30 s).
   * @defaultValue 100
   */
  retryBackoffMs?: number;
  /**
   * How long `close()` waits for its agents to acknowledge the shutdown and stop, in ms. Agents on
   * a host pool need a host to stop them: with none serving the pool they would never stop. When
   * the time passes, `close()` logs which agents it still waits for, closes the executors (which
   * stops waiting for them), finishes closing and throws `WaitTimeoutError`.
   * @defaultValue 60_000
   */
  closeTimeoutMs?: number;
  /**
   * Fire reminders (docs/STATE.md): from the first launch on an executor that runs agents from
   * this process (the event loop, worker threads; not a host pool, whose hosts fire them) until
   * `close()`, this manager runs a `ReminderScheduler` on its exchange, if the exchange keeps
   * reminders. Several schedulers on one exchange fire each due time once.
   * @defaultValue true
   */
  reminders?: boolean;
  /** @defaultValue silent */
  logger?: Logger;
}

/** Options of {@link Manager.launch}. */
export interface LaunchOptions<A extends Agent = Agent> {
  /** Constructor arguments (ignored when launching an instance); handles among them arrive bound to the agent. */
  args?: readonly unknown[];
  /** Display name, used when registering. */
  name?: string;
  config?: RuntimeConfig;
  /** Executor name. */
  executor?: string;
  /** Launch an agent registered earlier (with `registerAgent`) instead of registering a new one. */
  registration?: AgentRegistration<A>;
  /** Override the manager's `maxRetries` for this agent. */
  maxRetries?: number;
}

/** Options of {@link Manager.shutdown}. */
export interface ManagerShutdownOptions {
  /**
   * Wait for the agent to stop.
   * @defaultValue true
   */
  blocking?: boolean;
  /**
   * When blocking, raise the agent's error if it failed.
   * @defaultValue true
   */
  raiseError?: boolean;
  /** Override the agent's config: terminate its mailbox (`true`) or keep it (`false`). */
  terminate?: boolean;
  /** When blocking, give up after this many ms with `WaitTimeoutError` (`Infinity`: never). */
  timeoutMs?: number;
}

/** When {@link Manager.wait} returns. */
export const ReturnWhen = {
  /** All agents have stopped. */
  AllCompleted: "all-completed",
  /** Any agent has stopped. */
  FirstCompleted: "first-completed",
  /** Any agent has failed, or all have stopped. */
  FirstException: "first-exception",
} as const;
export type ReturnWhen = (typeof ReturnWhen)[keyof typeof ReturnWhen];

/** Options of {@link Manager.wait}. */
export interface WaitOptions {
  /**
   * Raise the errors of agents that failed (one as-is, several as an `ErrorGroup`).
   * @defaultValue false
   */
  raiseError?: boolean;
  /** @defaultValue "all-completed" */
  returnWhen?: ReturnWhen;
  /** Give up after this many ms with `WaitTimeoutError` (`Infinity`: never). */
  timeoutMs?: number;
}

/** What {@link Manager.wait} returns (Academy's `done` and `pending` sets of `asyncio.wait`). */
export interface WaitResult {
  /** The agents that have stopped. */
  readonly done: AgentId[];
  /** The agents still running. */
  readonly pending: AgentId[];
}

interface LaunchedAgent {
  readonly agentId: AgentId;
  readonly executor: string;
  /** Detached: no longer this manager's (its end is neither logged nor raised). */
  detached?: boolean;
  /** Its config's `terminateOnSuccess`: what a shutdown does to its mailbox. */
  readonly terminateOnSuccess: boolean;
  /** Settles when the agent stops; never rejects. */
  readonly settled: Promise<void>;
  done: boolean;
  error: unknown;
  failed: boolean;
}

type AgentRef = AgentId | Handle | AgentHandle;

/**
 * Launches and manages agents. Create one with {@link Manager.fromExchangeFactory}; close it (or
 * `await using` it) to shut every agent down.
 */
export class Manager implements AsyncDisposable {
  readonly #client: UserExchangeClient;
  readonly #factory: ExchangeFactory;
  readonly #executors = new Map<string, AgentExecutor>();
  #defaultExecutor: string;
  readonly #maxRetries: number;
  readonly #retryBackoffMs: number;
  readonly #closeTimeoutMs: number;
  readonly #firesReminders: boolean;
  /** The reminder scheduler, once an agent ran here (undefined inside: the exchange keeps no reminders). */
  #reminders: Promise<ReminderScheduler | undefined> | undefined;
  readonly #logger: Logger;
  readonly #agents = new Map<string, LaunchedAgent>();
  /** Set by `fromExchangeFactory`, which creates the client and so owns the factory's lifetime. */
  #ownsFactory = false;
  #closing: Promise<void> | undefined;

  /**
   * A manager around a user client, as Academy's `Manager(exchange_client, executors)`: its agents
   * get their clients from the client's factory (`client.factory()`). Prefer
   * {@link Manager.fromExchangeFactory}. The manager owns (and closes) `client` and its executors;
   * it closes the factory only when it created the client itself.
   */
  constructor(client: UserExchangeClient, options?: ManagerOptions);
  /** @deprecated the factory is `client.factory()`; pass `(client, options)`. */
  constructor(client: UserExchangeClient, factory: ExchangeFactory, options?: ManagerOptions);
  constructor(client: UserExchangeClient, factoryOrOptions?: ExchangeFactory | ManagerOptions, maybeOptions?: ManagerOptions) {
    const factoryGiven = factoryOrOptions !== undefined && typeof (factoryOrOptions as ExchangeFactory).createUserClient === "function";
    const factory = factoryGiven ? (factoryOrOptions as ExchangeFactory) : client.factory();
    const options: ManagerOptions = (factoryGiven ? maybeOptions : (factoryOrOptions as ManagerOptions | undefined)) ?? {};
    this.#client = client;
    this.#factory = factory;
    this.#logger = (options.logger ?? silentLogger).child({ manager: client.clientId.uid });
    const given = Object.entries(options.executors ?? {});
    this.#executors.set(EVENT_LOOP_EXECUTOR, new EventLoopExecutor());
    for (const [name, executor] of given) this.#executors.set(name, executor);
    this.#defaultExecutor = options.defaultExecutor ?? (given.length === 1 ? given[0]![0] : EVENT_LOOP_EXECUTOR);
    if (!this.#executors.has(this.#defaultExecutor)) {
      throw new UnknownExecutorError(`No executor named '${this.#defaultExecutor}' to use as the default`, {
        executor: this.#defaultExecutor,
      });
    }
    this.#maxRetries = checkCount(options.maxRetries ?? 0, "maxRetries");
    this.#retryBackoffMs = checkCount(options.retryBackoffMs ?? 100, "retryBackoffMs");
    this.#closeTimeoutMs = checkCount(options.closeTimeoutMs ?? 60_000, "closeTimeoutMs");
    this.#firesReminders = options.reminders ?? true;
  }

  /**
   * Create a user client on `factory` and a manager around it. Without a factory, agents run on a
   * new in-process exchange (the embedded default).
   */
  static async fromExchangeFactory(
    factory: ExchangeFactory = new LocalExchangeFactory(),
    options: ManagerOptions & { client?: CreateUserClientOptions } = {},
  ): Promise<Manager> {
    const client = await factory.createUserClient({ logger: options.logger, ...options.client });
    try {
      const manager = new Manager(client, options);
      manager.#ownsFactory = true;
      return manager;
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  /** The manager's user client (discover, status, handles). */
  get exchangeClient(): UserExchangeClient {
    return this.#client;
  }

  /** The factory the manager's agents get their clients from. */
  get exchangeFactory(): ExchangeFactory {
    return this.#factory;
  }

  /** Names of the executors. */
  get executors(): string[] {
    return [...this.#executors.keys()];
  }

  /** The id of the manager's user client (Academy's `Manager.user_id`). */
  get userId(): UserId {
    return this.#client.clientId as UserId;
  }

  /** The executor `launch` uses when it names none. */
  get defaultExecutor(): string {
    return this.#defaultExecutor;
  }

  /**
   * Add an executor (Academy's `add_executor`). Executors cannot be removed: agents may run on
   * them. The manager closes it with the others.
   * @returns this manager, for chaining.
   * @throws {InvalidConfigError} if an executor has that name already.
   * @throws {ClientClosedError} if the manager is closed.
   */
  addExecutor(name: string, executor: AgentExecutor): this {
    this.#assertOpen();
    if (this.#executors.has(name)) {
      throw new InvalidConfigError(`An executor named '${name}' exists already`, { option: "executors" });
    }
    this.#executors.set(name, executor);
    return this;
  }

  /**
   * Make `name` the executor `launch` uses when it names none (Academy's `set_default_executor`).
   * @returns this manager, for chaining.
   * @throws {UnknownExecutorError} if there is no executor of that name.
   */
  setDefaultExecutor(name: string): this {
    if (!this.#executors.has(name)) throw new UnknownExecutorError(`No executor named '${name}'`, { executor: name });
    this.#defaultExecutor = name;
    return this;
  }

  /**
   * Launch an agent: register it (unless `registration` is given) and start it on an executor.
   * Returns its handle at once; requests wait in its mailbox until its startup completes.
   * @throws {AgentDefinitionError} for `Agent` itself or something that is not an agent.
   * @throws {UnknownExecutorError} for an unknown executor name.
   * @throws {AgentAlreadyLaunchedError} if `registration`'s agent was launched by this manager.
   * @throws {InvalidConfigError} for an invalid `config`.
   * @throws {SerializationError} if `args` cannot be encoded.
   * @throws the executor's reasons not to take the agent (a host pool: `UnknownAgentTypeError`
   *   when no host of the pool can run it, `ExchangeUnavailableError` when the launch cannot be
   *   stored, `AgentAlreadyLaunchedError` when the agent runs on the pool already).
   */
  async launch<A extends Agent>(agent: AgentClass<A> | A, options?: LaunchOptions<A>): Promise<Handle<A>>;
  /**
   * Launch an agent by type name, on an executor that finds agent classes by name where it runs
   * them (a `HostPoolExecutor`): for launchers that do not load the class, such as
   * `academy launch <type> --pool <pool>`. The type's ancestry comes from the executor (the
   * pool's hosts), so `discover` by a base type finds the agent.
   * @throws {AgentDefinitionError} if the executor cannot launch by type name.
   * @throws {UnknownAgentTypeError} if the executor knows no such type.
   */
  async launch(agentType: string, options?: LaunchOptions): Promise<Handle<Agent>>;
  async launch<A extends Agent>(agent: AgentClass<A> | A | string, options: LaunchOptions<A> = {}): Promise<Handle<A>> {
    this.#assertOpen();
    const byName = typeof agent === "string";
    const isClass = typeof agent === "function";
    if (!byName && (isClass ? !isAgentSubclass(agent) : !isAgentInstance(agent))) {
      throw new AgentDefinitionError(
        isAgentBase(agent)
          ? "Agent itself cannot be launched; subclass it"
          : `launch() takes an Agent subclass or instance, got ${describeValue(agent)}`,
      );
    }
    const executorName = options.executor ?? this.#defaultExecutor;
    const executor = this.#executors.get(executorName);
    if (executor === undefined) {
      throw new UnknownExecutorError(`No executor named '${executorName}'`, { executor: executorName });
    }
    if (byName && executor.resolveType === undefined) {
      throw new AgentDefinitionError(
        `Executor '${executorName}' runs agent classes: launch the class, or launch '${agent}' by name on a host pool executor`,
      );
    }
    const config = resolveRuntimeConfig(options.config);
    const args = encodeValue(isClass || byName ? [...(options.args ?? [])] : []);
    const maxRetries = checkCount(options.maxRetries ?? this.#maxRetries, "maxRetries");
    const agentType: AgentTypeInfo =
      options.registration?.agentType ??
      (byName ? await executor.resolveType!(agent, this.#factory) : agentTypeInfo((isClass ? agent : agent.constructor) as AgentClass<A>));

    let registration = options.registration;
    if (registration !== undefined && this.#agents.has(registration.agentId.uid)) {
      throw new AgentAlreadyLaunchedError(`${registration.agentId} was already launched by this manager`, {
        agentId: registration.agentId.uid,
      });
    }
    await executor.prepare?.({ agent, agentType, exchangeFactory: this.#factory });
    const registered = registration === undefined;
    if (registration === undefined && executor.register !== undefined) {
      // An executor of another site names the agent there.
      const spec = { agent, agentType, exchangeFactory: this.#factory, name: options.name };
      registration = (await executor.register(spec)) as AgentRegistration<A> | undefined;
    }
    registration ??= await this.#client.registerAgent<A>(agentType, { name: options.name });
    const agentId = registration.agentId;
    if (executor.remote !== true) this.#startReminders();
    const execution = executor.execute({
      agent,
      args,
      registration,
      newlyRegistered: registered,
      config,
      exchangeFactory: this.#factory,
      maxRetries,
      retryBackoffMs: this.#retryBackoffMs,
      logger: this.#logger,
    });
    if (execution.submitted !== undefined) {
      try {
        await execution.submitted;
      } catch (error) {
        void execution.done.catch(() => undefined);
        // Not started anywhere: a mailbox registered for it would take requests nobody answers.
        if (registered) await this.#client.terminate(agentId).catch(() => undefined);
        throw error;
      }
    }
    const launched: LaunchedAgent = {
      agentId,
      executor: executorName,
      terminateOnSuccess: config.terminateOnSuccess,
      done: false,
      error: undefined,
      failed: false,
      settled: execution.done.then(
        () => {
          launched.done = true;
        },
        (error: unknown) => {
          launched.done = true;
          launched.failed = true;
          launched.error = error;
          if (launched.detached !== true) this.#logger.error({ err: error, agentId: agentId.uid }, "agent failed");
        },
      ),
    };
    this.#agents.set(agentId.uid, launched);
    this.#logger.info({ agentId: agentId.uid, agentType: registration.agentType.name, executor: executorName }, "launched agent");
    return this.getHandle(agentId);
  }

  /** A handle to an agent, bound to the manager's client. */
  getHandle<A extends Agent>(agent: AgentId<A> | AgentRegistration<A>): Handle<A> {
    return this.#client.getHandle(agent instanceof AgentId ? agent : agent.agentId);
  }

  /** Register an agent without launching it (launch it later with `{ registration }`). */
  async registerAgent<A extends Agent>(agentClass: AgentClass<A>, options: { name?: string } = {}): Promise<AgentRegistration<A>> {
    this.#assertOpen();
    return this.#client.registerAgent(agentClass, options);
  }

  /**
   * Register several agents at once (Academy's `register_agents`); all or none.
   * @returns the registrations, in the order given.
   */
  async registerAgents<const T extends ReadonlyArray<AgentClass | RegisterAgentsEntry>>(agents: T): Promise<RegisteredAgents<T>> {
    this.#assertOpen();
    return this.#client.registerAgents(agents);
  }

  /**
   * Launch several agents whose arguments may hold each other's handles (Academy's
   * `launch_batch`): every agent is registered first, then each is launched, with `args` or
   * `args(handles)` (the batch's handles, in order). Works on every executor.
   *
   * ```ts
   * // A ring: each node gets a handle to the next.
   * const ring = await manager.launchBatch(
   *   Array.from({ length: 3 }, (_, i) => ({ agent: Node, args: (h: readonly Handle[]) => [h[(i + 1) % 3]] })),
   * );
   * ```
   * @returns the handles, in the order given.
   * @throws {AgentDefinitionError | UnknownExecutorError} before registering anything.
   * @throws a launch's error: agents launched before it keep running; the registrations of the
   *   others are terminated.
   */
  async launchBatch<const L extends readonly BatchLaunch[]>(launches: L): Promise<{ -readonly [K in keyof L]: Handle<BatchAgent<L[K]>> }> {
    this.#assertOpen();
    const handles = await launchBatch(
      {
        executors: this.executors,
        registerAgents: (agents) => this.registerAgents(agents),
        getHandle: (registration) => this.getHandle(registration),
        launch: (agent, options) => this.launch(agent, options),
        terminateUnlaunched: (registration) => this.#client.terminate(registration.agentId).catch(() => undefined),
      },
      launches,
    );
    return handles as { -readonly [K in keyof L]: Handle<BatchAgent<L[K]>> };
  }

  /**
   * Stop managing a launched agent: `close()` neither shuts it down nor waits for it, and
   * `running`, `wait` and `shutdown` no longer know it. For agents meant to outlive the launching
   * program, such as those `academy launch` puts on a host pool (they run on until shut down
   * through a handle). An agent in this process's event loop or worker threads still stops when
   * its executor closes.
   * @throws {BadEntityIdError} if this manager did not launch the agent.
   */
  detach(agent: AgentRef): void {
    const launched = this.#lookup(agent);
    launched.detached = true;
    this.#agents.delete(launched.agentId.uid);
  }

  /** Ids of the agents launched by this manager that have not stopped. */
  running(): AgentId[] {
    return [...this.#agents.values()].filter((a) => !a.done).map((a) => a.agentId);
  }

  /**
   * Ask a launched agent to shut down; by default wait for it to stop and raise its error.
   * A no-op for an agent that already stopped.
   * @throws {BadEntityIdError} if this manager did not launch the agent.
   * @throws {WaitTimeoutError} if `timeoutMs` passes while blocking.
   */
  async shutdown(agent: AgentRef, options: ManagerShutdownOptions = {}): Promise<void> {
    const launched = this.#lookup(agent);
    if (launched.done) return;
    try {
      await this.getHandle(launched.agentId).shutdown({ terminate: options.terminate });
    } catch (error) {
      if (!(error instanceof MailboxTerminatedError)) throw error;
    }
    if (options.blocking ?? true) {
      await this.wait([launched.agentId], { raiseError: options.raiseError ?? true, timeoutMs: options.timeoutMs });
    }
  }

  /**
   * Wait for launched agents to stop, as Academy's `wait` (and `asyncio.wait`): until all have
   * stopped (`"all-completed"`), any has (`"first-completed"`), or any has failed or all have
   * stopped (`"first-exception"`). When `timeoutMs` passes first, the wait returns the agents
   * stopped so far if the condition allows it (any stopped, for `"first-completed"` and
   * `"first-exception"`), and raises `WaitTimeoutError` otherwise.
   * @returns the agents that have stopped and those still running, in the order given.
   * @throws {BadEntityIdError} if this manager did not launch one of them.
   * @throws {WaitTimeoutError} if `timeoutMs` passes with no agent stopped, or (`"all-completed"`)
   *   with any still running.
   * @throws the errors of the stopped agents that failed, with `raiseError`.
   */
  async wait(agents: Iterable<AgentRef>, options: WaitOptions = {}): Promise<WaitResult> {
    const targets = [...new Set([...agents].map((a) => this.#lookup(a)))];
    if (targets.length === 0) return { done: [], pending: [] };
    const returnWhen = options.returnWhen ?? ReturnWhen.AllCompleted;
    const { timeoutMs } = options;
    if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs) || timeoutMs < 0)) {
      throw new InvalidConfigError(`timeoutMs must be a non-negative number of ms (got ${String(timeoutMs)})`, { option: "timeoutMs" });
    }
    const condition = this.#waitCondition(targets, returnWhen);
    if (timeoutMs === undefined || timeoutMs === Number.POSITIVE_INFINITY) {
      await condition;
    } else {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([condition, new Promise<void>((resolve) => (timer = setTimeout(resolve, timerDelay(timeoutMs))))]);
      clearTimeout(timer);
      const pending = targets.filter((t) => !t.done).length;
      if (pending === targets.length || (pending > 0 && returnWhen === ReturnWhen.AllCompleted)) {
        throw new WaitTimeoutError(`${pending} of ${targets.length} agent(s) still running after ${options.timeoutMs} ms`, {
          timeoutMs: options.timeoutMs,
          pending,
        });
      }
    }
    if (options.raiseError === true) {
      raiseErrors(
        targets.filter((t) => t.failed).map((t) => t.error),
        "Waited agents failed",
      );
    }
    return { done: targets.filter((t) => t.done).map((t) => t.agentId), pending: targets.filter((t) => !t.done).map((t) => t.agentId) };
  }

  /**
   * Shut every running agent down and wait for them (at most `closeTimeoutMs`), close the user
   * client (terminating its mailbox) and the executors and the factory, then raise the errors
   * agents failed with. Idempotent.
   * @throws {WaitTimeoutError} (possibly in an `ErrorGroup`) when agents were still running at
   *   the deadline; everything was closed all the same.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    const launched = [...this.#agents.values()];
    const running = launched.filter((a) => !a.done);
    const deadline = Date.now() + this.#closeTimeoutMs;
    if (running.length > 0) {
      this.#logger.info(
        { agents: running.map((a) => a.agentId.uid), executors: [...new Set(running.map((a) => a.executor))], timeoutMs: this.#closeTimeoutMs },
        "closing: waiting for agents to stop (agents on a host pool need a host serving the pool)",
      );
    }
    const stopped = Promise.all([
      ...running.map(async (a) => {
        try {
          // An agent that stops without answering (one that never started) ends the wait too.
          await Promise.race([this.getHandle(a.agentId).shutdown(), a.settled]);
        } catch (error) {
          if (!(error instanceof MailboxTerminatedError) && !(error instanceof RequestTimeoutError)) {
            this.#logger.warn({ err: error, agentId: a.agentId.uid }, "could not ask agent to shut down");
          }
        }
      }),
      ...launched.map((a) => a.settled),
      ...(running.length > 0 ? [this.#completeUnserved(running)] : []),
    ]);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      stopped.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timerDelay(deadline - Date.now()));
      }),
    ]);
    clearTimeout(timer);
    const pending = launched.filter((a) => !a.done);
    if (timedOut) {
      this.#logger.warn(
        { agents: pending.map((a) => a.agentId.uid), executors: [...new Set(pending.map((a) => a.executor))], timeoutMs: this.#closeTimeoutMs },
        "close timed out: agents still running; closing their executors without waiting for them",
      );
    }
    const scheduler = await this.#reminders;
    await scheduler?.close();
    await this.#client.close();
    for (const [name, executor] of this.#executors) {
      try {
        await executor.close();
      } catch (error) {
        this.#logger.warn({ err: error, executor: name }, "executor close failed");
      }
    }
    if (this.#ownsFactory) await this.#factory.close();
    const errors = launched.filter((a) => a.failed && !pending.includes(a)).map((a) => a.error);
    if (timedOut) {
      errors.push(
        new WaitTimeoutError(`Manager.close(): ${pending.length} agent(s) still running after ${this.#closeTimeoutMs} ms: ${pending.map((a) => a.agentId.uid).join(", ")}`, {
          timeoutMs: this.#closeTimeoutMs,
          pending: pending.length,
        }),
      );
    }
    raiseErrors(errors, "Agents failed");
  }

  /** Start firing reminders, once (see `ManagerOptions.reminders`). */
  #startReminders(): void {
    if (!this.#firesReminders || this.#reminders !== undefined || this.#factory.reminderStore === undefined) return;
    const factory = this.#factory;
    this.#reminders = (async () => {
      try {
        return await ReminderScheduler.start(await factory.reminderStore!(), { logger: this.#logger });
      } catch (error) {
        this.#logger.warn({ err: error }, "could not start firing reminders");
        return undefined;
      }
    })();
  }

  /**
   * Agents queued on host pools that no host serves never run to read their shutdown request:
   * their executors end their launches, and their mailboxes go as a shutdown would take them.
   */
  async #completeUnserved(running: readonly LaunchedAgent[]): Promise<void> {
    for (const [name, executor] of this.#executors) {
      if (executor.completeUnserved === undefined || !running.some((a) => a.executor === name)) continue;
      let uids: string[];
      try {
        uids = await executor.completeUnserved();
      } catch (error) {
        this.#logger.warn({ err: error, executor: name }, "could not check for agents no host will start");
        continue;
      }
      for (const uid of uids) {
        const agent = this.#agents.get(uid);
        this.#logger.info({ agentId: uid, executor: name }, "closing: the agent's pool has no serving host; its launch was ended before it ran");
        if (agent?.terminateOnSuccess === true) await this.#client.terminate(agent.agentId).catch(() => undefined);
      }
    }
  }

  #waitCondition(targets: LaunchedAgent[], returnWhen: ReturnWhen): Promise<void> {
    const all = Promise.all(targets.map((t) => t.settled)).then(() => undefined);
    switch (returnWhen) {
      case ReturnWhen.AllCompleted:
        return all;
      case ReturnWhen.FirstCompleted:
        return Promise.race(targets.map((t) => t.settled));
      case ReturnWhen.FirstException:
        return Promise.race([
          all,
          ...targets.map((t) =>
            t.settled.then(() => (t.failed ? undefined : new Promise<void>(() => {}))),
          ),
        ]);
      default:
        throw new InvalidConfigError(`Unknown returnWhen '${String(returnWhen)}'`, { option: "returnWhen" });
    }
  }

  #lookup(agent: AgentRef): LaunchedAgent {
    const agentId = agent instanceof AgentHandle ? agent.agentId : agent;
    if (!(agentId instanceof AgentId)) throw new TypeError("Expected an AgentId or a handle");
    const launched = this.#agents.get(agentId.uid);
    if (launched === undefined) {
      throw new BadEntityIdError(`${agentId} was not launched by this manager`, { entityId: agentId.uid });
    }
    return launched;
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new ClientClosedError("The manager is closed");
  }
}

function checkCount(value: number, option: string): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new InvalidConfigError(`${option} must be a non-negative integer (got ${value})`, { option });
  }
  return value;
}

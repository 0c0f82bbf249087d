/**
 * The runtime of one agent run: connects the agent to its mailbox, gates requests on startup,
 * runs actions (acknowledging each request only after its response is out), runs loops, and
 * shuts down in Academy's order.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  ActionCancelledError,
  ActionInvalidStateError,
  AgentDefinitionError,
  AgentStateError,
  BadEntityIdError,
  ClientClosedError,
  ExchangeUnavailableError,
  MailboxTerminatedError,
  PayloadTooLargeError,
  SerializationError,
  UnknownActionError,
  raiseErrors,
} from "../errors.ts";
import type { AgentExchangeClient, RequestDelivery, ResponseBody } from "../exchange/exchange-client.ts";

import type { ExchangeFactory } from "../exchange/exchange-factory.ts";
import type { AgentRegistration } from "../exchange/transport.ts";

import type { AgentId } from "../identifiers.ts";
import { toFailure } from "../protocol/failure.ts";
import { MessageType, assertNever } from "../protocol/messages.ts";
import type { ActionRequest, CancelRequest, RequestMessage } from "../protocol/messages.ts";
import { deferred } from "../util/deferred.ts";
import { silentLogger } from "../util/logger.ts";
import type { Logger } from "../util/logger.ts";
import { Agent as AgentBase, bindAgent } from "../agent/agent.ts";
import type { AgentClass } from "../agent/agent-type.ts";
import type { ActionContext, Agent, AgentContext } from "../agent/agent.ts";
import { AgentEvent } from "../agent/agent-event.ts";
import { agentSpec } from "../agent/decorators.ts";
import type { AgentSpec, LoopSpec } from "../agent/decorators.ts";
import { resolveRuntimeConfig } from "../agent/runtime-config.ts";
import type { ResolvedRuntimeConfig, RuntimeConfig } from "../agent/runtime-config.ts";

/** Lifecycle states of a runtime. */
export const EngineState = {
  Created: "created",
  Starting: "starting",
  Running: "running",
  Stopping: "stopping",
  Stopped: "stopped",
  Failed: "failed",
} as const;
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
  readonly exchangeFactory: ExchangeFactory;
  readonly registration: AgentRegistration;
  readonly config?: RuntimeConfig;
  /** @defaultValue silent */
  readonly logger?: Logger;
}

/** Why and how the runtime shuts down. */
export interface ShutdownRequest {
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

interface InFlightAction {
  readonly request: ActionRequest;
  readonly delivery: RequestDelivery;
  /** Further deliveries of the same request (redeliveries while it runs); acked with it. */
  readonly duplicates: RequestDelivery[];
  readonly controller: AbortController;
  started: boolean;
  answered: boolean;
  done: Promise<void>;
}

const COMPLETED_MEMORY = 1024;
const RESPONSE_RETRY_DELAY_MS = 1000;

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
  readonly #shutdownController = new AbortController();
  /** Resolves true once startup completed, false if shutdown began first. */
  readonly #ready = deferred<boolean>();
  readonly #shutdownRequested = deferred<ShutdownRequest>();
  readonly #inFlight = new Map<string, InFlightAction>();
  readonly #completed = new Set<string>();
  readonly #loopErrors: unknown[] = [];
  readonly #slotWaiters: Array<() => void> = [];
  #runningActions = 0;
  #accepting = true;
  #state: EngineState = EngineState.Created;
  #retryable = false;
  #client: AgentExchangeClient | undefined;

  constructor(source: AgentSource<A>, options: AgentEngineOptions) {
    this.#source = source;
    this.#agent = source instanceof AgentBase ? source : undefined;
    this.agentId = options.registration.agentId as AgentId<A>;
    this.#factory = options.exchangeFactory;
    this.#registration = options.registration;
    this.#config = resolveRuntimeConfig(options.config);
    this.#spec = agentSpec(source instanceof AgentBase ? (source.constructor as AgentClass<A>) : source.agentClass);
    this.#logger = (options.logger ?? silentLogger).child({
      agentId: this.agentId.uid,
      agentType: options.registration.agentType.name,
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
   * Ask the runtime to shut down. The first request wins. Safe to call at any time, even before
   * startup completes (shutdown then follows startup).
   */
  requestShutdown(request: ShutdownRequest = { expected: true }): void {
    this.#shutdownRequested.resolve(request);
  }

  /**
   * Run the agent until it shuts down. Single use.
   * @throws the startup error; loop errors (`raiseLoopErrorsOnShutdown`); the shutdown hook's error.
   */
  async run(): Promise<void> {
    if (this.#state !== EngineState.Created) throw new AgentStateError("An AgentEngine runs only once");
    this.#state = EngineState.Starting;
    try {
      this.#client = await this.#factory.createAgentClient(this.#registration, (d) => this.#onRequest(d), {
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
    const client = this.#client;
    let loops: Promise<void>[] = [];
    try {
      this.#agent ??= (this.#source as AgentBuilder<A>).build(client);
      const context: AgentContext<A> = {
        agentId: this.agentId,
        exchangeClient: client,
        logger: this.#logger,
        shutdownSignal: this.#shutdownController.signal,
      };
      bindAgent(this.#agent, {
        context,
        requestShutdown: (options) => this.requestShutdown({ expected: true, terminate: options.terminate }),
      });
      loops = this.#spec.loops.map((spec) => this.#runLoop(spec));
      await this.#agent.agentOnStartup();
    } catch (error) {
      this.#logger.error({ err: error }, "agent startup failed");
      await this.#shutdown({ expected: false }, false, loops).catch((shutdownError: unknown) => {
        this.#logger.warn({ err: shutdownError }, "shutdown after failed startup raised");
      });
      throw error;
    }
    this.#state = EngineState.Running;
    this.#ready.resolve(true);
    this.#logger.info("agent started");
    await this.#shutdown(await this.#shutdownRequested.promise, true, loops);
  }

  async #shutdown(request: ShutdownRequest, started: boolean, loops: Promise<void>[]): Promise<void> {
    this.#state = EngineState.Stopping;
    this.#retryable = !request.expected;
    this.#ready.resolve(false);
    this.#shutdownController.abort(new ActionCancelledError(`Agent ${this.agentId} is shutting down`));
    const errors: unknown[] = [];
    const terminate = request.terminate ?? (request.expected ? this.#config.terminateOnSuccess : this.#config.terminateOnError);

    if (started) {
      try {
        await this.agent.agentOnShutdown();
      } catch (error) {
        this.#logger.error({ err: error }, "agent shutdown hook failed");
        errors.push(error);
      }
    }
    await Promise.allSettled(loops);
    // Stop taking requests: later deliveries stay unacknowledged and return to the mailbox.
    this.#accepting = false;
    await this.#settleActions(terminate, request.cancelActions ?? this.#config.cancelActionsOnShutdown);

    const client = this.#client!;
    if (terminate) {
      try {
        await client.terminate(this.agentId);
      } catch (error) {
        this.#logger.warn({ err: error }, "could not terminate mailbox");
      }
    }
    await client.close();
    if (this.#agent !== undefined) bindAgent(this.#agent, undefined);

    if (this.#config.raiseLoopErrorsOnShutdown) errors.unshift(...this.#loopErrors);
    this.#state = errors.length > 0 || !request.expected ? EngineState.Failed : EngineState.Stopped;
    this.#logger.info({ terminate, expected: request.expected }, "agent stopped");
    raiseErrors(errors, `Agent ${this.agentId} failed`);
  }

  /** Cancel or await in-flight actions, per config; queued ones return to the mailbox unless terminating. */
  async #settleActions(terminate: boolean, cancel: boolean): Promise<void> {
    const entries = [...this.#inFlight.values()];
    if (cancel) {
      await Promise.all(
        entries
          .filter((entry) => entry.started || terminate)
          .map((entry) => this.#cancel(entry, `Agent ${this.agentId} shut down during the action`)),
      );
    }
    // Wake queued actions: they see the runtime is stopping and leave their requests unacknowledged.
    for (const wake of this.#slotWaiters.splice(0)) wake();
    await Promise.allSettled(entries.map((entry) => entry.done));
  }

  #onRequest(delivery: RequestDelivery): void {
    const request = delivery.message;
    if (this.#completed.has(request.tag)) {
      delivery.ack();
      return;
    }
    if (!this.#accepting) return;
    switch (request.type) {
      case MessageType.ActionRequest: {
        const existing = this.#inFlight.get(request.tag);
        if (existing !== undefined) {
          existing.duplicates.push(delivery);
          return;
        }
        const entry: InFlightAction = {
          request,
          delivery,
          duplicates: [],
          controller: new AbortController(),
          started: false,
          answered: false,
          done: Promise.resolve(),
        };
        this.#inFlight.set(request.tag, entry);
        entry.done = this.#handleAction(entry);
        return;
      }
      case MessageType.PingRequest:
      case MessageType.ShutdownRequest:
        void this.#handleControl(request, delivery);
        return;
      case MessageType.CancelRequest:
        void this.#handleCancel(request, delivery);
        return;
      default:
        assertNever(request);
    }
  }

  async #handleAction(entry: InFlightAction): Promise<void> {
    if (!(await this.#ready.promise) && !entry.answered) {
      this.#release(entry);
      return;
    }
    await this.#acquireSlot();
    if (entry.answered || !this.#accepting) {
      this.#releaseSlot();
      if (!entry.answered) this.#release(entry);
      return;
    }
    entry.started = true;
    const { request } = entry;
    try {
      if (!this.#spec.actions.has(request.action)) {
        throw new UnknownActionError(`Agent ${this.agentId} has no action '${request.action}'`, {
          action: request.action,
          agentId: this.agentId.uid,
        });
      }
      const spec = this.#spec.actions.get(request.action)!;
      const method = (this.agent as unknown as Record<string, (...args: unknown[]) => unknown>)[request.action]!;
      const args = spec.context ? [...request.args, this.#actionContext(entry)] : [...request.args];
      const result = await method.apply(this.agent, args);
      await this.#answer(entry, { type: MessageType.ActionResponse, result });
    } catch (error) {
      await this.#answer(entry, { type: MessageType.ErrorResponse, error: toFailure(error) });
    } finally {
      this.#releaseSlot();
    }
  }

  #actionContext(entry: InFlightAction): ActionContext {
    return {
      source: entry.request.src,
      tag: entry.request.tag,
      signal: entry.controller.signal,
      exchangeClient: this.#client!,
    };
  }

  /** Respond once, then acknowledge the request (and any duplicate deliveries of it). */
  async #answer(entry: InFlightAction, body: ResponseBody): Promise<void> {
    if (entry.answered) return;
    entry.answered = true;
    const delivered = await this.#respond(entry.request, body);
    if (!delivered) {
      // The response could not be published: leave the request to be delivered again.
      entry.delivery.nak(RESPONSE_RETRY_DELAY_MS);
      for (const duplicate of entry.duplicates) duplicate.nak(RESPONSE_RETRY_DELAY_MS);
      this.#inFlight.delete(entry.request.tag);
      return;
    }
    entry.delivery.ack();
    for (const duplicate of entry.duplicates) duplicate.ack();
    this.#inFlight.delete(entry.request.tag);
    this.#remember(entry.request.tag);
  }

  /** Forget a request without answering: it returns to the mailbox when the client closes. */
  #release(entry: InFlightAction): void {
    this.#inFlight.delete(entry.request.tag);
  }

  /**
   * Publish a response. Results too large or not encodable are replaced by the error.
   * @returns false when the exchange was unreachable (the request should be delivered again);
   * true when the response went out or can never go out (then it is logged and dropped).
   */
  async #respond(request: RequestMessage, body: ResponseBody): Promise<boolean> {
    const client = this.#client!;
    try {
      await client.respond(request, body);
      return true;
    } catch (error) {
      if (!(error instanceof PayloadTooLargeError || error instanceof SerializationError)) return this.#undelivered(request, error);
      try {
        await client.respond(request, { type: MessageType.ErrorResponse, error: toFailure(error) });
        return true;
      } catch (second) {
        return this.#undelivered(request, second);
      }
    }
  }

  /** A response that did not go out: retry later only if the exchange was unreachable. */
  #undelivered(request: RequestMessage, error: unknown): boolean {
    if (error instanceof ExchangeUnavailableError || error instanceof ClientClosedError) {
      this.#logger.warn({ err: error, tag: request.tag }, "could not send response; the request will be delivered again");
      return false;
    }
    this.#logger.error({ err: error, tag: request.tag }, "response cannot be delivered; dropped");
    return true;
  }

  async #handleControl(request: RequestMessage, delivery: RequestDelivery): Promise<void> {
    // Before startup completes these wait; if startup never completes they stay in the mailbox.
    if (!(await this.#ready.promise)) return;
    const delivered = await this.#respond(request, { type: MessageType.SuccessResponse });
    if (!delivered) {
      delivery.nak(RESPONSE_RETRY_DELAY_MS);
      return;
    }
    delivery.ack();
    this.#remember(request.tag);
    if (request.type === MessageType.ShutdownRequest) {
      this.requestShutdown({ expected: true, terminate: request.terminate });
    }
  }

  async #handleCancel(request: CancelRequest, delivery: RequestDelivery): Promise<void> {
    const target = this.#inFlight.get(request.target);
    let body: ResponseBody;
    if (target !== undefined && !target.answered) {
      await this.#cancel(target, `Action '${target.request.action}' was cancelled by the caller`);
      body = { type: MessageType.SuccessResponse };
    } else {
      const error = new ActionInvalidStateError(`No running action with tag ${request.target}`, { tag: request.target });
      body = { type: MessageType.ErrorResponse, error: toFailure(error) };
    }
    if (await this.#respond(request, body)) {
      delivery.ack();
      this.#remember(request.tag);
    } else delivery.nak(RESPONSE_RETRY_DELAY_MS);
  }

  /** Abort the action's signal and answer its caller with `ActionCancelledError`. */
  async #cancel(entry: InFlightAction, reason: string): Promise<void> {
    if (entry.answered) return;
    const error = new ActionCancelledError(reason, { agentId: this.agentId.uid, tag: entry.request.tag });
    entry.controller.abort(error);
    await this.#answer(entry, { type: MessageType.ErrorResponse, error: toFailure(error) });
  }

  async #acquireSlot(): Promise<void> {
    while (this.#runningActions >= this.#config.maxConcurrentActions && this.#accepting) {
      await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
    }
    this.#runningActions++;
  }

  #releaseSlot(): void {
    this.#runningActions--;
    this.#slotWaiters.shift()?.();
  }

  #remember(tag: string): void {
    this.#completed.add(tag);
    if (this.#completed.size > COMPLETED_MEMORY) {
      this.#completed.delete(this.#completed.values().next().value!);
    }
  }

  async #runLoop(spec: LoopSpec): Promise<void> {
    if (!(await this.#ready.promise)) return;
    const signal = this.#shutdownController.signal;
    const agent = this.agent as unknown as Record<string, unknown>;
    const method = agent[spec.name] as (...args: unknown[]) => Promise<unknown>;
    try {
      switch (spec.kind) {
        case "loop":
          await method.call(this.agent, signal);
          break;
        case "timer":
          while (!signal.aborted) {
            try {
              await sleep(spec.intervalMs, undefined, { signal });
            } catch {
              break;
            }
            await method.call(this.agent);
          }
          break;
        case "event": {
          const event = agent[spec.event!];
          if (!(event instanceof AgentEvent)) {
            throw new AgentDefinitionError(`@event handler '${spec.name}' waits on '${spec.event}', which is not an AgentEvent`);
          }
          while (await event.wait(signal)) {
            event.clear();
            await method.call(this.agent);
          }
          break;
        }
        default:
          assertNever(spec.kind);
      }
    } catch (error) {
      if (signal.aborted && (error === signal.reason || (error as Error)?.name === "AbortError")) return;
      this.#logger.error({ err: error, loop: spec.name }, "agent loop failed");
      this.#loopErrors.push(error);
      if (this.#config.shutdownOnLoopError) this.requestShutdown({ expected: false });
    }
  }
}

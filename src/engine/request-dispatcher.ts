/**
 * The requests that reach one agent: each is run or answered once (duplicates and redeliveries
 * are recognised by tag; across processes and crashes by the result records of effectively-once
 * actions, docs/PROTOCOL.md section 10.10), actions take a concurrency slot and run with an abort
 * signal, cancels abort them, pings and shutdowns wait for startup. Every request is acknowledged only after its
 * response is out (see {@link Responder}).
 */
import type { Agent } from "../agent/agent.ts";
import type { AgentSpec } from "../agent/decorators.ts";
import type { ResolvedRuntimeConfig } from "../agent/runtime-config.ts";
import {
  ActionCancelledError,
  ActionInvalidStateError,
  ActionKindError,
  PingCancelledError,
  StateConflictError,
  UnknownActionError,
} from "../errors.ts";
import type { AgentExchangeClient, RequestDelivery } from "../exchange/exchange-client.ts";
import type { ResultStore } from "../exchange/result-store.ts";
import { AgentId, EntityRole, UserId } from "../identifiers.ts";
import { MailboxStatus } from "../exchange/mailbox-status.ts";
import { runInActionScope } from "../interceptors/action-scope.ts";
import type { ActionInput, AgentInterceptor, InboundRequestInput } from "../interceptors/agent-interceptor.ts";
import { composeInterceptors } from "../interceptors/interceptors.ts";
import { toFailure } from "../protocol/failure.ts";
import { MessageType, assertNever } from "../protocol/messages.ts";
import type { ActionRequest, CancelRequest, RequestMessage, ResponseBody, StreamCredit } from "../protocol/messages.ts";
import type { Logger } from "../util/logger.ts";
import { EngineActionContext, argsWithContext } from "./action-context.ts";
import { ActionSlots } from "./action-slots.ts";
import type { ActionStatsRecorder } from "./agent-stats.ts";
import { settleWithin } from "./grace.ts";
import { RecentTags } from "./recent-tags.ts";
import { SlotMap } from "../util/slot-table.ts";
import { ProgressReporter } from "./progress-reporter.ts";
import { RESPONSE_RETRY_DELAY_MS, Responder } from "./responder.ts";
import { StreamPump } from "./stream-pump.ts";
import type { ActionOutcomes } from "./action-outcomes.ts";
import { ActionSignal } from "./action-signal.ts";
import type { SignalSource } from "./action-signal.ts";

/** How many answered tags an agent remembers to recognise redeliveries. */
const ANSWERED_MEMORY = 1024;

/** What the dispatcher needs from the engine that owns it. */
export interface DispatcherOptions {
  readonly agentId: AgentId;
  /** The agent's type name (for interceptors). */
  readonly agentType: string;
  readonly spec: AgentSpec;
  readonly config: ResolvedRuntimeConfig;
  readonly logger: Logger;
  /** The agent-side interceptors of the exchange factory, first one outermost. */
  readonly interceptors: readonly AgentInterceptor[];
  /** Resolves true once startup completed, false if shutdown began first. */
  readonly ready: Promise<boolean>;
  /** A shutdown request was answered: shut the agent down. */
  onShutdownRequest(terminate: boolean | undefined): void;
  /** Counts each action's runs (`agentStats`). */
  readonly stats?: ActionStatsRecorder;
  /**
   * Durable records of what requests did (the agent's durable state): consulted before an action
   * runs, written before its response is sent. Set by `useOutcomes` once they are loaded.
   */
  readonly outcomes?: ActionOutcomes;
  /** See {@link Admission}; undefined: every action may run. */
  readonly admission?: Admission | undefined;
}

/**
 * Whether an action request may run now: `true`, or a promise of the answer. A runtime host holds
 * actions while its place in the pool is in doubt (its lease lapsed: its event loop or connection
 * stalled), and refuses them once it knows another host took the agent over; a refused request is
 * left in the mailbox, unanswered, for the agent's next run.
 */
export type Admission = () => true | Promise<boolean>;

const SETTLED: Promise<void> = Promise.resolve();

/** The answer to a ping that waited for a startup that failed. */
function startupFailed(agentId: AgentId): PingCancelledError {
  return new PingCancelledError(`Agent ${agentId} failed to start; the ping was cancelled`, { agentId: agentId.uid });
}

/** An action request being run (or waiting for a slot). */
interface InFlightAction {
  readonly request: ActionRequest;
  readonly delivery: RequestDelivery;
  /** Further deliveries of the same request (redeliveries while it runs); acked with it. */
  duplicates: RequestDelivery[] | undefined;
  /** The action's abort signal, made when first read. */
  readonly abort: ActionSignal;
  started: boolean;
  answered: boolean;
  /** Effectively-once: the record is looked up before running and written with the response. */
  readonly once: boolean;
  /** The action's method has returned or thrown. */
  finished: boolean;
  /** The response being sent (and recorded) and the delivery settled, once answering began. */
  answering: Promise<unknown> | undefined;
  done: Promise<void>;
  /** A streaming action's pump, once its generator runs. */
  pump: StreamPump | undefined;
}

/**
 * What the `action` hooks get: the action's signal is read from the entry's {@link ActionSignal}
 * only when a hook or the action reads it (a hook may replace it, as `ActionInput` allows). Own
 * accessor properties, so that a hook passing on `{ ...input, args }` passes the signal too.
 */
function actionInput(request: ActionRequest, agentType: string, abort: ActionSignal): ActionInput {
  let signal: AbortSignal | undefined;
  return {
    request,
    agentType,
    args: request.args,
    get signal(): AbortSignal {
      return (signal ??= abort.signal);
    },
    set signal(value: AbortSignal) {
      signal = value;
    },
  };
}

/** Routes one agent's requests and answers them. */
export class RequestDispatcher {
  readonly #options: DispatcherOptions;
  /** Requests being handled, by tag (a {@link SlotMap}: no `Map` holding the entries themselves). */
  readonly #inFlight = new SlotMap<InFlightAction>();
  readonly #answered = new RecentTags(ANSWERED_MEMORY);
  readonly #slots: ActionSlots;
  readonly #responder: Responder;
  /** The composed `inboundRequest` hooks, if any interceptor has one. */
  readonly #inboundRequest: ((input: InboundRequestInput) => RequestMessage) | undefined;
  /** The composed `action` hooks, if any interceptor has one. */
  readonly #action: ((input: ActionInput) => Promise<unknown>) | undefined;
  #client: AgentExchangeClient | undefined;
  /** Where completed actions' responses are recorded (effectively-once); undefined: off. */
  #results: ResultStore | undefined;
  #outcomes: ActionOutcomes | undefined;
  #agent: Agent | undefined;
  /** Deliveries that arrived before the client was attached; replayed by `attach`. */
  #early: RequestDelivery[] | undefined = [];
  #ready = false;
  #accepting = true;
  /** Pings and shutdowns being handled (waiting for startup, or being answered). */
  readonly #controls = new Set<Promise<void>>();

  constructor(options: DispatcherOptions) {
    this.#options = options;
    this.#outcomes = options.outcomes;
    this.#slots = new ActionSlots(options.config.maxConcurrentActions);
    this.#responder = new Responder(options.logger, options.interceptors);
    this.#inboundRequest = composeInterceptors(options.interceptors, "inboundRequest", (input) => input.request);
    // The input is the signal's source: read (and so made) only if the action or a hook reads it.
    this.#action = composeInterceptors(options.interceptors, "action", (input) => this.#invoke(input.request, input.args, input));
    void options.ready.then((ready) => {
      this.#ready = ready;
    });
  }

  /**
   * The agent's client is open: answer through it (and handle what arrived before). With
   * `results`, actions run effectively once (docs/PROTOCOL.md section 10.10).
   */
  attach(client: AgentExchangeClient, results?: ResultStore): void {
    this.#client = client;
    this.#results = results;
    this.#responder.attach(client);
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const delivery of early) this.onRequest(delivery);
  }

  /**
   * Consult and write `outcomes` (the agent's durable state) for every action from now on; set
   * before startup completes, so before any action runs.
   */
  useOutcomes(outcomes: ActionOutcomes | undefined): void {
    this.#outcomes = outcomes;
  }

  /** The agent is built: actions run on it (once startup completes). */
  bind(agent: Agent): void {
    this.#agent = agent;
  }

  /** The handler of the agent's mailbox: every request delivered to it. Never throws. */
  onRequest(delivery: RequestDelivery): void {
    if (this.#early !== undefined) {
      this.#early.push(delivery);
      return;
    }
    let request = delivery.message;
    if (request.type === MessageType.StreamCredit) {
      // Credits are not calls: they reach the stream they name (no interceptors, no answer).
      this.#grant(request);
      delivery.ack();
      return;
    }
    if (this.#answered.has(request.tag)) {
      delivery.ack();
      return;
    }
    // Stopped: later deliveries stay unacknowledged and return to the mailbox.
    if (!this.#accepting) return;
    if (request.type === MessageType.ActionRequest) {
      // A redelivery of a running action is attached to it: one execution, one response.
      const running = this.#inFlight.get(request.tag);
      if (running !== undefined) {
        (running.duplicates ??= []).push(delivery);
        return;
      }
    }
    const inbound = this.#inboundRequest;
    if (inbound !== undefined) {
      try {
        request = inbound({ request, deliveryCount: delivery.deliveryCount });
      } catch (error) {
        void this.#reject(request, delivery, error);
        return;
      }
    }
    switch (request.type) {
      case MessageType.ActionRequest:
        this.#startAction(request, delivery);
        return;
      case MessageType.PingRequest:
      case MessageType.ShutdownRequest: {
        const handled = this.#handleControl(request, delivery).finally(() => this.#controls.delete(handled));
        this.#controls.add(handled);
        return;
      }
      case MessageType.CancelRequest:
        void this.#handleCancel(request, delivery);
        return;
      case MessageType.StreamCredit:
        // An inboundRequest interceptor turned a request into a credit: not a call either.
        this.#grant(request);
        delivery.ack();
        return;
      default:
        assertNever(request);
    }
  }

  /**
   * Stop taking requests, then cancel in-flight actions (`cancel`) or let them finish. Actions
   * still waiting for a slot are cancelled only when the mailbox is about to be terminated
   * (`terminate`); otherwise they return to the mailbox unanswered for the next run. Cancelled
   * actions get `graceMs` to return; those that ignore their signal longer are abandoned (their
   * callers were answered already). Streams are always cancelled, whatever `cancel` says: a
   * stream waits on its consumer and may never end by itself.
   */
  async settle(terminate: boolean, cancel: boolean, graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.#accepting = false;
    const entries = this.#inFlight.values();
    if (cancel) {
      const reason = `Agent ${this.#options.agentId} shut down during the action`;
      const cancelled = entries.filter((entry) => entry.started || terminate || entry.request.stream !== undefined);
      await Promise.all(cancelled.map((entry) => this.#cancel(entry, reason)));
    } else {
      const reason = `Agent ${this.#options.agentId} shut down during the stream`;
      await Promise.all(entries.filter((entry) => entry.request.stream !== undefined).map((entry) => this.#cancel(entry, reason)));
    }
    // Wake queued actions: they see the engine is stopping and leave their requests unacknowledged.
    this.#slots.close();
    // Pings that waited for a startup that failed are being answered: before the mailbox goes.
    await Promise.allSettled([...this.#controls]);
    const late = await settleWithin(entries, cancel ? graceMs : Number.POSITIVE_INFINITY);
    // Actions that finished are not abandoned while their response is sent and recorded (bounded
    // by the exchange's retry window): a new run of the agent would otherwise take the request
    // again before its record exists, and run it a second time.
    await Promise.allSettled(late.flatMap((entry) => (entry.finished && entry.answering !== undefined ? [entry.answering] : [])));
    const abandoned = late.filter((entry) => !entry.finished);
    for (const entry of abandoned) {
      this.#options.logger.warn(
        { action: entry.request.action, tag: entry.request.tag, graceMs },
        "action ignored its cancellation; abandoned at shutdown (it may still run to its end)",
      );
    }
  }

  #startAction(request: ActionRequest, delivery: RequestDelivery): void {
    const entry: InFlightAction = {
      request,
      delivery,
      duplicates: undefined,
      abort: new ActionSignal(),
      started: false,
      answered: false,
      once: this.#results !== undefined && this.#options.spec.actions.get(request.action)?.once === true,
      finished: false,
      answering: undefined,
      done: SETTLED,
      pump: undefined,
    };
    this.#inFlight.set(request.tag, entry);
    entry.done = this.#runAction(entry);
  }

  async #runAction(entry: InFlightAction): Promise<void> {
    if (!this.#ready && !(await this.#options.ready) && !entry.answered) {
      // Startup never completed: leave the request in the mailbox.
      this.#inFlight.delete(entry.request.tag);
      return;
    }
    const admitted = this.#options.admission?.();
    if (admitted !== undefined && admitted !== true && !(await admitted)) {
      // The host lost the agent to another: leave the request in the mailbox for the new run.
      this.#inFlight.delete(entry.request.tag);
      return;
    }
    const applied = this.#outcomes?.recorded(entry.request.tag);
    if (applied?.response !== undefined) {
      // Applied to the durable state by a run that stopped before acknowledging it: answer from
      // the state record, never run it twice (docs/STATE.md section 4).
      await this.#answer(entry, applied.response, true);
      return;
    }
    // Only a delivery that may be a duplicate can have a record (PROTOCOL.md 10.10).
    if (entry.once && entry.delivery.mayBeDuplicate !== false && !(await this.#notYetAnswered(entry))) return;
    if (applied !== undefined) {
      // Applied, but neither record has its response: still never run it twice.
      await this.#answer(entry, this.#unrecordedResponse(entry.request), true);
      return;
    }
    const waiting = this.#slots.acquire();
    if (waiting !== undefined) await waiting;
    try {
      if (entry.answered || !this.#accepting) {
        // Forget it unanswered: it returns to the mailbox when the client closes.
        if (!entry.answered) this.#inFlight.delete(entry.request.tag);
        return;
      }
      entry.started = true;
      const { request } = entry;
      const stats = this.#options.stats;
      const begun = stats?.begin(request.action) ?? 0;
      let body: ResponseBody;
      try {
        const action = this.#action;
        const result =
          action === undefined
            ? this.#invoke(request, request.args, entry.abort)
            : action(actionInput(request, this.#options.agentType, entry.abort));
        const value = await result;
        body =
          entry.pump === undefined
            ? { type: MessageType.ActionResponse, result: value }
            : { type: MessageType.StreamEnd, run: entry.pump.runId, count: entry.pump.count, result: value };
        stats?.end(request.action, begun, true);
      } catch (error) {
        stats?.end(request.action, begun, false);
        if (error instanceof StateConflictError) return this.#fenced(entry);
        body = this.#failure(entry, error);
      }
      // With durable state, the state and the request's record are one write, before the response.
      let inState = false;
      const outcomes = this.#outcomes;
      if (outcomes !== undefined && !entry.answered) {
        try {
          inState = await outcomes.record(request.tag, body);
        } catch (error) {
          if (error instanceof StateConflictError) return this.#fenced(entry);
          this.#options.logger.warn({ err: error, action: request.action, tag: request.tag }, "could not save the agent's state; answering with the error");
          body = this.#failure(entry, error);
        }
      }
      entry.finished = true;
      await this.#answer(entry, body, inState);
    } finally {
      this.#slots.release();
    }
  }

  /** The response for an action that failed: a stream's error follows its items (its end says how many went out). */
  #failure(entry: InFlightAction, error: unknown): ResponseBody {
    return entry.pump === undefined
      ? { type: MessageType.ErrorResponse, error: toFailure(error) }
      : { type: MessageType.StreamEnd, run: entry.pump.runId, count: entry.pump.count, error: toFailure(error) };
  }

  /**
   * Effectively-once: look the request's result record up before running it. A recorded response
   * answers this delivery (and any duplicates) without running the action; a store that cannot be
   * read hands the request back (whether it ran cannot be told).
   * @returns true when the action is to run.
   */
  async #notYetAnswered(entry: InFlightAction): Promise<boolean> {
    const { request } = entry;
    let recorded: ResponseBody | undefined;
    try {
      recorded = await this.#results!.lookup(this.#options.agentId.uid, request, this.#client!);
    } catch (error) {
      if (entry.answered) return false;
      this.#options.logger.warn({ err: error, tag: request.tag }, "could not read the result record; the request will be delivered again");
      entry.answered = true;
      entry.delivery.nak(RESPONSE_RETRY_DELAY_MS);
      for (const duplicate of entry.duplicates ?? []) duplicate.nak(RESPONSE_RETRY_DELAY_MS);
      this.#inFlight.delete(request.tag);
      return false;
    }
    // Cancelled (and answered) while the record was read.
    if (entry.answered) return false;
    if (recorded === undefined) return true;
    this.#options.logger.debug({ tag: request.tag, action: request.action }, "redelivered request answered from its result record");
    entry.answered = true;
    const acked = await this.#responder.answer(request, recorded, entry.delivery, entry.duplicates);
    this.#inFlight.delete(request.tag);
    if (acked) this.#answered.add(request.tag);
    return false;
  }

  /**
   * Another run of the agent owns its durable state now: leave the request unanswered and
   * unacknowledged (the new owner runs it) and forget it here.
   */
  #fenced(entry: InFlightAction): void {
    this.#inFlight.delete(entry.request.tag);
    entry.answered = true;
    this.#options.logger.warn({ action: entry.request.action, tag: entry.request.tag }, "request left to the agent's new owner: its state was taken over");
  }

  /** The answer to a request applied to the state whose response was not recorded. */
  #unrecordedResponse(request: ActionRequest): ResponseBody {
    const error = new ActionInvalidStateError(
      `Action '${request.action}' (tag ${request.tag}) was applied to the agent's state before its run stopped; its result was not recorded`,
      { tag: request.tag },
    );
    return { type: MessageType.ErrorResponse, error: toFailure(error) };
  }

  /**
   * Call the action's method on the agent (the end of the `action` chain), inside the action's
   * scope (`currentAction()`); the scope is also its `ActionContext` (`this.actionContext`, and
   * the method's last parameter with `context: true`).
   * @throws {UnknownActionError} if the agent has no such action.
   * @throws {ActionArgumentsError} for too many arguments before a context parameter.
   */
  #invoke(request: ActionRequest, args: readonly unknown[], signal: SignalSource): Promise<unknown> {
    const agentId = this.#options.agentId;
    const spec = this.#options.spec.actions.get(request.action);
    if (spec === undefined) {
      throw new UnknownActionError(`Agent ${agentId} has no action '${request.action}'`, { action: request.action, agentId: agentId.uid });
    }
    const window = request.stream;
    if (spec.streaming !== (window !== undefined)) {
      throw new ActionKindError(
        spec.streaming
          ? `Action '${request.action}' of ${agentId} is a streaming action: take its items with handle.stream('${request.action}', ...)`
          : `Action '${request.action}' of ${agentId} is not a streaming action: call it with handle.action('${request.action}', ...)`,
        { action: request.action, agentId: agentId.uid, streaming: spec.streaming },
      );
    }
    const agent = this.#agent!;
    const method = (agent as unknown as Record<string, (...args: unknown[]) => unknown>)[request.action]!;
    if (window !== undefined) return this.#stream(request, window, method, spec.context ? spec.contextIndex : -1, args, signal.signal);
    const progress = request.progress === true ? this.#progressReporter(request) : undefined;
    const scope = new EngineActionContext(agentId.uid, request, signal, this.#client!, progress);
    const run = runInActionScope(scope, method, agent, spec.context ? argsWithContext(args, scope, spec.contextIndex, agentId.uid) : args) as Promise<unknown>;
    if (progress === undefined) return run;
    // The last progress report goes out before the result.
    return run.finally(() => progress.close());
  }

  /**
   * Run a streaming action: its generator is made and pulled inside the action's scope, under the
   * caller's credit. Resolves with the generator's return value once every item went out.
   */
  #stream(
    request: ActionRequest,
    window: number,
    method: (...args: unknown[]) => unknown,
    contextIndex: number,
    args: readonly unknown[],
    signal: AbortSignal,
  ): Promise<unknown> {
    const entry = this.#inFlight.get(request.tag)!;
    const agentId = this.#options.agentId.uid;
    const pump = new StreamPump(window, (body) => this.#responder.sendFrame(request, body), this.#options.logger, () => this.#callerGone(request));
    entry.pump = pump;
    const scope = new EngineActionContext(agentId, request, { signal }, this.#client!);
    const agent = this.#agent!;
    const run = async (): Promise<unknown> => {
      const generator = Reflect.apply(method, agent, contextIndex >= 0 ? argsWithContext(args, scope, contextIndex, agentId) : args);
      return (await pump.run(generator as AsyncGenerator<unknown, unknown, undefined>, signal)).result;
    };
    return runInActionScope(scope, run, undefined, []);
  }

  /**
   * Why a stalled stream's caller cannot take it any more (its mailbox is no longer active), or
   * undefined while it may. A caller without a mailbox (a `replyTo` only) cannot be checked.
   */
  async #callerGone(request: ActionRequest): Promise<Error | undefined> {
    const { src, srcRole, srcSite } = request;
    if (src === undefined) return undefined;
    const caller = srcRole === EntityRole.Agent ? new AgentId(src, undefined, srcSite) : new UserId(src, undefined, srcSite);
    const status = await this.#client!.status(caller);
    if (status === MailboxStatus.Active) return undefined;
    return new ActionCancelledError(`Stream '${request.action}' stopped: its caller's mailbox ${src} is ${status}`, {
      agentId: this.#options.agentId.uid,
      tag: request.tag,
    });
  }

  /** Progress reports of `request`, sent as frames through the `outboundResponse` interceptors. */
  #progressReporter(request: ActionRequest): ProgressReporter {
    return new ProgressReporter((body) => this.#responder.sendFrame(request, body), this.#options.logger);
  }

  /** A credit for a stream: more items may go (ignored for a stream that is gone, or from another caller). */
  #grant(credit: StreamCredit): void {
    const entry = this.#inFlight.get(credit.target);
    if (entry === undefined || entry.request.src !== credit.src) return;
    // Before the generator runs no item went out, so no credit beyond the request's can exist.
    entry.pump?.grant(credit.credit);
  }

  /**
   * Respond once, then acknowledge. `inState`: the request is recorded in the agent's state record
   * already, which stands for its result record.
   */
  #answer(entry: InFlightAction, body: ResponseBody, inState = false): Promise<unknown> {
    if (entry.answered) return SETTLED;
    entry.answered = true;
    return (entry.answering = this.#respond(entry, body, inState));
  }

  #respond(entry: InFlightAction, body: ResponseBody, inState: boolean): Promise<boolean> {
    // Not async, and no `.then()` (the bookkeeping runs in `answer`'s `settled`): `answer` never
    // throws nor rejects.
    const results = this.#results;
    const record = entry.once && !inState ? () => results!.record(this.#options.agentId.uid, entry.request, body) : undefined;
    return this.#responder.answer(entry.request, body, entry.delivery, entry.duplicates, record, (acked) => {
      this.#inFlight.delete(entry.request.tag);
      if (acked) this.#answered.add(entry.request.tag);
    });
  }

  /** Abort the action's signal and answer its caller with `ActionCancelledError`. */
  async #cancel(entry: InFlightAction, reason: string): Promise<void> {
    if (entry.answered) return;
    const error = new ActionCancelledError(reason, { agentId: this.#options.agentId.uid, tag: entry.request.tag });
    entry.abort.abort(error);
    // A running stream ends itself: its end, carrying this error, follows the items on their way.
    if (entry.started && entry.request.stream !== undefined) return;
    await this.#answer(entry, { type: MessageType.ErrorResponse, error: toFailure(error) });
  }

  async #handleControl(request: RequestMessage, delivery: RequestDelivery): Promise<void> {
    // Before startup completes these wait. If startup fails, a ping is answered with
    // PingCancelledError (Academy cancels its waiting ping); a shutdown stays in the mailbox.
    if (!this.#ready && !(await this.#options.ready)) {
      if (request.type === MessageType.PingRequest) await this.#reject(request, delivery, startupFailed(this.#options.agentId));
      return;
    }
    if (!(await this.#responder.answer(request, { type: MessageType.SuccessResponse }, delivery))) return;
    this.#answered.add(request.tag);
    if (request.type === MessageType.ShutdownRequest) this.#options.onShutdownRequest(request.terminate);
  }

  /** Answer a request with an error without running it (an `inboundRequest` interceptor threw it, say). */
  async #reject(request: RequestMessage, delivery: RequestDelivery, error: unknown): Promise<void> {
    const body: ResponseBody = { type: MessageType.ErrorResponse, error: toFailure(error) };
    if (await this.#responder.answer(request, body, delivery)) this.#answered.add(request.tag);
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
    if (await this.#responder.answer(request, body, delivery)) this.#answered.add(request.tag);
  }
}

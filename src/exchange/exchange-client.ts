/**
 * Exchange clients: a user's or an agent's view of the exchange. They send requests through
 * handles and match responses to them, answer the requests that reach them, and expose the
 * registry (register, discover, status, terminate).
 */
import { MailboxStatus, assertMailboxActive, assertSendable, isSendable, terminatedError } from "./mailbox-status.ts";
import type { Agent } from "../agent/agent.ts";
import { agentTypeInfo, typeRefName } from "../agent/agent-type.ts";
import type { AgentClass, AgentTypeInfo, AgentTypeRef } from "../agent/agent-type.ts";
import { ActionCancelledError, AgentDefinitionError, ClientClosedError, InvalidClientError, InvalidConfigError, SendOnlyClientError } from "../errors.ts";
import { isAgentBase } from "../agent/agent.ts";
import { AgentId, newTag } from "../identifiers.ts";
import type { EntityId } from "../identifiers.ts";
import { inAnyScope, runOutsideActionScope } from "../interceptors/action-scope.ts";
import type { InboundResponseInput, OutboundRequestInput } from "../interceptors/caller-interceptor.ts";
import { composeInterceptors } from "../interceptors/interceptors.ts";
import type { HandleBinder } from "../protocol/codec.ts";
import { toFailure } from "../protocol/failure.ts";
import { isEmptyHeaders } from "../protocol/headers.ts";
import type { MessageHeaders } from "../protocol/headers.ts";
import { MessageType, isRequest, requestMessage, responseMessage } from "../protocol/messages.ts";
import type { ActionRequest, RequestBody, RequestMessage, ResponseBody, ResponseMessage } from "../protocol/messages.ts";
import { silentLogger } from "../util/logger.ts";
import type { Logger } from "../util/logger.ts";
import { MAX_TIMER_MS } from "../util/timers.ts";
import { AgentHandle } from "./handle.ts";
import type { CallOptions, Handle, HandleClient, StreamOptions } from "./handle.ts";
import type { ExchangeFactory } from "./exchange-factory.ts";
import { PendingCall, giveUpError } from "./pending-call.ts";
import type { CallOwner } from "./pending-call.ts";
import { PendingRequests } from "./pending-requests.ts";
import type { ResponseSink } from "./pending-requests.ts";
import { PendingStream } from "./pending-stream.ts";
import type { StreamOwner } from "./pending-stream.ts";
import type { AgentRegistration, Delivery, ExchangeTransport } from "./transport.ts";

/** Options of `discover`. */
export interface DiscoverOptions {
  /**
   * Also return agents whose type derives from the requested one.
   * @defaultValue true
   */
  allowSubclasses?: boolean;
  /**
   * Which sites to look on (docs/EDGE.md): site names, or `"all"` for this exchange's own site
   * and every site it reaches. Other sites are read from local mirrors of their registries:
   * eventually consistent, also while their uplink is down.
   * @defaultValue this exchange's own site only
   */
  sites?: readonly string[] | "all";
}

/** Options of `registerAgent`. */
export interface RegisterOptions {
  /** Display name of the agent. */
  name?: string;
}

/** An agent to register with `registerAgents`: its class and, optionally, a display name. */
export interface RegisterAgentsEntry<A extends Agent = Agent> {
  readonly agent: AgentClass<A>;
  readonly name?: string | undefined;
}

/** The registrations `registerAgents` returns for `T`, each typed by its class. */
export type RegisteredAgents<T extends ReadonlyArray<AgentClass | RegisterAgentsEntry>> = {
  -readonly [K in keyof T]: AgentRegistration<
    T[K] extends AgentClass<infer A> ? A : T[K] extends { readonly agent: AgentClass<infer A> } ? A : Agent
  >;
};

/** A delivery of a request. */
export interface RequestDelivery extends Delivery {
  readonly message: RequestMessage;
}

/** Receives the requests that reach an agent's mailbox. */
export type RequestHandler = (delivery: RequestDelivery) => void;

/** Options shared by both client kinds. */
export interface ExchangeClientOptions {
  /** @defaultValue silent */
  logger?: Logger;
  /**
   * When a mailbox this client waits on is terminated, requests still unanswered this many ms
   * later fail with `MailboxTerminatedError` (the terminator normally answers them first).
   * @defaultValue 1000
   */
  terminationGraceMs?: number;
}

function ignore(): void {}

const SETTLED: Promise<void> = Promise.resolve();

/** Items a stream's agent may run ahead of its consumer unless the caller says (`StreamOptions.window`). */
export const DEFAULT_STREAM_WINDOW = 1024;

/** A stream's window, checked. @throws {InvalidConfigError} unless a positive safe integer. */
function streamWindow(window: number | undefined): number {
  if (window === undefined) return DEFAULT_STREAM_WINDOW;
  if (!Number.isSafeInteger(window) || window < 1) {
    throw new InvalidConfigError(`A stream's window must be a positive integer (got ${String(window)})`);
  }
  return window;
}

/**
 * A duration option of a call or stream, checked: `Infinity` is no limit (undefined), and a
 * finite one beyond what a timer can wait (24.8 days) is that much.
 * @throws {InvalidConfigError} unless a non-negative number.
 */
function durationOption(what: string, ms: number | undefined): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== "number" || Number.isNaN(ms) || ms < 0) throw new InvalidConfigError(`${what} must be a non-negative number of ms (got ${String(ms)})`);
  return Number.isFinite(ms) ? Math.min(ms, MAX_TIMER_MS) : undefined;
}

/** A duration option of a stream, checked. @throws {InvalidConfigError} unless a non-negative number. */
function streamDuration(name: string, ms: number | undefined): number | undefined {
  return durationOption(`A stream's ${name}`, ms);
}

/** Base of user and agent exchange clients. Create clients through an `ExchangeFactory`. */
export abstract class ExchangeClient implements HandleBinder, HandleClient {
  /** The id of this client's own mailbox. */
  readonly clientId: EntityId;
  protected readonly transport: ExchangeTransport;
  protected readonly logger: Logger;
  readonly #factory: ExchangeFactory;
  /** Set once the client reads its mailbox; a user client made with `startListener: false` never does. */
  #listening = false;
  readonly #pending = new PendingRequests();
  /**
   * Handles by agent uid, held weakly: one handle per agent while anything holds it, and no growth
   * from the ids that decoded messages carry (a hostile sender could otherwise fill it).
   */
  #handles: Map<string, WeakRef<AgentHandle>> | undefined;
  /** Made with the first handle (as the maps and owners below are on first use: idle agents hold none; docs/BENCHMARKS.md section 5). */
  #forgetHandle: FinalizationRegistry<string> | undefined;
  readonly #unsubscribeTerminated: () => void;
  readonly #terminationGraceMs: number;
  #callOwner: CallOwner | undefined;
  #streamOwner: StreamOwner | undefined;
  /** Streams whose request is going through the `outboundRequest` interceptors, by tag. */
  #opening: Map<string, { stream: PendingStream; options: StreamOptions }> | undefined;
  /** `onProgress` observers of calls going through the `outboundRequest` interceptors, by tag. */
  #observers: Map<string, (progress: unknown) => void> | undefined;
  /** The composed `outboundRequest` hooks, if any interceptor has one. */
  readonly #outboundRequest: ((input: OutboundRequestInput) => Promise<ResponseMessage>) | undefined;
  /** The composed `inboundResponse` hooks, if any interceptor has one. */
  readonly #inboundResponse: ((input: InboundResponseInput) => void) | undefined;
  /** Settles when the previous request has been handed to the transport (keeps sends in call order). */
  #sendOrder: Promise<unknown> = Promise.resolve();
  /**
   * Requests still waiting in `#sendOrder` (a status lookup under way, a post being stored). While
   * there are none, a request whose destination's status is known in memory goes out at once.
   */
  #ordered = 0;
  /** Tags of requests going out through `post` (sent without a reply address; no response awaited). */
  #posts: Set<string> | undefined;
  #closing: Promise<void> | undefined;

  protected constructor(transport: ExchangeTransport, options: ExchangeClientOptions, factory: ExchangeFactory) {
    const interceptors = factory.interceptors.caller;
    this.clientId = transport.mailboxId;
    this.transport = transport;
    this.#factory = factory;
    this.logger = (options.logger ?? silentLogger).child({ clientId: transport.mailboxId.uid });
    this.#terminationGraceMs = options.terminationGraceMs ?? 1000;
    this.#unsubscribeTerminated = transport.onTerminated((uid) => this.#onMailboxTerminated(uid));
    this.#outboundRequest = composeInterceptors(interceptors, "outboundRequest", (input) => {
      const headers = isEmptyHeaders(input.headers) ? undefined : input.headers;
      if (input.body.type !== MessageType.ActionRequest && this.#posts?.has(input.tag) === true) return this.#post(input.agentId, input.body, input.tag, headers);
      if (input.body.type === MessageType.ActionRequest && input.body.stream !== undefined) {
        const opening = this.#opening?.get(input.tag);
        if (opening !== undefined) {
          this.#opening!.delete(input.tag);
          return this.#startStream(opening.stream, input.agentId, input.body, input.tag, headers, input.timeoutMs, input.signal);
        }
      }
      return this.#call(input.agentId, input.body, input.tag, headers, input.timeoutMs, input.signal);
    });
    this.#inboundResponse = composeInterceptors(interceptors, "inboundResponse", (input) => {
      const sink = this.#pending.get(input.request.tag);
      if (sink !== undefined) this.#pending.receive(sink, input.response);
    });
  }

  /**
   * The factory that made this client (Academy's `ExchangeClient.factory()`): make more clients
   * for the same exchange with it.
   */
  factory(): ExchangeFactory {
    return this.#factory;
  }

  /** Whether the client reads its mailbox (false for a user client made with `startListener: false`). */
  get listening(): boolean {
    return this.#listening;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Largest encoded message the exchange accepts, in bytes. */
  get maxPayload(): number {
    return this.transport.maxPayload;
  }

  /**
   * Ids of active agents of a type (a class or a type name). With `allowSubclasses` (default),
   * agents of derived types are included, so `discover(Agent)` returns every active agent.
   */
  async discover(type: AgentTypeRef, options: DiscoverOptions = {}): Promise<AgentId[]> {
    this.#assertOpen();
    const typeName = typeRefName(type);
    const allowSubclasses = options.allowSubclasses ?? true;
    if (options.sites === undefined) return this.transport.discover(typeName, allowSubclasses);
    const own = this.transport.site;
    const sites = options.sites === "all" ? [own, ...(this.transport.remoteSites ?? [])] : options.sites;
    const found = await Promise.all(sites.map((site) => this.transport.discover(typeName, allowSubclasses, site === own ? undefined : site)));
    return found.flat();
  }

  /**
   * Status of a mailbox: `missing`, `active` or `terminated`, as the exchange has it now. A
   * mailbox of another site is read from the local mirror of its registry (eventually
   * consistent; docs/EDGE.md).
   */
  async status(id: EntityId): Promise<MailboxStatus> {
    this.#assertOpen();
    return this.transport.status(id.uid, true, id.site);
  }

  /**
   * Terminate a mailbox; requests waiting in it are answered with `MailboxTerminatedError`.
   * Idempotent; a no-op for unknown ids.
   */
  async terminate(id: EntityId): Promise<void> {
    this.#assertOpen();
    await this.transport.terminate(id);
  }

  /**
   * Register a new agent (and its mailbox) of the given class, recording its type and ancestry;
   * or of the given type (name and ancestry), for agents launched by type name where their class
   * is not loaded.
   * @throws {AgentDefinitionError} for `Agent` itself, a class that does not extend it, or a type
   *   whose ancestry does not start with its name and end with `"Agent"`.
   */
  async registerAgent<A extends Agent>(agent: AgentClass<A> | AgentTypeInfo, options: RegisterOptions = {}): Promise<AgentRegistration<A>> {
    this.#assertOpen();
    if (isAgentBase(agent)) throw new AgentDefinitionError("Agent itself cannot be registered; subclass it");
    const type = typeof agent === "function" ? agentTypeInfo(agent) : checkTypeInfo(agent);
    const registration = await this.transport.registerAgent(type, options.name);
    this.logger.debug({ agentId: registration.agentId.uid, agentType: registration.agentType.name }, "registered agent");
    return registration as AgentRegistration<A>;
  }

  /**
   * Register several agents at once (Academy's `register_agents`), all or none: if one cannot be
   * registered, those that were are terminated and the error is raised.
   * @returns the registrations, in the order given.
   * @throws {AgentDefinitionError} for `Agent` itself or a class that does not extend it.
   */
  async registerAgents<const T extends ReadonlyArray<AgentClass | RegisterAgentsEntry>>(agents: T): Promise<RegisteredAgents<T>>;
  async registerAgents(agents: ReadonlyArray<AgentClass | RegisterAgentsEntry>): Promise<AgentRegistration[]> {
    this.#assertOpen();
    const entries = agents.map((entry) => (typeof entry === "function" ? { agent: entry, name: undefined } : entry));
    const results = await Promise.allSettled(entries.map((entry) => this.registerAgent(entry.agent, entry.name === undefined ? {} : { name: entry.name })));
    const failure = results.find((result) => result.status === "rejected");
    if (failure === undefined) return results.map((result) => (result as PromiseFulfilledResult<AgentRegistration>).value);
    await Promise.all(
      results.map((result) => (result.status === "fulfilled" ? this.transport.terminate(result.value.agentId).catch(ignore) : undefined)),
    );
    throw failure.reason;
  }

  /**
   * A handle to an agent, bound to this client (requests go out from this client's mailbox).
   * @throws {TypeError} if `agentId` is not an `AgentId`.
   */
  getHandle<A extends Agent>(agentId: AgentId<A>): Handle<A> {
    if (!(agentId instanceof AgentId)) {
      throw new TypeError(`A handle needs an AgentId, got ${Object.prototype.toString.call(agentId)}`);
    }
    let handle = this.#handles?.get(agentId.uid)?.deref();
    if (handle === undefined) {
      handle = new AgentHandle(agentId, this) as unknown as AgentHandle;
      const handles = (this.#handles ??= new Map());
      handles.set(agentId.uid, new WeakRef(handle));
      this.#forgetHandle ??= new FinalizationRegistry<string>((uid) => {
        if (handles.get(uid)?.deref() === undefined) handles.delete(uid);
      });
      this.#forgetHandle.register(handle, agentId.uid);
    }
    return handle as unknown as Handle<A>;
  }

  /** What pending calls need of this client: made on the first call. */
  #callOwnerOf(): CallOwner {
    return (this.#callOwner ??= {
      release: (call) => this.#pending.remove(call),
      cancel: (call) => this.#sendCancel(call.agentId, call.request.tag),
    });
  }

  /** What pending streams need of this client: made on the first stream. */
  #streamOwnerOf(): StreamOwner {
    return (this.#streamOwner ??= {
      open: (stream) => this.#openStream(stream),
      release: (stream) => this.#pending.remove(stream),
      cancel: (stream) => this.#sendCancel(stream.agentId, stream.request.tag),
      credit: (stream, credit) => this.#sendCredit(stream, credit),
    });
  }

  /** @internal Handles this client holds now (for tests of the cache's bound). */
  get cachedHandles(): number {
    return this.#handles?.size ?? 0;
  }

  /**
   * @internal Send a request and wait for its response (used by handles), through the
   * `outboundRequest` interceptors.
   */
  request(dest: AgentId, body: RequestBody, options: CallOptions): Promise<ResponseMessage> {
    // Not async: the chain's promise is returned as it is (an async wrapper would cost ticks per call).
    try {
      this.#assertOpen();
      if (!this.#listening) {
        throw new SendOnlyClientError(`Client ${this.clientId} does not read its mailbox (startListener: false): it cannot wait for answers`, {
          entityId: this.clientId.uid,
        });
      }
      const outbound = this.#outboundRequest;
      const timeoutMs = options.timeoutMs === undefined ? undefined : durationOption("A call's timeoutMs", options.timeoutMs);
      const tag = newTag();
      const onProgress = options.onProgress;
      if (onProgress !== undefined) (this.#observers ??= new Map()).set(tag, onProgress);
      const response =
        outbound === undefined
          ? this.#call(dest, body, tag, undefined, timeoutMs, options.signal)
          : outbound({ agentId: dest, body, tag, headers: {}, timeoutMs, signal: options.signal });
      return onProgress === undefined ? response : response.finally(() => this.#observers!.delete(tag));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * @internal A stream of a streaming action (used by handles): an async iterator whose request
   * goes out, through the `outboundRequest` interceptors, when its first item is asked for. Its
   * frames come back through this client's mailbox (also with `replies: "core"`: durable, so a
   * dropped connection loses none; docs/PROTOCOL.md section 15).
   * @throws {InvalidConfigError} for a bad `window`, `itemTimeoutMs` or `timeoutMs`.
   */
  stream(dest: AgentId, action: string, args: readonly unknown[], options: StreamOptions): PendingStream {
    const window = streamWindow(options.window);
    const itemTimeoutMs = streamDuration("itemTimeoutMs", options.itemTimeoutMs);
    const timeoutMs = streamDuration("timeoutMs", options.timeoutMs);
    const tag = newTag();
    const request: ActionRequest = { type: MessageType.ActionRequest, tag, dest: dest.uid, src: this.clientId.uid, action, args, stream: window };
    return new PendingStream(this.#streamOwnerOf(), request, dest, window, itemTimeoutMs, { ...options, timeoutMs });
  }

  /** Send a stream's request through the `outboundRequest` interceptors; their failure fails the stream. */
  #openStream(stream: PendingStream): void {
    try {
      this.#assertOpen();
      if (!this.#listening) {
        throw new SendOnlyClientError(`Client ${this.clientId} does not read its mailbox (startListener: false): it cannot take a stream`, {
          entityId: this.clientId.uid,
        });
      }
    } catch (error) {
      stream.fail(error);
      return;
    }
    const { tag, action, args, stream: window } = stream.request;
    const body: RequestBody = { type: MessageType.ActionRequest, action, args, stream: window };
    const outbound = this.#outboundRequest;
    const options = stream.options;
    let finished: Promise<ResponseMessage>;
    if (outbound === undefined) {
      finished = this.#startStream(stream, stream.agentId, body, tag, undefined, options.timeoutMs, options.signal);
    } else {
      (this.#opening ??= new Map()).set(tag, { stream, options });
      try {
        finished = outbound({ agentId: stream.agentId, body, tag, headers: {}, timeoutMs: options.timeoutMs, signal: options.signal });
      } catch (error) {
        finished = Promise.reject(error);
      }
    }
    finished.then(
      () => this.#opening?.delete(tag),
      (error: unknown) => {
        this.#opening?.delete(tag);
        stream.fail(error);
      },
    );
  }

  /**
   * Send a stream's request and register it: the end of the `outboundRequest` chain for streams.
   * Resolves with the stream's end (or rejects with its error) when the stream is over. The
   * request has no `replyTo`: frames come through this client's mailbox.
   */
  async #startStream(
    stream: PendingStream,
    dest: AgentId,
    body: RequestBody,
    tag: string,
    headers: MessageHeaders | undefined,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<ResponseMessage> {
    const message = requestMessage(body, tag, dest.uid, this.clientId.uid, undefined, headers, dest.site, this.clientId.role) as ActionRequest;
    if (signal?.aborted) {
      throw new ActionCancelledError(`Stream '${message.action}' on ${dest} was aborted by the caller`, { agentId: dest.uid, tag, cause: signal.reason });
    }
    const deliverable = this.#deliverable(dest);
    if (deliverable !== undefined) {
      try {
        await deliverable;
      } finally {
        this.#ordered--;
      }
    }
    if (stream.closed) return stream.finished;
    stream.request = message;
    this.#pending.add(stream);
    stream.start(timeoutMs, signal);
    void this.#send(stream);
    return stream.finished;
  }

  /** Grant a stream more items (a fire-and-forget request to its agent; a lost one is made up by the next). */
  #sendCredit(stream: PendingStream, credit: number): void {
    if (this.#closing !== undefined) return;
    const dest = stream.agentId;
    const target = stream.request.tag;
    const message: RequestMessage = {
      type: MessageType.StreamCredit,
      // One id per credit value: a retried publish is stored once.
      tag: `${target}.c${credit}`,
      dest: dest.uid,
      src: this.clientId.uid,
      srcRole: this.clientId.role,
      target,
      credit,
      ...(dest.site !== undefined && { destSite: dest.site }),
    };
    void this.transport.send(message).catch((error: unknown) => {
      this.logger.debug({ err: error, dest: dest.uid, target, credit }, "stream credit not sent");
    });
  }

  /**
   * @internal Send a request without a reply address and without waiting for an answer (used by
   * `Handle.shutdown`), through the `outboundRequest` interceptors. Resolves once the exchange
   * has taken the request; the agent handles it whenever it gets to it and answers nobody.
   * @throws {BadEntityIdError | MailboxTerminatedError} if the destination is missing or terminated.
   */
  post(dest: AgentId, body: RequestBody): Promise<void> {
    try {
      this.#assertOpen();
      const tag = newTag();
      const outbound = this.#outboundRequest;
      if (outbound === undefined) return this.#post(dest, body, tag, undefined).then(ignore);
      (this.#posts ??= new Set()).add(tag);
      return outbound({ agentId: dest, body, tag, headers: {}, timeoutMs: undefined, signal: undefined })
        .then(ignore)
        .finally(() => this.#posts!.delete(tag));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Send a request with no reply address (fire-and-forget: the agent answers nobody), in call
   * order with this client's other requests. Resolves, once the exchange has it, with a success
   * response made here (what `outboundRequest` hooks see as the call's result).
   */
  async #post(dest: AgentId, body: RequestBody, tag: string, headers: MessageHeaders | undefined): Promise<ResponseMessage> {
    const message = requestMessage(body, tag, dest.uid, undefined, undefined, headers, dest.site);
    // Requests after a post wait until it is stored.
    this.#ordered++;
    const deliverable = this.#sendOrder.then(() => this.#assertDeliverable(dest));
    const sent = deliverable.then(() => this.transport.send(message)).finally(() => this.#ordered--);
    this.#sendOrder = sent.catch(ignore);
    await sent;
    return { type: MessageType.SuccessResponse, tag, dest: this.clientId.uid, src: dest.uid };
  }

  /**
   * Send a request and wait for its response: the end of the `outboundRequest` chain. Not async:
   * when the destination's status is known in memory the request goes out in this step.
   */
  #call(
    dest: AgentId,
    body: RequestBody,
    tag: string,
    headers: MessageHeaders | undefined,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<ResponseMessage> {
    try {
      const message = requestMessage(body, tag, dest.uid, this.clientId.uid, this.transport.replySubject, headers, dest.site, this.clientId.role);
      if (signal?.aborted) throw giveUpError("abort", message, signal.reason);
      // Requests from one client reach the exchange in call order (FIFO per mailbox), even while an
      // earlier request's status lookup is still under way.
      const deliverable = this.#deliverable(dest);
      if (deliverable === undefined) return this.#sendCall(message, dest, tag, timeoutMs, signal);
      return this.#callWhenDeliverable(deliverable, message, dest, tag, timeoutMs, signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async #callWhenDeliverable(
    deliverable: Promise<void>,
    message: RequestMessage,
    dest: AgentId,
    tag: string,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<ResponseMessage> {
    try {
      await deliverable;
    } finally {
      this.#ordered--;
    }
    return this.#sendCall(message, dest, tag, timeoutMs, signal);
  }

  /**
   * Wait until a request to `dest` may go out, in call order: undefined when it may go at once
   * (nothing is waiting before it and the destination's status is known in memory: checked now);
   * else a promise of the check, queued behind earlier ones, and the request counts in
   * `#ordered` until the caller has sent it (the caller decrements).
   * @throws {MailboxTerminatedError | BadEntityIdError} when the known status forbids sending.
   */
  #deliverable(dest: AgentId): Promise<void> | undefined {
    if (this.#ordered === 0 && dest.site === undefined) {
      const known = this.transport.knownStatus?.(dest.uid);
      if (known !== undefined) {
        assertMailboxActive(known, dest);
        return undefined;
      }
    }
    this.#ordered++;
    const deliverable = this.#sendOrder.then(() => this.#assertDeliverable(dest));
    this.#sendOrder = deliverable.catch(ignore);
    return deliverable;
  }

  /** Register a pending call and hand its request to the transport. */
  #sendCall(message: RequestMessage, dest: AgentId, tag: string, timeoutMs: number | undefined, signal: AbortSignal | undefined): Promise<ResponseMessage> {
    let onProgress: ((progress: unknown) => void) | undefined;
    const observers = this.#observers;
    if (observers !== undefined && observers.size > 0) {
      onProgress = observers.get(tag);
      observers.delete(tag);
    }
    const call = new PendingCall(this.#callOwnerOf(), message, dest, timeoutMs, signal, onProgress);
    this.#pending.add(call);
    call.start();
    void this.#send(call);
    return call.promise;
  }

  /** Hand a pending call's request to the transport; a failure to send fails the call. */
  #send(call: ResponseSink): Promise<void> {
    let sent: Promise<void>;
    try {
      sent = this.transport.send(call.request);
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.catch((error: unknown) => this.#pending.fail(call, error));
  }

  /**
   * @internal Answer a request (no-op for requests without a reply address; dropped when the
   * requester's mailbox is gone). The response carries `headers` only: never the request's.
   */
  respond(request: RequestMessage, body: ResponseBody, headers?: MessageHeaders): Promise<void> {
    if (request.src === undefined && request.replyTo === undefined) return SETTLED;
    try {
      if (request.replyTo === undefined) {
        // The requester's status from memory when known (no asynchronous step), else looked up.
        const known = request.srcSite === undefined ? this.transport.knownStatus?.(request.src!) : undefined;
        if (known === undefined) return this.#respondWhenSendable(request, body, headers);
        if (!this.#sendableTo(request, known)) return SETTLED;
      }
      return this.transport.send(responseMessage(request, body, this.clientId.uid, headers));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async #respondWhenSendable(request: RequestMessage, body: ResponseBody, headers: MessageHeaders | undefined): Promise<void> {
    const status = await this.transport.status(request.src!, false, request.srcSite);
    if (!this.#sendableTo(request, status)) return;
    await this.transport.send(responseMessage(request, body, this.clientId.uid, headers));
  }

  /** Whether a response may go to the requester's mailbox in `status` (dropped, and logged, if not). */
  #sendableTo(request: RequestMessage, status: MailboxStatus): boolean {
    if (isSendable(status, this.#isRemote(request.srcSite))) return true;
    this.logger.debug({ tag: request.tag, dest: request.src, status }, "dropping response to inactive mailbox");
    return false;
  }

  /** Requests that reach this client's mailbox. */
  protected abstract handleRequest(delivery: RequestDelivery): void;

  /** Runs first in `close()`. */
  protected async beforeClose(): Promise<void> {}

  /**
   * The mailbox handler: requests go to `handleRequest`; each response goes, through the
   * `inboundResponse` interceptors, to the pending request it answers.
   */
  protected deliver(delivery: Delivery): void {
    // Whatever opened the transport (an action, say) is not the scope its deliveries run in.
    if (inAnyScope()) {
      runOutsideActionScope((d) => this.deliver(d), delivery);
      return;
    }
    const message = delivery.message;
    if (isRequest(message)) {
      this.handleRequest(delivery as RequestDelivery);
      return;
    }
    delivery.ack();
    const sink = this.#pending.get(message.tag);
    if (sink === undefined) {
      this.logger.debug({ tag: message.tag, type: message.type }, "response to no pending request (late or duplicate)");
      return;
    }
    const inbound = this.#inboundResponse;
    if (inbound === undefined) {
      this.#pending.receive(sink, message);
      return;
    }
    try {
      inbound({ request: sink.request, response: message });
    } catch (error) {
      this.#pending.fail(sink, error);
    }
  }

  /** Start receiving this client's mailbox. */
  protected async startListening(onTerminated: () => void = () => {}): Promise<void> {
    await this.transport.listen(
      {
        deliver: (delivery) => this.deliver(delivery),
        terminated: () => onTerminated(),
      },
      this,
    );
    this.#listening = true;
  }

  /**
   * Close the client: cancel its open streams, stop listening, fail pending requests with
   * `ClientClosedError`, release the transport. Idempotent; every step runs even if an earlier one fails.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const steps: Array<[string, () => Promise<void> | void]> = [
      ["cancel open streams", () => this.#cancelStreams()],
      ["before close", () => this.beforeClose()],
      ["stop listening", () => this.transport.stopListening()],
      [
        "fail pending requests",
        () => this.#pending.failAll(new ClientClosedError(`Client ${this.clientId} was closed`)),
      ],
      ["unsubscribe", () => this.#unsubscribeTerminated()],
      ["close transport", () => this.transport.close()],
    ];
    for (const [step, run] of steps) {
      try {
        await run();
      } catch (error) {
        this.logger.warn({ err: error, step }, "exchange client close step failed");
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new ClientClosedError(`Client ${this.clientId} is closed`);
  }

  async #assertDeliverable(dest: AgentId): Promise<void> {
    if (dest.site === undefined) assertMailboxActive(await this.transport.status(dest.uid), dest);
    else assertSendable(await this.transport.status(dest.uid, false, dest.site), dest, this.#isRemote(dest.site));
  }

  /** Whether `site` is another site than this client's exchange's own. */
  #isRemote(site: string | undefined): boolean {
    return site !== undefined && site !== this.transport.site;
  }

  /** Closing: ask the agents of this client's open streams to stop them (their generators would wait on credit). */
  async #cancelStreams(): Promise<void> {
    const streams = this.#pending.all().filter((sink) => sink instanceof PendingStream);
    await Promise.allSettled(
      streams.map((stream) =>
        this.transport.send({
          type: MessageType.CancelRequest,
          target: stream.request.tag,
          tag: newTag(),
          dest: stream.agentId.uid,
          src: this.clientId.uid,
          srcRole: this.clientId.role,
          ...(stream.agentId.site !== undefined && { destSite: stream.agentId.site }),
        }),
      ),
    );
  }

  #sendCancel(dest: AgentId, target: string): void {
    if (this.#closing !== undefined) return;
    const cancel: RequestMessage = {
      type: MessageType.CancelRequest,
      target,
      tag: newTag(),
      dest: dest.uid,
      src: this.clientId.uid,
      srcRole: this.clientId.role,
      ...(dest.site !== undefined && { destSite: dest.site }),
    };
    const send = async (): Promise<void> => {
      // A mailbox that is gone needs no cancel (and must not collect one nobody reads).
      if (isSendable(await this.transport.status(dest.uid, false, dest.site), this.#isRemote(dest.site))) await this.transport.send(cancel);
    };
    void send().catch((error: unknown) => {
      this.logger.debug({ err: error, dest: dest.uid, target }, "cancel request not sent");
    });
  }

  #onMailboxTerminated(uid: string): void {
    if (!this.#pending.waitsOn(uid)) return;
    const timer = setTimeout(() => this.#pending.failWaitingOn(uid, (sink) => terminatedError(sink.agentId)), this.#terminationGraceMs);
    timer.unref();
  }
}

/** A type given by name and ancestry, checked as registration records it. */
function checkTypeInfo(type: AgentTypeInfo): AgentTypeInfo {
  const { name, chain } = type ?? {};
  const valid =
    typeof name === "string" && name !== "" && name !== "Agent" && Array.isArray(chain) && chain.length >= 2 &&
    chain[0] === name && chain.at(-1) === "Agent" && chain.every((t) => typeof t === "string" && t !== "");
  if (!valid) {
    throw new AgentDefinitionError(`An agent type needs a name and its ancestry from that name to "Agent" (got ${JSON.stringify(type)})`);
  }
  return { name, chain: [...chain] };
}

/** Options of user clients. */
export interface UserClientOptions extends ExchangeClientOptions {
  /**
   * Read the client's mailbox (Academy's `start_listener`). A client that does not (a send-only
   * client: no mailbox consumer) can register, discover, check status, terminate and send
   * shutdowns (`handle.shutdown()`), but not make calls that wait for an answer (actions, pings:
   * `SendOnlyClientError`). Its mailbox exists all the same and is terminated when it closes.
   * @defaultValue true
   */
  startListener?: boolean;
}

/**
 * A user's client: sends requests to agents. Closing it terminates its mailbox.
 */
export class UserExchangeClient extends ExchangeClient {
  /** @internal Use `ExchangeFactory.createUserClient`. */
  static async open(transport: ExchangeTransport, options: UserClientOptions, factory: ExchangeFactory): Promise<UserExchangeClient> {
    const client = new UserExchangeClient(transport, options, factory);
    try {
      if (options.startListener ?? true) await client.startListening();
    } catch (error) {
      await transport.close();
      throw error;
    }
    return client;
  }

  protected handleRequest(delivery: RequestDelivery): void {
    const request = delivery.message;
    const error = new InvalidClientError(`${this.clientId} is a user client and serves no requests`);
    this.respond(request, { type: MessageType.ErrorResponse, error: toFailure(error) })
      .catch((err: unknown) => this.logger.warn({ err, tag: request.tag }, "could not answer request to user mailbox"))
      .finally(() => delivery.ack());
  }

  protected override async beforeClose(): Promise<void> {
    await this.transport.terminate(this.clientId);
  }
}

/** Options of agent clients. */
export interface AgentClientOptions extends ExchangeClientOptions {
  /** Called when the agent's mailbox is terminated by someone else. */
  onTerminated?: () => void;
}

/**
 * An agent's client: receives the agent's requests and sends its own. Closing it does not
 * terminate the mailbox, so the agent can be started again later.
 */
export class AgentExchangeClient extends ExchangeClient {
  readonly #handler: RequestHandler;

  private constructor(transport: ExchangeTransport, handler: RequestHandler, options: AgentClientOptions, factory: ExchangeFactory) {
    super(transport, options, factory);
    this.#handler = handler;
  }

  /** @internal Use `ExchangeFactory.createAgentClient`. */
  static async open(
    transport: ExchangeTransport,
    handler: RequestHandler,
    options: AgentClientOptions,
    factory: ExchangeFactory,
  ): Promise<AgentExchangeClient> {
    const client = new AgentExchangeClient(transport, handler, options, factory);
    try {
      await client.startListening(options.onTerminated);
    } catch (error) {
      await transport.close();
      throw error;
    }
    return client;
  }

  /** The agent's id. */
  get agentId(): AgentId {
    return this.clientId as AgentId;
  }

  /** Stop receiving requests (they stay in the mailbox); responses to this agent's own requests stop too. */
  async stopListening(): Promise<void> {
    await this.transport.stopListening();
  }

  protected handleRequest(delivery: RequestDelivery): void {
    this.#handler(delivery);
  }
}

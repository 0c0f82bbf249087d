/**
 * Exchange clients: a user's or an agent's view of the exchange. They send requests through
 * handles and match responses to them, answer the requests that reach them, and expose the
 * registry (register, discover, status, terminate).
 */
import { MailboxStatus, assertMailboxActive, terminatedError } from "./mailbox-status.ts";
import type { Agent } from "../agent/agent.ts";
import { agentTypeInfo, typeRefName } from "../agent/agent-type.ts";
import type { AgentClass, AgentTypeInfo, AgentTypeRef } from "../agent/agent-type.ts";
import {
  AgentDefinitionError,
  ClientClosedError,
  InvalidClientError,
} from "../errors.ts";
import { isAgentBase } from "../agent/agent.ts";
import { AgentId, newTag } from "../identifiers.ts";
import type { EntityId } from "../identifiers.ts";
import type { HandleBinder } from "../protocol/codec.ts";
import { toFailure, fromFailure } from "../protocol/failure.ts";
import type { Failure } from "../protocol/failure.ts";
import { MessageType, isRequest, responseRouting } from "../protocol/messages.ts";
import type { RequestMessage, ResponseMessage } from "../protocol/messages.ts";
import { silentLogger } from "../util/logger.ts";
import type { Logger } from "../util/logger.ts";
import { AgentHandle } from "./handle.ts";
import type { CallOptions, GiveUp, Handle, HandleClient, RequestBody } from "./handle.ts";
import type { AgentRegistration, Delivery, ExchangeTransport } from "./transport.ts";


/** Options of `discover`. */
export interface DiscoverOptions {
  /**
   * Also return agents whose type derives from the requested one.
   * @defaultValue true
   */
  allowSubclasses?: boolean;
}

/** Options of `registerAgent`. */
export interface RegisterOptions {
  /** Display name of the agent. */
  name?: string;
}

/** A delivery of a request. */
export interface RequestDelivery extends Delivery {
  readonly message: RequestMessage;
}

/** Receives the requests that reach an agent's mailbox. */
export type RequestHandler = (delivery: RequestDelivery) => void;

/** A response body: a response message without its routing fields. */
export type ResponseBody =
  | { readonly type: typeof MessageType.ActionResponse; readonly result: unknown }
  | { readonly type: typeof MessageType.SuccessResponse }
  | { readonly type: typeof MessageType.ErrorResponse; readonly error: Failure };

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

interface PendingRequest {
  readonly dest: AgentId;
  resolve(response: ResponseMessage): void;
  reject(error: Error): void;
}


/** Base of user and agent exchange clients. Create clients through an `ExchangeFactory`. */
export abstract class ExchangeClient implements HandleBinder, HandleClient {
  /** The id of this client's own mailbox. */
  readonly clientId: EntityId;
  protected readonly transport: ExchangeTransport;
  protected readonly logger: Logger;
  readonly #pending = new Map<string, PendingRequest>();
  readonly #handles = new Map<string, AgentHandle>();
  readonly #unsubscribeTerminated: () => void;
  readonly #terminationGraceMs: number;
  /** Settles when the previous request has been handed to the transport (keeps sends in call order). */
  #sendOrder: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | undefined;

  protected constructor(transport: ExchangeTransport, options: ExchangeClientOptions = {}) {
    this.clientId = transport.mailboxId;
    this.transport = transport;
    this.logger = (options.logger ?? silentLogger).child({ clientId: transport.mailboxId.uid });
    this.#terminationGraceMs = options.terminationGraceMs ?? 1000;
    this.#unsubscribeTerminated = transport.onTerminated((uid) => this.#onMailboxTerminated(uid));
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
    return this.transport.discover(typeRefName(type), options.allowSubclasses ?? true);
  }

  /** Status of a mailbox: `missing`, `active` or `terminated`, as the exchange has it now. */
  async status(id: EntityId): Promise<MailboxStatus> {
    this.#assertOpen();
    return this.transport.status(id.uid, true);
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
   * A handle to an agent, bound to this client (requests go out from this client's mailbox).
   * @throws {TypeError} if `agentId` is not an `AgentId`.
   */
  getHandle<A extends Agent>(agentId: AgentId<A>): Handle<A> {
    if (!(agentId instanceof AgentId)) {
      throw new TypeError(`A handle needs an AgentId, got ${Object.prototype.toString.call(agentId)}`);
    }
    let handle = this.#handles.get(agentId.uid);
    if (handle === undefined) {
      handle = new AgentHandle(agentId, this) as unknown as AgentHandle;
      this.#handles.set(agentId.uid, handle);
    }
    return handle as unknown as Handle<A>;
  }

  /** @internal Send a request and wait for its response (used by handles). */
  async request(dest: AgentId, body: RequestBody, options: CallOptions, giveUp: GiveUp): Promise<ResponseMessage> {
    this.#assertOpen();
    const replyTo = this.transport.replySubject;
    const message = { ...body, tag: newTag(), dest: dest.uid, src: this.clientId.uid, ...(replyTo !== undefined && { replyTo }) } as RequestMessage;
    const { signal, timeoutMs } = options;
    if (signal?.aborted) throw giveUp("abort", message, signal.reason);
    // Requests from one client reach the exchange in call order (FIFO per mailbox), even while an
    // earlier request's status lookup is still under way.
    const deliverable = this.#sendOrder.then(() => this.#assertDeliverable(dest));
    this.#sendOrder = deliverable.catch(() => undefined);
    await deliverable;

    return new Promise<ResponseMessage>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#pending.delete(message.tag);
      };
      const pending: PendingRequest = {
        dest,
        resolve: (response) => {
          cleanup();
          resolve(response);
        },
        reject: (error) => {
          cleanup();
          reject(error);
        },
      };
      const abandon = (reason: "timeout" | "abort", cause: unknown): void => {
        if (this.#pending.get(message.tag) !== pending) return;
        pending.reject(giveUp(reason, message, cause));
        if (message.type === MessageType.ActionRequest) this.#sendCancel(dest, message.tag);
      };
      const onAbort = (): void => abandon("abort", signal?.reason);
      this.#pending.set(message.tag, pending);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(() => abandon("timeout", timeoutMs), timeoutMs);
      this.transport.send(message).catch((error: unknown) => {
        if (this.#pending.get(message.tag) === pending) pending.reject(error as Error);
      });
    });
  }

  /**
   * @internal Answer a request (no-op for requests without a reply address; dropped when the
   * requester's mailbox is gone).
   */
  async respond(request: RequestMessage, body: ResponseBody): Promise<void> {
    if (request.src === undefined && request.replyTo === undefined) return;
    if (request.replyTo === undefined) {
      const status = await this.transport.status(request.src!);
      if (status !== MailboxStatus.Active) {
        this.logger.debug({ tag: request.tag, dest: request.src, status }, "dropping response to inactive mailbox");
        return;
      }
    }
    await this.transport.send({ ...body, ...responseRouting(request), src: this.clientId.uid } as ResponseMessage);
  }

  /** Requests that reach this client's mailbox. */
  protected abstract handleRequest(delivery: RequestDelivery): void;

  /** Runs first in `close()`. */
  protected async beforeClose(): Promise<void> {}

  /** The mailbox handler: responses resolve pending requests, requests go to `handleRequest`. */
  protected deliver(delivery: Delivery): void {
    const message = delivery.message;
    if (isRequest(message)) {
      this.handleRequest(delivery as RequestDelivery);
      return;
    }
    delivery.ack();
    const pending = this.#pending.get(message.tag);
    if (pending === undefined) {
      this.logger.debug({ tag: message.tag, type: message.type }, "response to no pending request (late or duplicate)");
      return;
    }
    if (message.type === MessageType.ErrorResponse) pending.reject(fromFailure(message.error));
    else pending.resolve(message);
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
  }

  /**
   * Close the client: stop listening, fail pending requests with `ClientClosedError`, release the
   * transport. Idempotent; every step runs even if an earlier one fails.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const steps: Array<[string, () => Promise<void> | void]> = [
      ["before close", () => this.beforeClose()],
      ["stop listening", () => this.transport.stopListening()],
      [
        "fail pending requests",
        () => {
          const error = new ClientClosedError(`Client ${this.clientId} was closed`);
          for (const pending of [...this.#pending.values()]) pending.reject(error);
        },
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
    assertMailboxActive(await this.transport.status(dest.uid), dest);
  }

  #sendCancel(dest: AgentId, target: string): void {
    if (this.#closing !== undefined) return;
    const cancel: RequestMessage = { type: MessageType.CancelRequest, target, tag: newTag(), dest: dest.uid, src: this.clientId.uid };
    const send = async (): Promise<void> => {
      // A mailbox that is gone needs no cancel (and must not collect one nobody reads).
      if ((await this.transport.status(dest.uid)) === MailboxStatus.Active) await this.transport.send(cancel);
    };
    void send().catch((error: unknown) => {
      this.logger.debug({ err: error, dest: dest.uid, target }, "cancel request not sent");
    });
  }

  #onMailboxTerminated(uid: string): void {
    if (![...this.#pending.values()].some((p) => p.dest.uid === uid)) return;
    const timer = setTimeout(() => {
      for (const pending of [...this.#pending.values()]) {
        if (pending.dest.uid === uid) pending.reject(terminatedError(pending.dest));
      }
    }, this.#terminationGraceMs);
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
export type UserClientOptions = ExchangeClientOptions;

/**
 * A user's client: sends requests to agents. Closing it terminates its mailbox.
 */
export class UserExchangeClient extends ExchangeClient {
  /** @internal Use `ExchangeFactory.createUserClient`. */
  static async open(transport: ExchangeTransport, options: UserClientOptions = {}): Promise<UserExchangeClient> {
    const client = new UserExchangeClient(transport, options);
    try {
      await client.startListening();
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

  private constructor(transport: ExchangeTransport, handler: RequestHandler, options: AgentClientOptions) {
    super(transport, options);
    this.#handler = handler;
  }

  /** @internal Use `ExchangeFactory.createAgentClient`. */
  static async open(
    transport: ExchangeTransport,
    handler: RequestHandler,
    options: AgentClientOptions = {},
  ): Promise<AgentExchangeClient> {
    const client = new AgentExchangeClient(transport, handler, options);
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

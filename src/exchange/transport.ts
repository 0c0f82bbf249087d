/**
 * The contract every exchange transport implements (in-process and NATS JetStream). Exchange
 * clients are written against this interface only; one conformance suite checks both.
 */
import type { Agent } from "../agent/agent.ts";
import type { AgentTypeInfo } from "../agent/agent-type.ts";
import type { AgentId, EntityId } from "../identifiers.ts";
import type { HandleBinder } from "../protocol/codec.ts";
import type { Message } from "../protocol/messages.ts";
import type { MailboxStatus } from "./mailbox-status.ts";


/** What registering an agent returns; pass it to `Manager.launch` or `createAgentClient`. */
export interface AgentRegistration<A extends Agent = Agent> {
  readonly agentId: AgentId<A>;
  readonly agentType: AgentTypeInfo;
}

/**
 * A received message. The transport keeps it unacknowledged (and keeps its ack deadline alive)
 * until `ack` or `nak`; if the receiver dies first, the message is delivered again.
 */
export interface Delivery {
  readonly message: Message;
  /** 1 on first delivery, more on redeliveries. */
  readonly deliveryCount: number;
  /**
   * Whether this delivery may be a duplicate of a request handled before (given back by the
   * exchange, left by an earlier reader, or published again): only then is its result record read
   * before the action runs (docs/PROTOCOL.md section 10.10). `false` only when the transport can
   * tell it is the first delivery of a first publication; absent: treated as `true`.
   */
  readonly mayBeDuplicate?: boolean;
  /** Handled: remove the message from the mailbox. */
  ack(): void;
  /** Not handled: deliver it again (after `delayMs`, default at once). */
  nak(delayMs?: number): void;
}

/** Receives a mailbox's messages. */
export interface MailboxHandler {
  /** A decoded message arrived. Must not throw. */
  deliver(delivery: Delivery): void;
  /** The mailbox was terminated (by anyone); nothing more will be delivered. */
  terminated(): void;
}

/** One client's connection to an exchange, bound to its own mailbox. */
export interface ExchangeTransport {
  /** The mailbox this transport receives for. */
  readonly mailboxId: EntityId;
  /** Largest encoded message the exchange accepts, in bytes. */
  readonly maxPayload: number;
  /**
   * Where responses to this client's requests should go instead of its mailbox (a core subject
   * the transport listens on), if the transport has one while listening.
   */
  readonly replySubject?: string | undefined;
  /**
   * The site of this transport's exchange, when it has a site identity (docs/EDGE.md); ids on
   * other sites are routed to them.
   */
  readonly site?: string | undefined;
  /** The other sites this transport's exchange reaches (none for a single-site exchange). */
  readonly remoteSites?: readonly string[] | undefined;

  /**
   * Start delivering this mailbox's messages to `handler`; handles inside messages are bound
   * through `context`.
   * @throws {MailboxTerminatedError} if the mailbox is terminated.
   * @throws {BadEntityIdError} if the mailbox does not exist.
   */
  listen(handler: MailboxHandler, context: HandleBinder): Promise<void>;
  /** Stop delivering; unacknowledged messages stay in the mailbox for the next listener. */
  stopListening(): Promise<void>;

  /**
   * Put a message in `message.dest`'s mailbox (or publish it to `message.replyTo`); with a
   * `destSite` other than its own, into the outbox to that site. Retries transient failures with
   * the same message id, so a retried send is stored once.
   * @throws {PayloadTooLargeError} when the encoded message exceeds `maxPayload`.
   * @throws {ExchangeUnavailableError} when the exchange stays unreachable.
   * @throws {UnknownSiteError | SiteUnreachableError} for a `destSite` it cannot route to.
   */
  send(message: Message): Promise<void>;

  /**
   * Status of the mailbox with this uid on `site` (undefined: this transport's own). With
   * `fresh`, read at the source (the registry bucket), not from a cache that may trail it by a
   * moment. Another site's status comes from a mirror of its registry (eventually consistent).
   * @throws {UnknownSiteError | SiteUnreachableError} for a site it cannot read.
   */
  status(uid: string, fresh?: boolean, site?: string): Promise<MailboxStatus>;
  /**
   * The status `status(uid)` would give for a mailbox of this transport's own site, when the
   * transport knows it in memory now (its registry view); undefined when it would have to look it
   * up. Lets the per-call path check a mailbox without an asynchronous step.
   */
  knownStatus?(uid: string): MailboxStatus | undefined;
  /** Register a new agent mailbox of the given type. */
  registerAgent(type: AgentTypeInfo, name?: string): Promise<AgentRegistration>;
  /**
   * Active agents whose type is `typeName` (or, with `allowSubclasses`, has it as an ancestor), on
   * `site` (undefined: this transport's own).
   * @throws {UnknownSiteError | SiteUnreachableError} for a site it cannot read.
   */
  discover(typeName: string, allowSubclasses: boolean, site?: string): Promise<AgentId[]>;
  /**
   * Terminate a mailbox: it takes no more messages, and every request waiting in it is answered
   * with a `MailboxTerminatedError`. Idempotent; a no-op for unknown ids.
   * @throws {CrossSiteOperationError} for a mailbox of another site.
   */
  terminate(id: EntityId): Promise<void>;
  /** Call `listener(uid)` whenever a mailbox this process has sent to is terminated. */
  onTerminated(listener: (uid: string) => void): () => void;

  /** Release this transport (stops listening; does not terminate the mailbox). Idempotent. */
  close(): Promise<void>;
}

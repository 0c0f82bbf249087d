/**
 * The in-process exchange: mailboxes, registry and type index in memory. Messages are stored
 * encoded (CBOR), exactly as on NATS, so agents never share object references and both
 * exchanges behave alike (payload limits, handles, errors).
 *
 * Delivery mirrors JetStream: a delivered message stays in the mailbox, unacknowledged, until it
 * is acked; a nak, or the listener going away, puts it back at the front.
 */
import { MailboxStatus, terminatedError } from "../mailbox-status.ts";
import type { AgentTypeInfo } from "../../agent/agent-type.ts";
import { BadEntityIdError, PayloadTooLargeError } from "../../errors.ts";
import { AgentId } from "../../identifiers.ts";
import { runOutsideActionScope } from "../../interceptors/action-scope.ts";
import type { EntityId } from "../../identifiers.ts";
import { decodeMessage, encodeMessage } from "../../protocol/codec.ts";
import { toFailure } from "../../protocol/failure.ts";
import { MessageType, isRequest, responseRouting } from "../../protocol/messages.ts";
import type { Message } from "../../protocol/messages.ts";
import type { AgentRegistration } from "../transport.ts";
import { MemoryStateRecords } from "./local-state-store.ts";
import { MemoryReminders } from "./local-reminder-store.ts";
import { DEFAULT_RESULT_WINDOW_MS, checkResultWindow } from "../result-store.ts";
import { LocalResultTable } from "./local-results.ts";


/** Options of the in-process exchange. */
export interface LocalExchangeOptions {
  /**
   * Largest encoded message accepted, in bytes (NATS's default `max_payload`, for parity).
   * @defaultValue 1 MiB
   */
  maxPayload?: number;
  /**
   * Effectively-once execution: how long the response to an action request is kept, so that a
   * redelivery of the request is answered from it instead of running the action again
   * (docs/PROTOCOL.md section 10.10), in ms; 0 turns it off.
   * @defaultValue 600_000 (10 minutes, `DEFAULT_RESULT_WINDOW_MS`)
   */
  resultWindowMs?: number;
}

/** Receives one mailbox's messages from the exchange. */
export interface LocalMailboxSink {
  /**
   * `mayBeDuplicate`: delivered before (to any listener), or stored as a re-publication; only then
   * is the request's result record read (PROTOCOL.md 10.10).
   */
  deliver(bytes: Uint8Array, deliveryCount: number, token: number, mayBeDuplicate: boolean): void;
  terminated(): void;
}

interface StoredMessage {
  readonly token: number;
  readonly bytes: Uint8Array;
  deliveryCount: number;
  /** Stored as a re-publication of a request that may have been handled (a reminder's fire). */
  readonly resent: boolean;
}

interface Mailbox {
  readonly id: EntityId;
  status: MailboxStatus;
  readonly type: AgentTypeInfo | undefined;
  /** Waiting to be delivered, in order. */
  queue: StoredMessage[];
  /** Delivered, not yet acked. */
  readonly unacked: Map<number, StoredMessage>;
  sink: LocalMailboxSink | undefined;
  pumping: boolean;
  /** Delivers the queue to the sink; scheduled as a microtask (one function per mailbox). */
  readonly pump: () => void;
}

/** The shared state of one in-process exchange. */
export class LocalExchange {
  readonly maxPayload: number;
  /** Agents' durable state records (docs/STATE.md). */
  readonly stateRecords: MemoryStateRecords;
  /** Reminders (docs/STATE.md). */
  readonly reminders: MemoryReminders;
  /** Result records of effectively-once execution; undefined when turned off (`resultWindowMs: 0`). */
  readonly results: LocalResultTable | undefined;
  readonly #mailboxes = new Map<string, Mailbox>();
  readonly #terminationListeners = new Set<(uid: string) => void>();
  #nextToken = 1;

  constructor(options: LocalExchangeOptions = {}) {
    this.maxPayload = options.maxPayload ?? 1024 * 1024;
    this.stateRecords = new MemoryStateRecords(this.maxPayload);
    // A fire may repeat a due time after the de-duplication window: marked as a re-publication.
    this.reminders = new MemoryReminders((dest, bytes) => this.send(dest, bytes, true));
    const windowMs = checkResultWindow(options.resultWindowMs ?? DEFAULT_RESULT_WINDOW_MS);
    this.results = windowMs === 0 ? undefined : new LocalResultTable(windowMs, this.maxPayload);
  }

  registerUser(id: EntityId): void {
    this.#mailboxes.set(id.uid, this.#newMailbox(id, undefined));
  }

  registerAgent(type: AgentTypeInfo, name?: string): AgentRegistration {
    const agentId = AgentId.create(name);
    this.#mailboxes.set(agentId.uid, this.#newMailbox(agentId, type));
    return { agentId, agentType: type };
  }

  status(uid: string): MailboxStatus {
    return this.#mailboxes.get(uid)?.status ?? MailboxStatus.Missing;
  }

  discover(typeName: string, allowSubclasses: boolean): AgentId[] {
    const found: AgentId[] = [];
    for (const mailbox of this.#mailboxes.values()) {
      if (mailbox.status !== MailboxStatus.Active || mailbox.type === undefined) continue;
      const match = allowSubclasses ? mailbox.type.chain.includes(typeName) : mailbox.type.name === typeName;
      if (match) found.push(mailbox.id as AgentId);
    }
    return found;
  }

  /**
   * Store an encoded message in its destination mailbox.
   * @throws {PayloadTooLargeError | BadEntityIdError | MailboxTerminatedError}
   */
  send(dest: string, bytes: Uint8Array, resent = false): void {
    if (bytes.byteLength > this.maxPayload) {
      throw new PayloadTooLargeError(
        `Message of ${bytes.byteLength} bytes exceeds the exchange's limit of ${this.maxPayload} bytes`,
        { size: bytes.byteLength, limit: this.maxPayload },
      );
    }
    const mailbox = this.#mailboxes.get(dest);
    if (mailbox === undefined) throw new BadEntityIdError(`No mailbox ${dest}`, { entityId: dest });
    if (mailbox.status === MailboxStatus.Terminated) throw terminatedError(mailbox.id);
    mailbox.queue.push({ token: this.#nextToken++, bytes, deliveryCount: 0, resent });
    this.#schedulePump(mailbox);
  }

  /**
   * Deliver a mailbox's messages to `sink` (replacing any previous sink, whose unacked messages go
   * back to the queue).
   */
  attach(uid: string, sink: LocalMailboxSink): void {
    const mailbox = this.#mailboxes.get(uid);
    if (mailbox === undefined) throw new BadEntityIdError(`No mailbox ${uid}`, { entityId: uid });
    if (mailbox.status === MailboxStatus.Terminated) throw terminatedError(mailbox.id);
    if (mailbox.sink !== undefined) this.detach(uid);
    mailbox.sink = sink;
    this.#schedulePump(mailbox);
  }

  /** Stop delivering; unacked messages go back to the front of the queue. */
  detach(uid: string): void {
    const mailbox = this.#mailboxes.get(uid);
    if (mailbox === undefined) return;
    mailbox.sink = undefined;
    const returned = [...mailbox.unacked.values()].sort((a, b) => a.token - b.token);
    mailbox.unacked.clear();
    mailbox.queue = [...returned, ...mailbox.queue];
  }

  ack(uid: string, token: number): void {
    this.#mailboxes.get(uid)?.unacked.delete(token);
  }

  nak(uid: string, token: number, delayMs = 0): void {
    const mailbox = this.#mailboxes.get(uid);
    const stored = mailbox?.unacked.get(token);
    if (mailbox === undefined || stored === undefined) return;
    mailbox.unacked.delete(token);
    const requeue = (): void => {
      if (mailbox.status === MailboxStatus.Terminated) return;
      mailbox.queue.unshift(stored);
      this.#schedulePump(mailbox);
    };
    if (delayMs > 0) setTimeout(requeue, delayMs).unref();
    else requeue();
  }

  /**
   * Terminate a mailbox: every request still in it (queued or unacked) is answered with
   * `MailboxTerminatedError`; the listener is told. Idempotent; no-op for unknown ids.
   */
  terminate(uid: string): void {
    const mailbox = this.#mailboxes.get(uid);
    if (mailbox === undefined || mailbox.status === MailboxStatus.Terminated) return;
    mailbox.status = MailboxStatus.Terminated;
    const stranded = [...mailbox.unacked.values(), ...mailbox.queue];
    mailbox.unacked.clear();
    mailbox.queue = [];
    const sink = mailbox.sink;
    mailbox.sink = undefined;
    for (const stored of stranded) this.#answerTerminated(mailbox.id, stored.bytes);
    sink?.terminated();
    for (const listener of [...this.#terminationListeners]) listener(uid);
  }

  onTerminated(listener: (uid: string) => void): () => void {
    this.#terminationListeners.add(listener);
    return () => this.#terminationListeners.delete(listener);
  }

  #newMailbox(id: EntityId, type: AgentTypeInfo | undefined): Mailbox {
    const mailbox: Mailbox = {
      id,
      type,
      status: MailboxStatus.Active,
      queue: [],
      unacked: new Map(),
      sink: undefined,
      pumping: false,
      pump: () => this.#pump(mailbox),
    };
    return mailbox;
  }

  #answerTerminated(id: EntityId, bytes: Uint8Array): void {
    let message: Message;
    try {
      message = decodeMessage(bytes);
    } catch {
      return;
    }
    if (!isRequest(message) || message.src === undefined) return;
    const error = toFailure(terminatedError(id));
    try {
      this.send(message.src, encodeMessage({ ...responseRouting(message), type: MessageType.ErrorResponse, error }));
    } catch {
      // The requester's mailbox is gone too: nobody is waiting.
    }
  }

  #schedulePump(mailbox: Mailbox): void {
    if (mailbox.pumping || mailbox.sink === undefined || mailbox.queue.length === 0) return;
    mailbox.pumping = true;
    // Not in the sender's action scope: the receiver must not see another agent's action as its own.
    runOutsideActionScope(queueMicrotask, mailbox.pump);
  }

  #pump(mailbox: Mailbox): void {
    mailbox.pumping = false;
    // Deliver in order; a sink may detach (or the mailbox terminate) while we deliver.
    while (mailbox.sink !== undefined && mailbox.queue.length > 0) {
      const stored = mailbox.queue.shift()!;
      stored.deliveryCount++;
      mailbox.unacked.set(stored.token, stored);
      // One store of each message, counted across listeners: a count above 1 is every way a
      // duplicate reaches a listener here, besides a re-publication.
      mailbox.sink.deliver(stored.bytes, stored.deliveryCount, stored.token, stored.deliveryCount > 1 || stored.resent);
    }
  }
}

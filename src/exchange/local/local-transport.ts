/**
 * The in-process exchange's transport, bound to one mailbox, over the operations of a local
 * exchange: in the same thread (`LocalExchange`) or across a worker's message port
 * (`PortExchangeApi`).
 */
import { MailboxStatus, assertMailboxActive } from "../mailbox-status.ts";
import type { AgentTypeInfo } from "../../agent/agent-type.ts";
import { UnknownSiteError } from "../../errors.ts";
import type { AgentId, EntityId } from "../../identifiers.ts";
import type { ExchangeFactory } from "../exchange-factory.ts";
import { decodeMessage, encodeMessage } from "../../protocol/codec.ts";
import type { HandleBinder } from "../../protocol/codec.ts";
import type { Message } from "../../protocol/messages.ts";
import { silentLogger } from "../../util/logger.ts";
import type { Logger } from "../../util/logger.ts";
import { AgentExchangeClient } from "../exchange-client.ts";
import type { AgentClientOptions, RequestHandler } from "../exchange-client.ts";
import type { AgentRegistration, Delivery, ExchangeTransport, MailboxHandler } from "../transport.ts";

/** The operations a local transport needs; implemented in-thread and over a worker port. */
export interface LocalExchangeApi {
  readonly maxPayload: number;
  status(uid: string): MailboxStatus | Promise<MailboxStatus>;
  registerAgent(type: AgentTypeInfo, name?: string): AgentRegistration | Promise<AgentRegistration>;
  discover(typeName: string, allowSubclasses: boolean): AgentId[] | Promise<AgentId[]>;
  send(dest: string, bytes: Uint8Array): void | Promise<void>;
  terminate(uid: string): void | Promise<void>;
  attach(uid: string, sink: { deliver(bytes: Uint8Array, deliveryCount: number, token: number, mayBeDuplicate: boolean): void; terminated(): void }): void | Promise<void>;
  detach(uid: string): void | Promise<void>;
  ack(uid: string, token: number): void;
  nak(uid: string, token: number, delayMs?: number): void;
  onTerminated(listener: (uid: string) => void): () => void;
}

/** A delivery from the in-process exchange, settled once (no closures per message). */
class LocalDelivery implements Delivery {
  readonly message: Message;
  readonly deliveryCount: number;
  readonly mayBeDuplicate: boolean;
  readonly #api: LocalExchangeApi;
  readonly #uid: string;
  readonly #token: number;
  #settled = false;

  constructor(api: LocalExchangeApi, uid: string, token: number, message: Message, deliveryCount: number, mayBeDuplicate: boolean) {
    this.#api = api;
    this.#uid = uid;
    this.#token = token;
    this.message = message;
    this.deliveryCount = deliveryCount;
    this.mayBeDuplicate = mayBeDuplicate;
  }

  ack(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#api.ack(this.#uid, this.#token);
  }

  nak(delayMs?: number): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#api.nak(this.#uid, this.#token, delayMs);
  }
}

/** The in-process exchange has no sites: an id or option naming one is an error. */
function noSites(site: string): UnknownSiteError {
  return new UnknownSiteError(`The in-process exchange has no sites; ${site} names one`, { site });
}

/** A transport on the in-process exchange, bound to one mailbox. */
export class LocalTransport implements ExchangeTransport {
  readonly mailboxId: EntityId;
  readonly #api: LocalExchangeApi;
  readonly #logger: Logger;
  #listening = false;
  #closed = false;

  constructor(api: LocalExchangeApi, mailboxId: EntityId, logger: Logger = silentLogger) {
    this.#api = api;
    this.mailboxId = mailboxId;
    this.#logger = logger;
  }

  get maxPayload(): number {
    return this.#api.maxPayload;
  }

  async listen(handler: MailboxHandler, context: HandleBinder): Promise<void> {
    const uid = this.mailboxId.uid;
    assertMailboxActive(await this.#api.status(uid), this.mailboxId);
    this.#listening = true;
    await this.#api.attach(uid, {
      deliver: (bytes, deliveryCount, token, mayBeDuplicate) => {
        let message: Message;
        try {
          message = decodeMessage(bytes, context);
        } catch (error) {
          this.#logger.warn({ err: error }, "dropping undecodable message");
          this.#api.ack(uid, token);
          return;
        }
        handler.deliver(new LocalDelivery(this.#api, uid, token, message, deliveryCount, mayBeDuplicate));
      },
      terminated: () => {
        this.#listening = false;
        handler.terminated();
      },
    });
  }

  async stopListening(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    await this.#api.detach(this.mailboxId.uid);
  }

  async send(message: Message): Promise<void> {
    if (message.destSite !== undefined) throw noSites(message.destSite);
    await this.#api.send(message.dest, encodeMessage(message));
  }

  async status(uid: string, _fresh?: boolean, site?: string): Promise<MailboxStatus> {
    if (site !== undefined) throw noSites(site);
    return this.#api.status(uid);
  }

  async registerAgent(type: AgentTypeInfo, name?: string): Promise<AgentRegistration> {
    return this.#api.registerAgent(type, name);
  }

  async discover(typeName: string, allowSubclasses: boolean, site?: string): Promise<AgentId[]> {
    if (site !== undefined) throw noSites(site);
    return this.#api.discover(typeName, allowSubclasses);
  }

  async terminate(id: EntityId): Promise<void> {
    if (id.site !== undefined) throw noSites(id.site);
    if (id.uid === this.mailboxId.uid) this.#listening = false;
    await this.#api.terminate(id.uid);
  }

  onTerminated(listener: (uid: string) => void): () => void {
    return this.#api.onTerminated(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.stopListening();
  }
}

/**
 * An agent client on a local exchange API (in-thread or over a port).
 * @throws {BadEntityIdError | AgentTerminatedError} unless the agent's mailbox is active.
 */
export async function openAgentClient(
  api: LocalExchangeApi,
  registration: AgentRegistration,
  handler: RequestHandler,
  options: AgentClientOptions & { logger?: Logger },
  factory: ExchangeFactory,
): Promise<AgentExchangeClient> {
  // The transport's listen() checks that the mailbox is active.
  return AgentExchangeClient.open(new LocalTransport(api, registration.agentId, options.logger), handler, options, factory);
}

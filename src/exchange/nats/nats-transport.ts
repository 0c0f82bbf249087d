/**
 * A NATS JetStream transport, bound to one mailbox.
 */
import { MailboxStatus, assertMailboxActive } from "../mailbox-status.ts";
import type { AgentTypeInfo } from "../../agent/agent-type.ts";
import { createInbox } from "@nats-io/nats-core";
import type { Subscription } from "@nats-io/nats-core";
import { CrossSiteOperationError } from "../../errors.ts";
import type { AgentId, EntityId } from "../../identifiers.ts";
import type { HandleBinder } from "../../protocol/codec.ts";
import { decodeValue } from "../../protocol/codec.ts";
import { fromEnvelope, isRequest } from "../../protocol/messages.ts";
import type { Message } from "../../protocol/messages.ts";
import type { Logger } from "../../util/logger.ts";
import type { AgentRegistration, ExchangeTransport, MailboxHandler } from "../transport.ts";

import type { NatsExchange } from "./nats-exchange.ts";
import { connectionInboxPrefix } from "./js-publisher.ts";
import { NatsMailbox } from "./nats-mailbox.ts";

/** Index hits up to this many are always checked with one registry get each. */
const HIT_GETS_ALWAYS = 64;
/** More hits than a quarter of the registry's records: load the registry view to check them. */
const HIT_SHARE_TO_LOAD = 4;
/** How long a cold discover waits for the registry view to load before checking hits one by one. */
const VIEW_LOAD_TIMEOUT_MS = 30_000;

export class NatsTransport implements ExchangeTransport {
  readonly mailboxId: EntityId;
  readonly #ctx: NatsExchange;
  readonly #logger: Logger;
  #mailbox: NatsMailbox | undefined;
  #replies: Subscription | undefined;
  #unwatchOwn: (() => void) | undefined;
  #closed = false;

  constructor(ctx: NatsExchange, mailboxId: EntityId, logger: Logger) {
    this.#ctx = ctx;
    this.mailboxId = mailboxId;
    this.#logger = logger.child({ mailbox: mailboxId.uid });
  }

  get maxPayload(): number {
    return this.#ctx.maxPayload;
  }

  get replySubject(): string | undefined {
    return this.#replies?.getSubject();
  }

  get site(): string | undefined {
    return this.#ctx.site;
  }

  get remoteSites(): readonly string[] {
    return [...this.#ctx.links.keys()];
  }

  async listen(handler: MailboxHandler, context: HandleBinder): Promise<void> {
    const uid = this.mailboxId.uid;
    assertMailboxActive(await this.#ctx.registry.status(uid), this.mailboxId);
    if (this.#ctx.settings.replies === "core") this.#replies = this.#listenForReplies(handler, context);
    const mailbox = new NatsMailbox(this.#ctx, this.mailboxId, handler, context, this.#logger);
    this.#mailbox = mailbox;
    // Learn of our own termination from the registry watch as well as from the consumer vanishing.
    this.#unwatchOwn = this.#ctx.view.onTerminated((terminated) => {
      if (terminated === uid) mailbox.notifyTerminated();
    });
    try {
      await mailbox.start();
    } catch (error) {
      await this.stopListening();
      throw error;
    }
  }

  /**
   * Responses over core NATS (`replies: "core"`): a subscription on a fresh inbox, named in each
   * request's `replyTo`. Only responses are taken there; anything else is dropped and logged.
   */
  #listenForReplies(handler: MailboxHandler, context: HandleBinder): Subscription {
    const settled = (): void => {};
    return this.#ctx.nc.subscribe(createInbox(connectionInboxPrefix(this.#ctx.nc)), {
      callback: (error, msg) => {
        if (error !== null) return;
        let message: Message;
        try {
          message = fromEnvelope(decodeValue(msg.data, context));
        } catch (decodeError) {
          this.#logger.warn({ err: decodeError, subject: msg.subject }, "dropping undecodable reply");
          return;
        }
        if (isRequest(message)) {
          this.#logger.warn({ tag: message.tag, type: message.type }, "dropping a request sent to a reply subject");
          return;
        }
        handler.deliver({ message, deliveryCount: 1, ack: settled, nak: settled });
      },
    });
  }

  async stopListening(): Promise<void> {
    this.#replies?.unsubscribe();
    this.#replies = undefined;
    this.#unwatchOwn?.();
    this.#unwatchOwn = undefined;
    const mailbox = this.#mailbox;
    this.#mailbox = undefined;
    await mailbox?.stop();
  }

  send(message: Message): Promise<void> {
    return this.#ctx.send(message);
  }

  async status(uid: string, fresh = false, site?: string): Promise<MailboxStatus> {
    if (site !== undefined) return this.#ctx.statusAt(uid, site, fresh);
    return fresh ? this.#ctx.registry.status(uid) : this.#ctx.status(uid);
  }

  knownStatus(uid: string): MailboxStatus | undefined {
    return this.#ctx.knownStatus(uid);
  }

  async registerAgent(type: AgentTypeInfo, name?: string): Promise<AgentRegistration> {
    const { registration, entry } = await this.#ctx.registry.registerAgent(type, name);
    this.#ctx.view.apply(entry);
    return registration;
  }

  async discover(typeName: string, allowSubclasses: boolean, site?: string): Promise<AgentId[]> {
    if (this.#ctx.isRemote(site)) return this.#ctx.discoverAt(typeName, allowSubclasses, site);
    const { view, registry } = this.#ctx;
    const warm = await view.discover(typeName, allowSubclasses);
    if (warm !== undefined) return warm;
    // Cold: the member lists of the matching types, checked against the registry in one request;
    // then start the view for the next calls.
    const members = await registry.discoverMembers(typeName, allowSubclasses);
    if (members !== undefined) {
      view.start();
      return members;
    }
    // Layout 2 cannot answer (a bucket not migrated yet, or a registry that has removed too many
    // messages to list them):
    // read the per-uid index, check its hits against the registry (the index is only a hint), then
    // start the view for the next calls (loading it meanwhile would slow this call down). When the
    // hits are a large part of the registry, loading the view is the cheaper check, and it is
    // needed next anyway.
    const hits = await registry.indexHits(typeName, allowSubclasses);
    if (hits.length > HIT_GETS_ALWAYS && hits.length * HIT_SHARE_TO_LOAD >= (await registry.size())) {
      view.start();
      const loaded = await view.discover(typeName, allowSubclasses, VIEW_LOAD_TIMEOUT_MS);
      if (loaded !== undefined) return loaded;
    }
    const { found, records } = await registry.checkHits(hits, typeName, allowSubclasses);
    for (const entry of records) view.apply(entry);
    view.start();
    return found;
  }

  async terminate(id: EntityId): Promise<void> {
    if (this.#ctx.isRemote(id.site)) {
      this.#ctx.link(id.site);
      throw new CrossSiteOperationError(
        `${id.toString()} is a mailbox of site ${id.site}: only that site can terminate it (send the agent a shutdown request instead)`,
        { site: id.site, entityId: id.uid },
      );
    }
    if (id.uid === this.mailboxId.uid) await this.stopListening();
    await this.#ctx.terminate(id);
  }

  onTerminated(listener: (uid: string) => void): () => void {
    const local = this.#ctx.view.onTerminated(listener);
    if (this.#ctx.links.size === 0) return local;
    const remote = [...this.#ctx.links.values()].map((link) => link.onTerminated(listener));
    return () => {
      local();
      for (const stop of remote) stop();
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.stopListening();
  }
}

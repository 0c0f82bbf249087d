/**
 * The relay of one inbox (docs/EDGE.md): takes each message another site sent to this one, in
 * the order of that site's outbox, and stores it where it belongs in this site, then
 * acknowledges it. Every process of the site that links to that site runs one; they share one
 * durable consumer `relay` on the inbox, which delivers one message at a time (`max_ack_pending`
 * 1), so messages are stored in outbox order whichever relay takes them.
 *
 * A message is acknowledged only once it is stored (de-duplicated by its `Nats-Msg-Id`, so a
 * relay that dies in between stores it once); a relay that cannot store it hands it back.
 *
 * | inbox subject (`<site>.out.<p>.` …) | stored as |
 * | --- | --- |
 * | `mbox.<uid>`, mailbox active | `<p>.mbox.<uid>`, same payload and headers |
 * | `mbox.<uid>`, a request, mailbox missing or terminated | not stored; answered with `BadEntityIdError` / `MailboxTerminatedError` to the sender's site |
 * | `mbox.<uid>`, a response, mailbox missing or terminated | dropped: its caller is gone |
 * | `launch.<pool>.<uid>`, a valid launch request for that pool and agent | the agent registered here if it is not (uid, name, type, ancestry from the request), then `<p>.launch.<pool>.<uid>` |
 * | anything else | dead-lettered on `<p>.dlq.relay.<site>` |
 */
import type { Consumer, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import { headers as natsHeaders, nanos } from "@nats-io/nats-core";
import { setTimeout as sleep } from "node:timers/promises";
import { InvalidConfigError, MalformedMessageError, UnknownSiteError } from "../../errors.ts";
import { AgentId } from "../../identifiers.ts";
import { decodeLaunchRequest } from "../../pool/records.ts";
import { decodeMessage } from "../../protocol/codec.ts";
import { toFailure } from "../../protocol/failure.ts";
import { MessageType, NatsHeader, isRequest, responseRouting } from "../../protocol/messages.ts";
import type { Logger } from "../../util/logger.ts";
import { MailboxStatus, mailboxError } from "../mailbox-status.ts";
import type { NatsExchange, NatsSiteSettings } from "./nats-exchange.ts";
import { isConsumerNotFound } from "./nats-errors.ts";
import { NatsPoolBackend } from "./nats-pool-backend.ts";

/** Delay before a relay starts again after its consumer failed, in ms. */
const RESTART_DELAY_MS = 500;
/** Delay before a message the relay could not store comes back, in ms. */
const REDELIVERY_DELAY_MS = 1_000;
/** How long a delivered message may stay unacknowledged before another relay gets it, in ms. */
const RELAY_ACK_WAIT_MS = 30_000;

const UID = /^[A-Za-z0-9_-]{1,64}$/;

export class NatsRelay {
  readonly #exchange: NatsExchange;
  readonly #site: NatsSiteSettings;
  readonly #logger: Logger;
  /** Inbox subjects start with this: `<site>.out.<own prefix>.`. */
  readonly #subjectPrefix: string;
  #messages: ConsumerMessages | undefined;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  #running: Promise<void> | undefined;

  constructor(exchange: NatsExchange, site: NatsSiteSettings, logger: Logger) {
    this.#exchange = exchange;
    this.#site = site;
    this.#logger = logger.child({ relay: exchange.layout.inboxStream(site.name) });
    this.#subjectPrefix = `${site.name}.out.${exchange.layout.prefix}.`;
  }

  /** Start relaying (until closed). */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Stop relaying; a message being stored is handed back. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#messages?.stop();
    await this.#running;
    await this.#chain;
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      try {
        const consumer = await this.#consumer();
        if (this.#closed) return;
        const messages = await consumer.consume({ max_messages: 16, callback: (m) => this.#enqueue(m) });
        this.#messages = messages;
        if (this.#closed) messages.stop();
        await messages.closed();
      } catch (error) {
        if (this.#closed) return;
        this.#logger.warn({ err: error }, "relay consumer failed; restarting");
      }
      if (!this.#closed) await sleep(RESTART_DELAY_MS);
    }
  }

  /** The inbox's relay consumer, created if missing (by whichever relay comes first). */
  async #consumer(): Promise<Consumer> {
    const { jsm, js, layout } = this.#exchange;
    const stream = layout.inboxStream(this.#site.name);
    const name = layout.relayConsumer;
    await this.#exchange.retry("provision relay consumer", async () => {
      try {
        await jsm.consumers.info(stream, name);
      } catch (error) {
        if (!isConsumerNotFound(error)) throw error;
        await jsm.consumers.add(stream, {
          durable_name: name,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(RELAY_ACK_WAIT_MS),
          max_deliver: -1,
          // One message at a time across every relay of the site: outbox order is kept.
          max_ack_pending: 1,
        });
      }
    });
    return js.consumers.get(stream, name);
  }

  #enqueue(m: JsMsg): void {
    this.#chain = this.#chain.then(() => this.#relay(m));
  }

  async #relay(m: JsMsg): Promise<void> {
    if (this.#closed) {
      m.nak();
      return;
    }
    try {
      await this.#store(m);
      m.ack();
    } catch (error) {
      this.#logger.warn({ err: error, subject: m.subject, seq: m.info.streamSequence }, "could not relay a message; it comes back");
      m.nak(REDELIVERY_DELAY_MS);
    }
  }

  async #store(m: JsMsg): Promise<void> {
    const exchange = this.#exchange;
    const target = m.subject.startsWith(this.#subjectPrefix) ? m.subject.slice(this.#subjectPrefix.length) : "";
    const dot = target.indexOf(".");
    const kind = target.slice(0, dot);
    const rest = target.slice(dot + 1);
    if (kind === "mbox" && UID.test(rest)) {
      await this.#storeMailboxMessage(m, rest);
      return;
    }
    const [pool = "", uid = "", ...more] = rest.split(".");
    let error: Error = new MalformedMessageError(`Message from site ${this.#site.name} on ${m.subject} has no known destination`, { subject: m.subject });
    if (kind === "launch" && more.length === 0) {
      try {
        await this.#storeLaunch(m, pool, uid);
        return;
      } catch (launchError) {
        // A request no host could read: keep it aside rather than block the inbox on it.
        if (!(launchError instanceof MalformedMessageError || launchError instanceof InvalidConfigError)) throw launchError;
        error = launchError;
      }
    }
    const headers: Array<[string, string]> = [];
    const msgId = m.headers?.get(NatsHeader.MsgId);
    if (msgId !== undefined && msgId !== "") headers.push(["Msg-Id", msgId]);
    await exchange.deadLetter(
      `${exchange.layout.prefix}.dlq.relay.${this.#site.name}`,
      { data: m.data, subject: m.subject, seq: m.info.streamSequence, headers },
      error,
      `dl:relay:${this.#site.name}:${m.info.streamSequence}`,
    );
  }

  /**
   * A launch request for a pool of this site: register the agent it names (an agent launched from
   * another site is registered here, where its mailbox lives), then queue the request for the
   * pool's hosts. Its placement is written by the host that takes it.
   * @throws {MalformedMessageError} for a request that is not valid for this pool and agent.
   */
  async #storeLaunch(m: JsMsg, pool: string, uid: string): Promise<void> {
    const exchange = this.#exchange;
    const request = decodeLaunchRequest(m.data);
    const subject = exchange.layout.launchSubject(pool, uid);
    if (request.pool !== pool || request.uid !== uid) {
      throw new MalformedMessageError(`Launch request for ${request.uid} on pool ${request.pool} arrived as ${m.subject}`, { subject: m.subject });
    }
    const registered = await exchange.registry.registerAgentAs(new AgentId(uid, request.name, exchange.site), { name: request.type, chain: request.chain });
    if (registered !== undefined) exchange.view.apply(registered);
    await NatsPoolBackend.for(exchange);
    const headers = natsHeaders();
    headers.set(NatsHeader.MsgId, m.headers?.get(NatsHeader.MsgId) || `launch:${uid}:${request.gen}`);
    await exchange.publishStored(subject, m.data, headers);
  }

  async #storeMailboxMessage(m: JsMsg, uid: string): Promise<void> {
    const exchange = this.#exchange;
    const msgId = m.headers?.get(NatsHeader.MsgId) ?? "";
    const status = await exchange.statusAt(uid, undefined);
    if (status === MailboxStatus.Active) {
      const headers = natsHeaders();
      for (const name of [NatsHeader.MsgId, NatsHeader.Source, NatsHeader.Tag, NatsHeader.ReplyTo]) {
        const value = m.headers?.get(name);
        if (value !== undefined && value !== "") headers.set(name, value);
      }
      // Marked as a re-publication (PROTOCOL.md 10.10): the relay's own consumer can give a message
      // back after it was stored (a lost ack, a server crash), and the outbox may hold it twice (a
      // sender's retry), each time possibly after the mailbox stream's duplicate window.
      headers.set(NatsHeader.Resent, "1");
      await exchange.publishStored(exchange.layout.mailboxSubject(uid), m.data, headers);
      return;
    }
    if (msgId.startsWith("r:")) {
      this.#logger.debug({ dest: uid, status }, "dropping a response from another site to an inactive mailbox");
      return;
    }
    let request;
    try {
      request = decodeMessage(m.data);
    } catch (error) {
      this.#logger.warn({ err: error, dest: uid }, "dropping an undecodable message from another site to an inactive mailbox");
      return;
    }
    if (!isRequest(request) || (request.src === undefined && request.replyTo === undefined)) return;
    const failure = toFailure(mailboxError(status, uid)!);
    try {
      await exchange.answer({ ...responseRouting(request), type: MessageType.ErrorResponse, error: failure });
    } catch (error) {
      // A sender's site this one has no link to cannot be answered; never block the inbox on it.
      if (!(error instanceof UnknownSiteError)) throw error;
      this.#logger.warn({ err: error, dest: uid, tag: request.tag }, "cannot answer a request from a site without a link");
    }
  }
}

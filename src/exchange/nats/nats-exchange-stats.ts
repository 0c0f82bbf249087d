/**
 * {@link ExchangeStats} of a NATS exchange: mailbox depths from the mailbox stream's per-subject
 * counts (a work queue keeps a message until it is acknowledged, so a subject's count is its
 * mailbox's depth), a mailbox's deliveries from its consumer's info, dead letters from the
 * dead-letter stream's message count. Read-only: nothing is created.
 */
import type { DeadLetterStats, ExchangeStats, MailboxDeliveries } from "../exchange-stats.ts";
import { isConsumerNotFound, isStreamNotFound } from "./nats-errors.ts";
import type { NatsExchange } from "./nats-exchange.ts";

/** The statistics of one NATS exchange connection. */
export class NatsExchangeStats implements ExchangeStats {
  readonly #ctx: NatsExchange;

  constructor(ctx: NatsExchange) {
    this.#ctx = ctx;
  }

  async mailboxDepths(): Promise<Map<string, number>> {
    const { jsm, layout } = this.#ctx;
    const info = await this.#ctx.retry("read mailbox depths", () => jsm.streams.info(layout.mailboxStream, { subjects_filter: layout.mailboxSubjects }));
    const depths = new Map<string, number>();
    const skip = `${layout.prefix}.mbox.`.length;
    for (const [subject, count] of Object.entries(info.state.subjects ?? {})) depths.set(subject.slice(skip), count);
    return depths;
  }

  async mailboxDeliveries(uid: string): Promise<MailboxDeliveries | undefined> {
    const { jsm, layout } = this.#ctx;
    try {
      const info = await this.#ctx.retry("read mailbox consumer", () => jsm.consumers.info(layout.mailboxStream, layout.mailboxConsumer(uid)));
      return { waiting: info.num_pending, inFlight: info.num_ack_pending, redelivered: info.num_redelivered };
    } catch (error) {
      if (isConsumerNotFound(error)) return undefined;
      throw error;
    }
  }

  async deadLetters(): Promise<DeadLetterStats> {
    const { jsm, layout } = this.#ctx;
    try {
      const info = await this.#ctx.retry("read dead letters", () => jsm.streams.info(layout.deadLetterStream));
      return { count: info.state.messages, lastId: info.state.last_seq };
    } catch (error) {
      if (isStreamNotFound(error)) return { count: 0, lastId: 0 };
      throw error;
    }
  }
}

/**
 * What an exchange can tell operators about its queues, cheaply: how many messages wait in each
 * mailbox, how the deliveries of one mailbox stand, and how many dead letters it keeps. Runtime
 * hosts export these as metrics and `academy dashboard` shows them; an exchange offers them through
 * `ExchangeFactory.stats` (the NATS exchange reads stream and consumer info: `nats-exchange-stats.ts`).
 * Each call is one or a few server requests: callers rate-limit them.
 */

/** How the deliveries of one mailbox stand, as its reader (consumer) sees them. */
export interface MailboxDeliveries {
  /** Messages in the mailbox not yet delivered to its reader. */
  readonly waiting: number;
  /** Messages delivered and not yet acknowledged (being handled, or queued in the agent). */
  readonly inFlight: number;
  /** Of those in flight, messages delivered more than once. */
  readonly redelivered: number;
}

/** Queue statistics of one exchange. */
export interface ExchangeStats {
  /**
   * Messages in each mailbox that holds any (waiting or being handled: a mailbox's depth), by
   * mailbox uid, in one read for the whole exchange. Mailboxes absent from the map are empty.
   */
  mailboxDepths(): Promise<Map<string, number>>;
  /** The deliveries of the mailbox `uid`; undefined when it has no reader now. */
  mailboxDeliveries(uid: string): Promise<MailboxDeliveries | undefined>;
  /** The dead letters kept now (mailbox and launch letters). */
  deadLetters(): Promise<DeadLetterStats>;
}

/** How many dead letters an exchange keeps. */
export interface DeadLetterStats {
  /** Letters kept now. */
  readonly count: number;
  /** The id of the newest letter ever set aside (0 if none): letters after it are new. */
  readonly lastId: number;
}

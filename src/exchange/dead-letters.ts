/**
 * Dead letters, as operators see them: messages an exchange set aside because they could not be
 * handled — mailbox messages (malformed, another protocol version, a request handed back
 * `maxDeliveries` times) and launch requests no host could run. An exchange offers them through
 * `ExchangeFactory.deadLetters` (the NATS exchange keeps them in its dead-letter stream:
 * `nats-dead-letters.ts`); the `academy dlq` command uses only this interface.
 */

/** What a dead letter was. */
export const DeadLetterKind = {
  /** A message of a mailbox (agent or user). */
  Mailbox: "mailbox",
  /** A launch request of a host pool. */
  Launch: "launch",
  /** An event an agent's subscription could not handle (docs/EVENTS.md). */
  Event: "event",
} as const;
export type DeadLetterKind = (typeof DeadLetterKind)[keyof typeof DeadLetterKind];

/** One dead letter: the message as it was, why it was set aside, and where it came from. */
export interface DeadLetter {
  /** Its id in the dead-letter store (the stream sequence on NATS): what `get`, `replay` and `remove` take. */
  readonly id: number;
  readonly kind: DeadLetterKind;
  /** Mailbox letters: the uid of the mailbox it was in. */
  readonly mailbox?: string | undefined;
  /** Launch letters: the pool it was queued for. */
  readonly pool?: string | undefined;
  /** Launch letters: the uid of the agent it would have launched, when its subject names one; event letters: the agent whose handler failed. */
  readonly agent?: string | undefined;
  /** Event letters: the handler (method) of the subscription. */
  readonly handler?: string | undefined;
  /** When it was set aside. */
  readonly time: Date;
  /** Why: the error's `code` (or name), e.g. `MALFORMED_MESSAGE`, `DELIVERY_LIMIT`, `UNKNOWN_AGENT_TYPE`. */
  readonly reason: string | undefined;
  /** The error's message. */
  readonly error: string | undefined;
  /** Where the original was published. */
  readonly originalSubject: string | undefined;
  /** Every header stored with it (the original's routing headers as `Academy-Original-*`). */
  readonly headers: Readonly<Record<string, string>>;
  /** The original message's bytes, unchanged. */
  readonly data: Uint8Array;
}

/** Which dead letters to list. Every field narrows the selection; none selects every letter. */
export interface DeadLetterFilter {
  readonly kind?: DeadLetterKind;
  /** Letters of this mailbox uid. */
  readonly mailbox?: string;
  /** Launch letters of this pool. */
  readonly pool?: string;
  /** Letters with this reason (error code). */
  readonly reason?: string;
  /** Letters set aside at or after this time. */
  readonly since?: Date;
  /** Letters set aside before this time. */
  readonly before?: Date;
  /** Letters with an id greater than this (set aside after it): for following new letters. */
  readonly after?: number;
  /**
   * Most letters returned (the oldest first).
   * @defaultValue no limit
   */
  readonly limit?: number;
}

/** Why a dead letter was not replayed. */
export const ReplayRefusal = {
  /** It is gone (removed, replayed, or aged out). */
  Missing: "missing",
  /** The mailbox it belongs to (or the agent a launch would start) is not active. */
  MailboxInactive: "mailbox-inactive",
  /** It does not say where it came from. */
  NoOrigin: "no-origin",
  /**
   * It is an event: a replay would publish it to every subscriber of its subject, not to the one
   * that failed; publish it again yourself where that is what you want.
   */
  Event: "event",
} as const;
export type ReplayRefusal = (typeof ReplayRefusal)[keyof typeof ReplayRefusal];

/** The outcome of a replay: put back (and removed from the dead letters), or refused and kept. */
export type ReplayResult = { readonly replayed: true } | { readonly replayed: false; readonly refusal: ReplayRefusal; readonly detail: string };

/** The dead letters of one exchange. */
export interface DeadLetterStore {
  /** The letters `filter` selects, oldest first. */
  list(filter?: DeadLetterFilter): Promise<DeadLetter[]>;
  /** One letter; undefined if there is none with that id. */
  get(id: number): Promise<DeadLetter | undefined>;
  /**
   * Put a letter back where it was (its mailbox, or its pool's launch queue) with its routing
   * headers, then remove it from the dead letters. Refused, and kept, when the mailbox it is for
   * (a launch letter: the agent's mailbox) is not active: a terminated mailbox would only answer
   * or drop it again.
   */
  replay(id: number): Promise<ReplayResult>;
  /** Remove a letter; false if it was not there. */
  remove(id: number): Promise<boolean>;
}

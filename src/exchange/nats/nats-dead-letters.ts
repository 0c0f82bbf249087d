/**
 * The dead letters of a NATS exchange ({@link DeadLetterStore}): the dead-letter stream
 * `<prefix>_dead_letters`, where mailbox messages go on `<prefix>.dlq.<uid>` and rejected launch
 * requests on `<prefix>.dlq.launch.<pool>` (docs/NATS-LAYOUT.md). Letters are read one by one
 * with the stream's message API (`next_by_subj`), so listing creates no consumer; a replay
 * publishes the original bytes to the original subject with the original routing headers.
 */
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { StoredMsg } from "@nats-io/jetstream";
import { MailboxStatus } from "../mailbox-status.ts";
import { DeadLetterKind, ReplayRefusal } from "../dead-letters.ts";
import type { DeadLetter, DeadLetterFilter, DeadLetterStore, ReplayResult } from "../dead-letters.ts";
import { NatsHeader } from "../../protocol/messages.ts";
import { isNoMessageFound } from "./nats-errors.ts";
import type { NatsExchange } from "./nats-exchange.ts";

/** Header names of a dead letter (written by `NatsExchange.deadLetter`). */
const Header = {
  Reason: "Academy-Dead-Reason",
  Error: "Academy-Dead-Error",
  OriginalSubject: "Academy-Original-Subject",
  /** The original's routing headers come back under these names on a replay. */
  Original: "Academy-Original-",
} as const;

/** Routing headers restored on a replay (the message id is new: see {@link NatsDeadLetters.replay}). */
const RESTORED: readonly string[] = [NatsHeader.Source, NatsHeader.ReplyTo, NatsHeader.Tag];

/** The dead-letter stream of one NATS exchange. */
export class NatsDeadLetters implements DeadLetterStore {
  readonly #ctx: NatsExchange;

  constructor(ctx: NatsExchange) {
    this.#ctx = ctx;
  }

  async list(filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
    const { layout } = this.#ctx;
    const subject =
      filter.mailbox !== undefined
        ? layout.deadLetterSubject(filter.mailbox)
        : filter.pool !== undefined
          ? layout.poolDeadLetterSubject(filter.pool)
          : filter.kind === DeadLetterKind.Launch
            ? `${layout.prefix}.dlq.launch.>`
            : filter.kind === DeadLetterKind.Event
              ? `${layout.prefix}.dlq.event.>`
              : layout.deadLetterSubjects;
    const found: DeadLetter[] = [];
    const limit = filter.limit ?? Number.POSITIVE_INFINITY;
    for (let seq = Math.max(1, Math.floor((filter.after ?? 0) + 1)); found.length < limit; ) {
      const stored = await this.#read({ seq, next_by_subj: subject });
      if (stored === undefined) break;
      seq = stored.seq + 1;
      const letter = this.#letter(stored);
      if (matches(letter, filter)) found.push(letter);
    }
    return found;
  }

  async get(id: number): Promise<DeadLetter | undefined> {
    if (!Number.isInteger(id) || id < 1) return undefined;
    const stored = await this.#read({ seq: id });
    return stored === undefined ? undefined : this.#letter(stored);
  }

  /**
   * Republish the letter to its original subject, then remove it. The copy gets the message id
   * `replay:<stream>:<id>`, so replaying the same letter twice within the duplicate window stores
   * it once; the original's id is not reused (the mailbox stream would drop it as a duplicate
   * for as long as the original's window lasts).
   */
  async replay(id: number): Promise<ReplayResult> {
    const letter = await this.get(id);
    if (letter === undefined) return { replayed: false, refusal: ReplayRefusal.Missing, detail: `no dead letter ${id}` };
    if (letter.kind === DeadLetterKind.Event) {
      return {
        replayed: false,
        refusal: ReplayRefusal.Event,
        detail: `dead letter ${id} is an event of ${letter.originalSubject ?? "?"}: a replay would reach every subscriber of the subject; publish it again where wanted`,
      };
    }
    const origin = letter.originalSubject;
    const { layout } = this.#ctx;
    if (origin === undefined || !(origin.startsWith(`${layout.prefix}.mbox.`) || origin.startsWith(`${layout.prefix}.launch.`))) {
      return { replayed: false, refusal: ReplayRefusal.NoOrigin, detail: `dead letter ${id} names no mailbox or launch subject of this exchange` };
    }
    const uid = letter.kind === DeadLetterKind.Mailbox ? letter.mailbox : letter.agent;
    const status = uid === undefined ? MailboxStatus.Missing : await this.#ctx.registry.status(uid);
    if (status !== MailboxStatus.Active) {
      return {
        replayed: false,
        refusal: ReplayRefusal.MailboxInactive,
        detail: `mailbox ${uid ?? "(none)"} is ${status}: a replay would not be handled; launch the agent again instead`,
      };
    }
    const headers = natsHeaders();
    for (const name of RESTORED) {
      const value = letter.headers[`${Header.Original}${name.replace(/^(Nats|Academy)-/, "")}`];
      if (value !== undefined) headers.set(name, value);
    }
    // A replay stores the request again (a new sequence): its agent reads its result record first.
    headers.set(NatsHeader.Resent, "1");
    const msgID = `replay:${layout.deadLetterStream}:${id}`;
    await this.#ctx.retry("replay dead letter", () => this.#ctx.js.publish(origin, letter.data, { headers, msgID }));
    await this.remove(id);
    return { replayed: true };
  }

  async remove(id: number): Promise<boolean> {
    if (!Number.isInteger(id) || id < 1) return false;
    const { jsm, layout } = this.#ctx;
    try {
      return await this.#ctx.retry("remove dead letter", () => jsm.streams.deleteMessage(layout.deadLetterStream, id, false));
    } catch (error) {
      if (isNoMessageFound(error)) return false;
      throw error;
    }
  }

  async #read(query: { seq: number; next_by_subj?: string }): Promise<StoredMsg | undefined> {
    const { jsm, layout } = this.#ctx;
    try {
      const stored = await this.#ctx.retry("read dead letters", () => jsm.streams.getMessage(layout.deadLetterStream, query as never));
      return stored ?? undefined;
    } catch (error) {
      if (isNoMessageFound(error)) return undefined;
      throw error;
    }
  }

  #letter(stored: StoredMsg): DeadLetter {
    const headers: Record<string, string> = {};
    for (const key of stored.header?.keys() ?? []) headers[key] = stored.header.get(key);
    const { prefix } = this.#ctx.layout;
    const rest = stored.subject.slice(`${prefix}.dlq.`.length);
    const originalSubject = headers[Header.OriginalSubject];
    if (rest.startsWith("event.")) {
      return base(stored, headers, { kind: DeadLetterKind.Event, agent: rest.slice("event.".length), handler: headers["Academy-Event-Handler"] });
    }
    if (rest.startsWith("launch.")) {
      const agent = originalSubject?.startsWith(`${prefix}.launch.`) ? originalSubject.split(".").at(-1) : undefined;
      return base(stored, headers, { kind: DeadLetterKind.Launch, pool: rest.slice("launch.".length), agent });
    }
    return base(stored, headers, { kind: DeadLetterKind.Mailbox, mailbox: rest });
  }
}

function base(stored: StoredMsg, headers: Record<string, string>, where: Pick<DeadLetter, "kind" | "mailbox" | "pool" | "agent" | "handler">): DeadLetter {
  return {
    id: stored.seq,
    ...where,
    time: stored.time,
    reason: headers[Header.Reason],
    error: headers[Header.Error],
    originalSubject: headers[Header.OriginalSubject],
    headers,
    data: stored.data,
  };
}

function matches(letter: DeadLetter, filter: DeadLetterFilter): boolean {
  if (filter.kind !== undefined && letter.kind !== filter.kind) return false;
  if (filter.reason !== undefined && letter.reason !== filter.reason) return false;
  if (filter.since !== undefined && letter.time < filter.since) return false;
  if (filter.before !== undefined && letter.time >= filter.before) return false;
  return true;
}

/**
 * The JetStream API requests that open a mailbox (delete its consumer, create it again, read the
 * first or last sequence of its subject), sent through the exchange's shared-inbox publisher
 * (`NatsExchange.publishRecord`) rather than nats.js' `jsm.consumers` / `jsm.streams`, whose every
 * request goes through `nc.request()` and builds an `Error` when it completes, and a second one
 * (a `JetStreamApiError` with its stack) for the "not found" that opening a new mailbox always
 * meets. A host opens one mailbox per agent it starts (docs/BENCHMARKS.md section 3). The subjects
 * and bodies are those nats.js sends to nats-server 2.9 and later.
 */
import type { ConsumerConfig, JetStreamManager } from "@nats-io/jetstream";
import type { RecordPublisher } from "./kv-records.ts";
import { isConsumerNotFound, isNoMessageFound } from "./nats-errors.ts";

const encoder = new TextEncoder();

/**
 * The JetStream API prefix of `jsm` (`$JS.API`, or `$JS.<domain>.API`): nats.js' `prefix` of its
 * API clients, not on the `JetStreamManager` interface (the @nats-io packages are pinned to one
 * exact version).
 */
export function apiPrefix(jsm: JetStreamManager): string {
  return (jsm as unknown as { readonly prefix: string }).prefix;
}

/** What a consumer creation answers, the fields read here. */
export interface CreatedConsumer {
  readonly config: { readonly deliver_subject?: string };
}

/** JetStream API requests of one connection. */
export class JsApiRequests {
  readonly #prefix: string;
  readonly #publish: RecordPublisher;

  constructor(jsm: JetStreamManager, publish: RecordPublisher) {
    this.#prefix = apiPrefix(jsm);
    this.#publish = publish;
  }

  /** `jsm.consumers.delete`: false if there was no such consumer. */
  async deleteConsumer(stream: string, name: string): Promise<boolean> {
    try {
      await this.#publish("delete consumer", `${this.#prefix}.CONSUMER.DELETE.${stream}.${name}`, new Uint8Array(0), undefined);
      return true;
    } catch (error) {
      if (isConsumerNotFound(error)) return false;
      throw error;
    }
  }

  /**
   * `jsm.consumers.add` of a named consumer with one filter subject (the `CONSUMER.CREATE` request
   * with the name and filter in the subject, as nats.js sends it to servers from 2.9 on).
   */
  async addConsumer(stream: string, config: Partial<ConsumerConfig> & { readonly durable_name: string; readonly filter_subject: string }): Promise<CreatedConsumer> {
    const subject = `${this.#prefix}.CONSUMER.CREATE.${stream}.${config.durable_name}.${config.filter_subject}`;
    const body = encoder.encode(JSON.stringify({ config, stream_name: stream, action: "create", pedantic: false }));
    return (await this.#publish("create consumer", subject, body, undefined)) as unknown as CreatedConsumer;
  }

  /** The first stream sequence of `subject` (`STREAM.MSG.GET` by `next_by_subj` from 1, at the stream's leader); 0 if none. */
  async firstSequence(stream: string, subject: string): Promise<number> {
    return await this.#sequence("read first sequence", stream, { seq: 1, next_by_subj: subject });
  }

  /** The last stream sequence of `subject` (`STREAM.MSG.GET` by `last_by_subj`, at the stream's leader); 0 if none. */
  async lastSequence(stream: string, subject: string): Promise<number> {
    return await this.#sequence("read last sequence", stream, { last_by_subj: subject });
  }

  async #sequence(what: string, stream: string, request: object): Promise<number> {
    try {
      const reply = (await this.#publish(what, `${this.#prefix}.STREAM.MSG.GET.${stream}`, encoder.encode(JSON.stringify(request)), undefined)) as unknown as {
        readonly message?: { readonly seq: number };
      };
      return reply.message?.seq ?? 0;
    } catch (error) {
      if (isNoMessageFound(error)) return 0;
      throw error;
    }
  }
}

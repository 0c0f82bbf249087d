/**
 * Answering requests: publish the response (and record it, for effectively-once actions), then
 * settle the request's delivery. A request is acknowledged only once its response is out and its
 * record stored (docs/PROTOCOL.md sections 10.1 and 10.10), and handed back for redelivery when the
 * exchange could not take the response.
 */
import { ClientClosedError, ExchangeUnavailableError, PayloadTooLargeError, SerializationError } from "../errors.ts";
import type { AgentExchangeClient, RequestDelivery } from "../exchange/exchange-client.ts";
import type { AgentInterceptor, OutboundResponseInput } from "../interceptors/agent-interceptor.ts";
import { composeInterceptors } from "../interceptors/interceptors.ts";
import { toFailure } from "../protocol/failure.ts";
import { isEmptyHeaders } from "../protocol/headers.ts";
import { MessageType } from "../protocol/messages.ts";
import type { RequestMessage, ResponseBody } from "../protocol/messages.ts";
import type { Logger } from "../util/logger.ts";

/** How long a request whose response could not be sent waits before it is delivered again, in ms. */
export const RESPONSE_RETRY_DELAY_MS = 1000;

/** Sends one agent's responses through its exchange client and the `outboundResponse` interceptors. */
export class Responder {
  readonly #logger: Logger;
  /** The composed `outboundResponse` hooks, if any interceptor has one. */
  readonly #outbound: ((input: OutboundResponseInput) => Promise<void>) | undefined;
  #client: AgentExchangeClient | undefined;

  constructor(logger: Logger, interceptors: readonly AgentInterceptor[]) {
    this.#logger = logger;
    this.#outbound = composeInterceptors(interceptors, "outboundResponse", (input) =>
      this.#client!.respond(input.request, input.response, isEmptyHeaders(input.headers) ? undefined : input.headers),
    );
  }

  /** Use `client` from now on (the engine's client, once it is open). */
  attach(client: AgentExchangeClient): void {
    this.#client = client;
  }

  /**
   * Answer `request` with `body`, then acknowledge `delivery` and any `duplicates` (redeliveries of
   * the same request), or hand them back when the exchange was unreachable. With `record`, the
   * result record is written at the same time, and the deliveries are settled once both are done.
   * `settled`, if given, is called with the outcome just before the promise resolves.
   * @returns true when acknowledged (the response went out or can never go out), false when handed back.
   */
  answer(
    request: RequestMessage,
    body: ResponseBody,
    delivery: RequestDelivery,
    duplicates?: readonly RequestDelivery[],
    record?: () => Promise<unknown>,
    settled?: (acked: boolean) => void,
  ): Promise<boolean> {
    // The record is written concurrently with the response: off the caller's critical path, and
    // stored before the acknowledgement (a failed response is handed back, and its redelivery is
    // answered from the record). One join and three promises per answer (the send's observer, the
    // record's observer, the answer's own), not a promise per step.
    return new Promise<boolean>((resolve) => {
      const join = new AnswerJoin(this.#logger, delivery, duplicates, record === undefined ? 1 : 2, settled, resolve);
      this.#respond(request, body, join);
      if (record !== undefined) this.#record(request, record, join);
    });
  }

  /**
   * Publish a response, and tell `join` whether it went out. Results too large or not encodable
   * are replaced by the error. Not delivered (false) when the exchange was unreachable (the
   * request should be delivered again); delivered (true) when the response went out or can never
   * go out (then it is logged and dropped).
   */
  #respond(request: RequestMessage, body: ResponseBody, join: AnswerJoin): void {
    let sent: Promise<void>;
    try {
      sent = this.#send(request, body);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      () => join.responded(true),
      (error: unknown) =>
        this.#respondWithError(request, error).then(
          (delivered) => join.responded(delivered),
          () => join.responded(false),
        ),
    );
  }

  /** The response could not be sent: send the error instead when the result was the problem. */
  async #respondWithError(request: RequestMessage, error: unknown): Promise<boolean> {
    if (!(error instanceof PayloadTooLargeError || error instanceof SerializationError)) return this.#undelivered(request, error);
    try {
      await this.#send(request, { type: MessageType.ErrorResponse, error: toFailure(error) });
      return true;
    } catch (second) {
      return this.#undelivered(request, second);
    }
  }

  /**
   * Send a response that does not end the request (a stream's items, a progress report) through
   * the `outboundResponse` interceptors; the request stays unacknowledged.
   * @throws what the exchange raises (`PayloadTooLargeError`, `ExchangeUnavailableError`, ...).
   */
  sendFrame(request: RequestMessage, body: ResponseBody): Promise<void> {
    return this.#send(request, body);
  }

  /** Write the request's result record, then tell `join`; a failure is logged (a redelivery would then run it again). */
  #record(request: RequestMessage, record: () => Promise<unknown>, join: AnswerJoin): void {
    let recording: Promise<unknown>;
    try {
      recording = record();
    } catch (error) {
      recording = Promise.reject(error);
    }
    recording.then(
      () => join.recorded(),
      (error: unknown) => {
        this.#logger.warn({ err: error, tag: request.tag }, "could not record the result; a redelivery of this request would run it again");
        join.recorded();
      },
    );
  }

  /** Send a response through the `outboundResponse` interceptors. */
  #send(request: RequestMessage, body: ResponseBody): Promise<void> {
    const outbound = this.#outbound;
    if (outbound === undefined) return this.#client!.respond(request, body);
    return outbound({ request, response: body, headers: {} });
  }

  /** A response that did not go out: retry later only if the exchange was unreachable. */
  #undelivered(request: RequestMessage, error: unknown): boolean {
    if (error instanceof ExchangeUnavailableError || error instanceof ClientClosedError) {
      this.#logger.warn({ err: error, tag: request.tag }, "could not send response; the request will be delivered again");
      return false;
    }
    this.#logger.error({ err: error, tag: request.tag }, "response cannot be delivered; dropped");
    return true;
  }
}

/**
 * The end of one answer: waits for the response to go out (or fail) and, with a record, for the
 * record to be written, then acknowledges the deliveries (or hands them back) and resolves.
 */
class AnswerJoin {
  readonly #logger: Logger;
  readonly #delivery: RequestDelivery;
  readonly #duplicates: readonly RequestDelivery[] | undefined;
  readonly #settled: ((acked: boolean) => void) | undefined;
  readonly #resolve: (acked: boolean) => void;
  /** What is still awaited: the response, and the record if there is one. */
  #waiting: number;
  #delivered = false;

  constructor(
    logger: Logger,
    delivery: RequestDelivery,
    duplicates: readonly RequestDelivery[] | undefined,
    waiting: number,
    settled: ((acked: boolean) => void) | undefined,
    resolve: (acked: boolean) => void,
  ) {
    this.#logger = logger;
    this.#delivery = delivery;
    this.#duplicates = duplicates;
    this.#waiting = waiting;
    this.#settled = settled;
    this.#resolve = resolve;
  }

  /** The response went out (true), or could not and should be retried (false). */
  responded(delivered: boolean): void {
    this.#delivered = delivered;
    if (--this.#waiting === 0) this.#settle();
  }

  /** The record was written, or could not be (logged). */
  recorded(): void {
    if (--this.#waiting === 0) this.#settle();
  }

  /**
   * Acknowledge the deliveries once the response is out, or hand them back. Never throws (it runs
   * in the observers of the response's and the record's promises): a delivery that cannot be
   * settled (its connection closed) is logged and counts as handed back, as the server will
   * deliver it again.
   */
  #settle(): void {
    let acked = this.#delivered;
    const duplicates = this.#duplicates;
    try {
      if (acked) {
        this.#delivery.ack();
        if (duplicates !== undefined) for (const duplicate of duplicates) duplicate.ack();
      } else {
        this.#delivery.nak(RESPONSE_RETRY_DELAY_MS);
        if (duplicates !== undefined) for (const duplicate of duplicates) duplicate.nak(RESPONSE_RETRY_DELAY_MS);
      }
    } catch (error) {
      this.#logger.warn({ err: error }, "could not settle a request's delivery; it will be delivered again");
      acked = false;
    }
    this.#settled?.(acked);
    this.#resolve(acked);
  }
}

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
   * @returns true when acknowledged (the response went out or can never go out), false when handed back.
   */
  answer(
    request: RequestMessage,
    body: ResponseBody,
    delivery: RequestDelivery,
    duplicates?: readonly RequestDelivery[],
    record?: () => Promise<unknown>,
  ): Promise<boolean> {
    // The record is written concurrently with the response: off the caller's critical path, and
    // stored before the acknowledgement (a failed response is handed back, and its redelivery is
    // answered from the record). Not async, and no Promise.all: neither promise rejects (both
    // turn failures into values), so waiting for one then the other is the same join with two
    // promises fewer per answer.
    const responded = this.#respond(request, body);
    if (record === undefined) return responded.then((delivered) => this.#settle(delivered, delivery, duplicates));
    const recorded = this.#record(request, record);
    return responded.then((delivered) => recorded.then(() => this.#settle(delivered, delivery, duplicates)));
  }

  /** Acknowledge the deliveries once the response is out, or hand them back; returns whether acknowledged. */
  #settle(delivered: boolean, delivery: RequestDelivery, duplicates: readonly RequestDelivery[] | undefined): boolean {
    if (!delivered) {
      delivery.nak(RESPONSE_RETRY_DELAY_MS);
      if (duplicates !== undefined) for (const duplicate of duplicates) duplicate.nak(RESPONSE_RETRY_DELAY_MS);
      return false;
    }
    delivery.ack();
    if (duplicates !== undefined) for (const duplicate of duplicates) duplicate.ack();
    return true;
  }

  /**
   * Publish a response. Results too large or not encodable are replaced by the error.
   * @returns false when the exchange was unreachable (the request should be delivered again);
   * true when the response went out or can never go out (then it is logged and dropped).
   */
  #respond(request: RequestMessage, body: ResponseBody): Promise<boolean> {
    // Not async: the common case is one promise (the send's, then `true`); never rejects.
    let sent: Promise<void>;
    try {
      sent = this.#send(request, body);
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.then(
      () => true,
      (error: unknown) => this.#respondWithError(request, error),
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

  /** Write the request's result record; a failure is logged (a redelivery would then run it again). */
  #record(request: RequestMessage, record: () => Promise<unknown>): Promise<unknown> {
    let recording: Promise<unknown>;
    try {
      recording = record();
    } catch (error) {
      recording = Promise.reject(error);
    }
    return recording.catch((error: unknown) => {
      this.#logger.warn({ err: error, tag: request.tag }, "could not record the result; a redelivery of this request would run it again");
    });
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

/**
 * The wire protocol: message shapes and the one mapper each way between the CBOR envelope and the
 * internal message types. Documented for other languages in docs/PROTOCOL.md; keep both in step.
 */
import { IncompatibleProtocolError, MalformedMessageError } from "../errors.ts";
import type { Failure } from "./failure.ts";
import { isFailure } from "./failure.ts";
import { headersProblem } from "./headers.ts";
import type { MessageHeaders } from "./headers.ts";
import { EntityRole } from "../identifiers.ts";

/** The protocol version this library writes and reads (envelope field `v`). */
export const PROTOCOL_VERSION = 1;

/** Message types (envelope field `type`). */
export const MessageType = {
  ActionRequest: "action-request",
  PingRequest: "ping-request",
  CancelRequest: "cancel-request",
  ShutdownRequest: "shutdown-request",
  ActionResponse: "action-response",
  SuccessResponse: "success-response",
  ErrorResponse: "error-response",
} as const;
/** A message type (envelope field `type`). */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * NATS headers of mailbox messages, readable without decoding the body so that even an
 * undecodable request can be answered. This library writes `Nats-Msg-Id` and `Academy-Src` on
 * every message it puts in a mailbox; `Academy-Tag` and `Academy-Reply-To` are read (as
 * fallbacks) for foreign senders that set them.
 */
export const NatsHeader = {
  /** JetStream de-duplication id: the request tag for requests, `r:<tag>` for responses. */
  MsgId: "Nats-Msg-Id",
  /** Uid of the sender's mailbox. */
  Source: "Academy-Src",
  /** Request tag. */
  Tag: "Academy-Tag",
  /** Core NATS subject for the response, when the sender has no mailbox. */
  ReplyTo: "Academy-Reply-To",
  /**
   * `1` on every publication of a request after the first attempt (a retry, a relay's re-send, a
   * replayed dead letter, a reminder fire): it may be stored again after the stream's duplicate
   * window, so the agent reads its result record before running it (PROTOCOL.md 10.10).
   */
  Resent: "Academy-Resent",
} as const;

/**
 * Whether `subject` may be used as a `replyTo`: a literal subject (no wildcards, no whitespace,
 * no empty tokens) outside the `$` system and API namespaces.
 */
export function isValidReplySubject(subject: string): boolean {
  return subject.length <= 512 && !subject.startsWith("$") && /^[^\s.*>]+(\.[^\s.*>]+)*$/.test(subject);
}

/** Routing fields shared by every message. */
export interface Routing {
  /** Request id; a response carries the tag of the request it answers. */
  readonly tag: string;
  /**
   * Uid of the destination mailbox. Responses published to a `replyTo` subject have none (empty
   * here, absent on the wire).
   */
  readonly dest: string;
  /** Uid of the sender's mailbox; responses go there unless `replyTo` is set. Absent: no reply. */
  readonly src?: string | undefined;
  /**
   * Requests: whether `src` is an agent's or a user's mailbox, as the sender states it (envelope
   * key `srcRole`); absent when unstated. Read by `ActionContext.isAgentSource`.
   */
  readonly srcRole?: EntityRole | undefined;
  /** Core NATS subject to publish the response to instead of the sender's mailbox. */
  readonly replyTo?: string | undefined;
  /**
   * Message headers (envelope key `headers`), set and read by interceptors. Never copied from a
   * request to its response. Absent when there are none.
   */
  readonly headers?: MessageHeaders | undefined;
  /**
   * The site whose exchange holds the `src` mailbox, on a message that crossed from another site
   * (envelope key `srcSite`): where the response goes. Absent: the receiver's own site.
   */
  readonly srcSite?: string | undefined;
  /**
   * The site whose exchange holds the `dest` mailbox, when it is not the sender's own (internal:
   * it routes the message through the outbox to that site and is not written on the wire).
   */
  readonly destSite?: string | undefined;
}

/** Call an action: its name and positional arguments. */
export interface ActionRequest extends Routing {
  readonly type: typeof MessageType.ActionRequest;
  readonly action: string;
  readonly args: readonly unknown[];
}
/** Ping: answered with a success once the agent has started. */
export interface PingRequest extends Routing {
  readonly type: typeof MessageType.PingRequest;
}
/** Cancel a running or queued action of the same agent. */
export interface CancelRequest extends Routing {
  readonly type: typeof MessageType.CancelRequest;
  /** Tag of the action request to cancel. */
  readonly target: string;
}
/** Shut the agent down (answered before it starts shutting down). */
export interface ShutdownRequest extends Routing {
  readonly type: typeof MessageType.ShutdownRequest;
  /** Override the agent's config (`terminateOnSuccess`) termination decision; absent means "let the config decide". */
  readonly terminate?: boolean | undefined;
}
/** An action's result. */
export interface ActionResponse extends Routing {
  readonly type: typeof MessageType.ActionResponse;
  readonly result: unknown;
}
/** Success of a ping, cancel or shutdown request. */
export interface SuccessResponse extends Routing {
  readonly type: typeof MessageType.SuccessResponse;
}
/** A failure: what an action threw, or why a request could not be served. */
export interface ErrorResponse extends Routing {
  readonly type: typeof MessageType.ErrorResponse;
  readonly error: Failure;
}

/** Any request. */
export type RequestMessage = ActionRequest | PingRequest | CancelRequest | ShutdownRequest;
/** Any response. */
export type ResponseMessage = ActionResponse | SuccessResponse | ErrorResponse;
/** Any message. */
export type Message = RequestMessage | ResponseMessage;

/** A request a caller makes: a request message without its routing fields (cancels are sent by clients themselves). */
export type RequestBody =
  | { readonly type: typeof MessageType.ActionRequest; readonly action: string; readonly args: readonly unknown[] }
  | { readonly type: typeof MessageType.PingRequest }
  | { readonly type: typeof MessageType.ShutdownRequest; readonly terminate?: boolean | undefined };

/** A response body: a response message without its routing fields. */
export type ResponseBody =
  | { readonly type: typeof MessageType.ActionResponse; readonly result: unknown }
  | { readonly type: typeof MessageType.SuccessResponse }
  | { readonly type: typeof MessageType.ErrorResponse; readonly error: Failure };

const requestTypes: ReadonlySet<string> = new Set([
  MessageType.ActionRequest,
  MessageType.PingRequest,
  MessageType.CancelRequest,
  MessageType.ShutdownRequest,
]);

/** Whether `message` is a request (as opposed to a response). */
export function isRequest(message: Message): message is RequestMessage {
  return requestTypes.has(message.type);
}

/**
 * The response to `request`, addressed back to its sender: to its `replyTo` subject when it has one
 * (then with no `dest`), else to its `src` mailbox.
 */
export function responseRouting(request: Routing): Routing {
  const dest = request.replyTo === undefined ? (request.src ?? "") : "";
  // A request from another site is answered there (through the outbox to that site).
  if (request.srcSite !== undefined && request.replyTo === undefined) {
    return { tag: request.tag, dest, src: request.dest, replyTo: undefined, destSite: request.srcSite };
  }
  return { tag: request.tag, dest, src: request.dest, replyTo: request.replyTo };
}

/**
 * A request message from its body and routing fields (no spreads: this runs once per call).
 * @param headers - omitted from the message when undefined.
 * @param destSite - the site of `dest` when it is another site's mailbox (docs/EDGE.md).
 */
export function requestMessage(
  body: RequestBody,
  tag: string,
  dest: string,
  src: string | undefined,
  replyTo: string | undefined,
  headers: MessageHeaders | undefined,
  destSite?: string,
  srcRole?: EntityRole,
): RequestMessage {
  switch (body.type) {
    case MessageType.ActionRequest:
      return { type: body.type, tag, dest, src, srcRole, replyTo, headers, destSite, action: body.action, args: body.args };
    case MessageType.PingRequest:
      return { type: body.type, tag, dest, src, srcRole, replyTo, headers, destSite };
    case MessageType.ShutdownRequest:
      return { type: body.type, tag, dest, src, srcRole, replyTo, headers, destSite, terminate: body.terminate };
    default:
      return assertNever(body);
  }
}

/**
 * The response to `request` with `body`, addressed back to its sender (see {@link responseRouting}),
 * from `src`. Request headers are not copied: `headers` are the response's own.
 */
export function responseMessage(request: Routing, body: ResponseBody, src: string, headers: MessageHeaders | undefined): ResponseMessage {
  const replyTo = request.replyTo;
  const dest = replyTo === undefined ? (request.src ?? "") : "";
  // A request from another site is answered there (through the outbox to that site).
  const destSite = replyTo === undefined ? request.srcSite : undefined;
  switch (body.type) {
    case MessageType.ActionResponse:
      return { type: body.type, tag: request.tag, dest, src, replyTo, headers, destSite, result: body.result };
    case MessageType.SuccessResponse:
      return { type: body.type, tag: request.tag, dest, src, replyTo, headers, destSite };
    case MessageType.ErrorResponse:
      return { type: body.type, tag: request.tag, dest, src, replyTo, headers, destSite, error: body.error };
    default:
      return assertNever(body);
  }
}

/** The wire form: a CBOR map with these keys (absent optional fields are omitted). */
export type Envelope = { v: number; type: string; tag: string } & Record<string, unknown>;

/** Internal message to wire envelope. */
export function toEnvelope(message: Message): Envelope {
  const envelope: Envelope = { v: PROTOCOL_VERSION, type: message.type, tag: message.tag };
  if (message.dest !== "") envelope.dest = message.dest;
  if (message.src !== undefined) envelope.src = message.src;
  if (message.srcRole !== undefined) envelope.srcRole = message.srcRole;
  if (message.replyTo !== undefined) envelope.replyTo = message.replyTo;
  if (message.srcSite !== undefined) envelope.srcSite = message.srcSite;
  if (message.headers !== undefined) envelope.headers = message.headers;
  switch (message.type) {
    case MessageType.ActionRequest:
      envelope.action = message.action;
      envelope.args = message.args;
      break;
    case MessageType.CancelRequest:
      envelope.target = message.target;
      break;
    case MessageType.ShutdownRequest:
      if (message.terminate !== undefined) envelope.terminate = message.terminate;
      break;
    case MessageType.ActionResponse:
      envelope.result = message.result;
      break;
    case MessageType.ErrorResponse:
      envelope.error = message.error;
      break;
    case MessageType.PingRequest:
    case MessageType.SuccessResponse:
      break;
    default:
      assertNever(message);
  }
  return envelope;
}

/**
 * Wire envelope (already CBOR-decoded) to internal message.
 * @throws {IncompatibleProtocolError} for another protocol version.
 * @throws {MalformedMessageError} for anything that is not a valid envelope.
 */
export function fromEnvelope(value: unknown): Message {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MalformedMessageError("Message is not a CBOR map");
  }
  const e = value as Record<string, unknown>;
  if (e.v === undefined) throw new MalformedMessageError("Field 'v' (protocol version) is missing");
  if (typeof e.v !== "number") throw new MalformedMessageError(`Field 'v' (protocol version) must be a number (got ${typeof e.v})`);
  if (e.v !== PROTOCOL_VERSION) {
    throw new IncompatibleProtocolError(
      `Unsupported protocol version ${String(e.v)}; this client speaks version ${PROTOCOL_VERSION}`,
      { version: e.v, supported: PROTOCOL_VERSION },
    );
  }
  const tag = requireString(e, "tag");
  const response = typeof e.type === "string" && e.type.endsWith("-response");
  // Requests name their mailbox; responses to a replyTo subject have none.
  const dest = response ? (optionalString(e, "dest") ?? "") : requireString(e, "dest");
  const src = optionalString(e, "src");
  const srcRole = optionalRole(e.srcRole);
  const replyTo = optionalString(e, "replyTo");
  if (replyTo !== undefined && !isValidReplySubject(replyTo)) {
    throw new MalformedMessageError(`Field 'replyTo' must be a literal subject outside '$' namespaces (got ${JSON.stringify(replyTo)})`);
  }
  const headers = optionalHeaders(e.headers);
  const srcSite = optionalString(e, "srcSite");
  const type = e.type;
  switch (type) {
    case MessageType.ActionRequest: {
      const action = requireString(e, "action");
      const args = e.args ?? [];
      if (!Array.isArray(args)) throw new MalformedMessageError("Field 'args' must be an array");
      return { type, tag, dest, src, srcRole, replyTo, headers, srcSite, action, args };
    }
    case MessageType.PingRequest:
      return { type, tag, dest, src, srcRole, replyTo, headers, srcSite };
    case MessageType.CancelRequest:
      return { type, tag, dest, src, srcRole, replyTo, headers, srcSite, target: requireString(e, "target") };
    case MessageType.ShutdownRequest: {
      const terminate = e.terminate ?? undefined;
      if (terminate !== undefined && typeof terminate !== "boolean") {
        throw new MalformedMessageError("Field 'terminate' must be a boolean or absent");
      }
      return { type, tag, dest, src, srcRole, replyTo, headers, srcSite, terminate };
    }
    case MessageType.ActionResponse:
      return { type, tag, dest, src, replyTo, headers, srcSite, result: e.result };
    case MessageType.SuccessResponse:
      return { type, tag, dest, src, replyTo, headers, srcSite };
    case MessageType.ErrorResponse:
      if (!isFailure(e.error)) throw new MalformedMessageError("Field 'error' must be a failure map");
      return { type, tag, dest, src, replyTo, headers, srcSite, error: e.error };
    default:
      throw new MalformedMessageError(`Unknown message type ${JSON.stringify(type)}`);
  }
}

/** The `srcRole` key: absent or null means unstated; otherwise `"agent"` or `"user"`. */
function optionalRole(value: unknown): EntityRole | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === EntityRole.Agent || value === EntityRole.User) return value;
  throw new MalformedMessageError(`Field 'srcRole' must be "agent", "user" or absent (got ${JSON.stringify(value)})`);
}

/** The `headers` key: absent or null means none; anything else must be a valid headers map. */
function optionalHeaders(value: unknown): MessageHeaders | undefined {
  if (value === undefined || value === null) return undefined;
  const problem = headersProblem(value);
  if (problem !== undefined) throw new MalformedMessageError(`Field 'headers' ${problem}`);
  return value as MessageHeaders;
}

function requireString(e: Record<string, unknown>, key: string): string {
  const v = e[key];
  if (typeof v !== "string" || v.length === 0) {
    throw new MalformedMessageError(`Field '${key}' must be a non-empty string`);
  }
  return v;
}

function optionalString(e: Record<string, unknown>, key: string): string | undefined {
  const v = e[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string" || v.length === 0) throw new MalformedMessageError(`Field '${key}' must be a non-empty string or absent`);
  return v;
}

/** Exhaustiveness check for discriminated unions. */
export function assertNever(value: never): never {
  throw new Error(`Unexpected value: ${JSON.stringify(value)}`);
}

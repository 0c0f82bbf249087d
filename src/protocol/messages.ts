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
  /** Caller → agent: the consumer of a stream allows more items (docs/PROTOCOL.md section 15). */
  StreamCredit: "stream-credit",
  ActionResponse: "action-response",
  SuccessResponse: "success-response",
  ErrorResponse: "error-response",
  /** Agent → caller: items of a stream, numbered from `seq`. */
  StreamItems: "stream-items",
  /** Agent → caller: a stream's end, after `count` items: its return value or its error. */
  StreamEnd: "stream-end",
  /** Agent → caller: progress of an ordinary action, to a caller that asked for it. */
  ActionProgress: "action-progress",
} as const;
/** A message type (envelope field `type`). */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * NATS headers of mailbox messages, readable without decoding the body so that even an
 * undecodable request can be answered. This library writes `Nats-Msg-Id` on every message it puts
 * in a mailbox and `Academy-Src` on every request that has a `src`; `Academy-Tag` and
 * `Academy-Reply-To` are read (as fallbacks) for foreign senders that set them.
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
  /**
   * Present for a call of a streaming action (envelope key `stream`): the items the caller allows
   * before its first credit (its window), a positive integer.
   */
  readonly stream?: number | undefined;
  /** The caller observes progress reports (envelope key `progress: true`). */
  readonly progress?: boolean | undefined;
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
/** More items for a stream: the consumer allows items numbered below `credit` (cumulative). */
export interface StreamCredit extends Routing {
  readonly type: typeof MessageType.StreamCredit;
  /** Tag of the streaming action request. */
  readonly target: string;
  /** Items numbered below this (from 0) may be sent: taken so far plus the window. Only ever grows. */
  readonly credit: number;
}
/** Items of a stream, the first numbered `seq` (items are numbered from 0 in yield order). */
export interface StreamItems extends Routing {
  readonly type: typeof MessageType.StreamItems;
  /** Which run of the generator sent it (a request run again after a crash gets a new one); "" when absent. */
  readonly run: string;
  readonly seq: number;
  readonly items: readonly unknown[];
}
/** A stream's end after `count` items: the generator's return value, or what it threw. */
export interface StreamEnd extends Routing {
  readonly type: typeof MessageType.StreamEnd;
  /** Which run of the generator ended; "" when absent. */
  readonly run: string;
  /** Items sent before this end (the seq of the item that would have come next). */
  readonly count: number;
  readonly result?: unknown;
  /** Present when the stream failed. */
  readonly error?: Failure | undefined;
}
/** Progress of an ordinary action; `seq` counts the reports of one action from 0. */
export interface ActionProgress extends Routing {
  readonly type: typeof MessageType.ActionProgress;
  readonly seq: number;
  readonly progress: unknown;
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
export type RequestMessage = ActionRequest | PingRequest | CancelRequest | ShutdownRequest | StreamCredit;
/** Any response (final ones and the frames of streams and progress before them). */
export type ResponseMessage = ActionResponse | SuccessResponse | ErrorResponse | StreamItems | StreamEnd | ActionProgress;
/** Any message. */
export type Message = RequestMessage | ResponseMessage;

/** A request a caller makes: a request message without its routing fields (cancels are sent by clients themselves). */
export type RequestBody =
  | {
      readonly type: typeof MessageType.ActionRequest;
      readonly action: string;
      readonly args: readonly unknown[];
      /** A streaming call: the window (items allowed before the first credit). */
      readonly stream?: number | undefined;
      /** The caller observes progress reports. */
      readonly progress?: boolean | undefined;
    }
  | { readonly type: typeof MessageType.PingRequest }
  | { readonly type: typeof MessageType.ShutdownRequest; readonly terminate?: boolean | undefined };

/** A response body: a response message without its routing fields. */
export type ResponseBody =
  | { readonly type: typeof MessageType.ActionResponse; readonly result: unknown }
  | { readonly type: typeof MessageType.SuccessResponse }
  | { readonly type: typeof MessageType.ErrorResponse; readonly error: Failure }
  | { readonly type: typeof MessageType.StreamItems; readonly run: string; readonly seq: number; readonly items: readonly unknown[] }
  | {
      readonly type: typeof MessageType.StreamEnd;
      readonly run: string;
      readonly count: number;
      readonly result?: unknown;
      readonly error?: Failure | undefined;
    }
  | { readonly type: typeof MessageType.ActionProgress; readonly seq: number; readonly progress: unknown };

const requestTypes: ReadonlySet<string> = new Set([
  MessageType.ActionRequest,
  MessageType.PingRequest,
  MessageType.CancelRequest,
  MessageType.ShutdownRequest,
  MessageType.StreamCredit,
]);

/**
 * The JetStream de-duplication id (`Nats-Msg-Id`) of a message put into a mailbox: a request's
 * tag; `r:<tag>` for a final response; `r:<tag>:<run>:<seq>`, `r:<tag>:<run>:end` and
 * `r:<tag>:p<seq>` for a stream's items, its end and progress reports. A message retried with the same id is stored once.
 */
export function deduplicationId(message: Message): string {
  switch (message.type) {
    case MessageType.StreamItems:
      return `r:${message.tag}:${message.run}:${message.seq}`;
    case MessageType.StreamEnd:
      return `r:${message.tag}:${message.run}:end`;
    case MessageType.ActionProgress:
      return `r:${message.tag}:p${message.seq}`;
    default:
      return isRequest(message) ? message.tag : `r:${message.tag}`;
  }
}

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
      return {
        type: body.type, tag, dest, src, srcRole, replyTo, headers, destSite, action: body.action, args: body.args,
        stream: body.stream, progress: body.progress,
      };
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
    case MessageType.StreamItems:
      return { type: body.type, tag: request.tag, dest, src, replyTo, headers, destSite, run: body.run, seq: body.seq, items: body.items };
    case MessageType.StreamEnd:
      return {
        type: body.type, tag: request.tag, dest, src, replyTo, headers, destSite, run: body.run, count: body.count, result: body.result, error: body.error,
      };
    case MessageType.ActionProgress:
      return { type: body.type, tag: request.tag, dest, src, replyTo, headers, destSite, seq: body.seq, progress: body.progress };
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
      if (message.stream !== undefined) envelope.stream = message.stream;
      if (message.progress === true) envelope.progress = true;
      break;
    case MessageType.CancelRequest:
      envelope.target = message.target;
      break;
    case MessageType.StreamCredit:
      envelope.target = message.target;
      envelope.credit = message.credit;
      break;
    case MessageType.StreamItems:
      if (message.run !== "") envelope.run = message.run;
      envelope.seq = message.seq;
      envelope.items = message.items;
      break;
    case MessageType.StreamEnd:
      if (message.run !== "") envelope.run = message.run;
      envelope.count = message.count;
      if (message.error !== undefined) envelope.error = message.error;
      else envelope.result = message.result;
      break;
    case MessageType.ActionProgress:
      envelope.seq = message.seq;
      envelope.progress = message.progress;
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
  const response = typeof e.type === "string" && responseTypes.has(e.type);
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
      const stream = e.stream ?? undefined;
      if (stream !== undefined && !isCount(stream, 1)) throw new MalformedMessageError("Field 'stream' must be a positive integer (the window) or absent");
      const progress = e.progress ?? undefined;
      if (progress !== undefined && typeof progress !== "boolean") throw new MalformedMessageError("Field 'progress' must be a boolean or absent");
      return { type, tag, dest, src, srcRole, replyTo, headers, srcSite, action, args, stream, progress };
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
    case MessageType.StreamCredit: {
      const credit = e.credit;
      if (!isCount(credit, 0)) throw new MalformedMessageError("Field 'credit' must be a non-negative integer");
      return { type, tag, dest, src, srcRole, replyTo, headers, srcSite, target: requireString(e, "target"), credit };
    }
    case MessageType.ActionResponse:
      return { type, tag, dest, src, replyTo, headers, srcSite, result: e.result };
    case MessageType.StreamItems: {
      if (!isCount(e.seq, 0)) throw new MalformedMessageError("Field 'seq' must be a non-negative integer");
      if (!Array.isArray(e.items) || e.items.length === 0) throw new MalformedMessageError("Field 'items' must be a non-empty array");
      return { type, tag, dest, src, replyTo, headers, srcSite, run: optionalString(e, "run") ?? "", seq: e.seq, items: e.items };
    }
    case MessageType.StreamEnd: {
      if (!isCount(e.count, 0)) throw new MalformedMessageError("Field 'count' must be a non-negative integer");
      const error = e.error ?? undefined;
      if (error !== undefined && !isFailure(error)) throw new MalformedMessageError("Field 'error' must be a failure map or absent");
      return { type, tag, dest, src, replyTo, headers, srcSite, run: optionalString(e, "run") ?? "", count: e.count, result: e.result, error };
    }
    case MessageType.ActionProgress:
      if (!isCount(e.seq, 0)) throw new MalformedMessageError("Field 'seq' must be a non-negative integer");
      return { type, tag, dest, src, replyTo, headers, srcSite, seq: e.seq, progress: e.progress };
    case MessageType.SuccessResponse:
      return { type, tag, dest, src, replyTo, headers, srcSite };
    case MessageType.ErrorResponse:
      if (!isFailure(e.error)) throw new MalformedMessageError("Field 'error' must be a failure map");
      return { type, tag, dest, src, replyTo, headers, srcSite, error: e.error };
    default:
      throw new MalformedMessageError(`Unknown message type ${JSON.stringify(type)}`);
  }
}

const responseTypes: ReadonlySet<string> = new Set([
  MessageType.ActionResponse,
  MessageType.SuccessResponse,
  MessageType.ErrorResponse,
  MessageType.StreamItems,
  MessageType.StreamEnd,
  MessageType.ActionProgress,
]);

/** Whether `value` is an integer of at least `min` that a double holds exactly. */
function isCount(value: unknown, min: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min;
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

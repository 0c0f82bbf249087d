/**
 * Every error this library raises. One base class ({@link AcademyError}); each error has a `name`
 * equal to its class name and a stable `code`. Context fields (`agentId`, `subject`, ...) are
 * plain properties, and `cause` is passed through.
 *
 * Errors cross the wire as a failure shape (see `protocol/failure.ts`); the classes here are
 * rebuilt on the caller's side from their `name`, so every class takes `(message, options)`.
 */

/** Stable machine-readable error codes. */
export const ErrorCode = {
  /** A bare AcademyError (subclasses have their own codes). */
  Academy: "ACADEMY_ERROR",
  BadEntityId: "BAD_ENTITY_ID",
  MailboxTerminated: "MAILBOX_TERMINATED",
  ActionCancelled: "ACTION_CANCELLED",
  PingCancelled: "PING_CANCELLED",
  ActionInvalidState: "ACTION_INVALID_STATE",
  UnknownAction: "UNKNOWN_ACTION",
  ActionArguments: "ACTION_ARGUMENTS",
  ActionKind: "ACTION_KIND",
  StreamInterrupted: "STREAM_INTERRUPTED",
  InvalidClient: "INVALID_CLIENT",
  IncompatibleProtocol: "INCOMPATIBLE_PROTOCOL",
  MalformedMessage: "MALFORMED_MESSAGE",
  PayloadTooLarge: "PAYLOAD_TOO_LARGE",
  Serialization: "SERIALIZATION",
  RequestTimeout: "REQUEST_TIMEOUT",
  DeliveryLimit: "DELIVERY_LIMIT",
  ClientClosed: "CLIENT_CLOSED",
  SendOnlyClient: "SEND_ONLY_CLIENT",
  ExchangeUnavailable: "EXCHANGE_UNAVAILABLE",
  Authentication: "AUTHENTICATION",
  ExchangeNotFound: "EXCHANGE_NOT_FOUND",
  UnsupportedServer: "UNSUPPORTED_SERVER",
  InvalidConfig: "INVALID_CONFIG",
  AgentDefinition: "AGENT_DEFINITION",
  AgentState: "AGENT_STATE",
  AgentAlreadyLaunched: "AGENT_ALREADY_LAUNCHED",
  UnknownExecutor: "UNKNOWN_EXECUTOR",
  Executor: "EXECUTOR",
  UnknownAgentType: "UNKNOWN_AGENT_TYPE",
  HostFenced: "HOST_FENCED",
  MailboxContended: "MAILBOX_CONTENDED",
  ForeignSite: "FOREIGN_SITE",
  SiteUnreachable: "SITE_UNREACHABLE",
  UnknownSite: "UNKNOWN_SITE",
  CrossSiteOperation: "CROSS_SITE_OPERATION",
  PermissionDenied: "PERMISSION_DENIED",
  StateConflict: "STATE_CONFLICT",
  StateTooLarge: "STATE_TOO_LARGE",
  WaitTimeout: "WAIT_TIMEOUT",
  ErrorGroup: "ERROR_GROUP",
  Remote: "REMOTE_ERROR",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options every error takes: a `cause`, plus the class's context fields. */
export interface AcademyErrorOptions {
  cause?: unknown;
}

/** Base class of every error raised by this library. */
export class AcademyError extends Error {
  override readonly name: string = "AcademyError";
  /** Stable machine-readable code; never parse `message`. */
  readonly code: ErrorCode | string;

  constructor(message: string, options: AcademyErrorOptions & { code?: ErrorCode | string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? ErrorCode.Academy;
  }

  /** Context fields that travel with the error across the wire (JSON/CBOR-safe values only). */
  details(): Record<string, unknown> {
    return {};
  }
}

interface EntityOptions extends AcademyErrorOptions {
  /** The mailbox (agent or user id, as its uid string) the error is about. */
  entityId?: string;
}

/** A mailbox id that the exchange does not know (status `missing`). */
export class BadEntityIdError extends AcademyError {
  override readonly name: string = "BadEntityIdError";
  readonly entityId: string | undefined;
  constructor(message: string, options: EntityOptions = {}) {
    super(message, { ...options, code: ErrorCode.BadEntityId });
    this.entityId = options.entityId;
  }
  override details(): Record<string, unknown> {
    return { entityId: this.entityId };
  }
}

/** The mailbox was terminated: it takes no more messages, and pending requests to it fail. */
export class MailboxTerminatedError extends AcademyError {
  override readonly name: string = "MailboxTerminatedError";
  readonly entityId: string | undefined;
  constructor(message: string, options: EntityOptions = {}) {
    super(message, { ...options, code: ErrorCode.MailboxTerminated });
    this.entityId = options.entityId;
  }
  override details(): Record<string, unknown> {
    return { entityId: this.entityId };
  }
}

/** An agent's mailbox was terminated. */
export class AgentTerminatedError extends MailboxTerminatedError {
  override readonly name: string = "AgentTerminatedError";
}

/** A user client's mailbox was terminated (the client was closed). */
export class UserTerminatedError extends MailboxTerminatedError {
  override readonly name: string = "UserTerminatedError";
}

interface RequestOptions extends AcademyErrorOptions {
  agentId?: string;
  /** Tag (request id) of the request concerned. */
  tag?: string;
}

/** The action was cancelled: by the caller (timeout, abort signal, cancel request) or by shutdown. */
export class ActionCancelledError extends AcademyError {
  override readonly name: string = "ActionCancelledError";
  readonly agentId: string | undefined;
  readonly tag: string | undefined;
  constructor(message: string, options: RequestOptions = {}) {
    super(message, { ...options, code: ErrorCode.ActionCancelled });
    this.agentId = options.agentId;
    this.tag = options.tag;
  }
  override details(): Record<string, unknown> {
    return { agentId: this.agentId, tag: this.tag };
  }
}

/** A ping was cancelled by the caller's abort signal. */
export class PingCancelledError extends AcademyError {
  override readonly name: string = "PingCancelledError";
  readonly agentId: string | undefined;
  constructor(message: string, options: RequestOptions = {}) {
    super(message, { ...options, code: ErrorCode.PingCancelled });
    this.agentId = options.agentId;
  }
  override details(): Record<string, unknown> {
    return { agentId: this.agentId };
  }
}

/** A cancel request named an action that is not running (already finished, or never started). */
export class ActionInvalidStateError extends AcademyError {
  override readonly name: string = "ActionInvalidStateError";
  readonly tag: string | undefined;
  constructor(message: string, options: RequestOptions = {}) {
    super(message, { ...options, code: ErrorCode.ActionInvalidState });
    this.tag = options.tag;
  }
  override details(): Record<string, unknown> {
    return { tag: this.tag };
  }
}

/** The agent has no action of that name. */
export class UnknownActionError extends AcademyError {
  override readonly name: string = "UnknownActionError";
  readonly action: string | undefined;
  readonly agentId: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { action?: string; agentId?: string } = {}) {
    super(message, { ...options, code: ErrorCode.UnknownAction });
    this.action = options.action;
    this.agentId = options.agentId;
  }
  override details(): Record<string, unknown> {
    return { action: this.action, agentId: this.agentId };
  }
}

/**
 * An action was called with more arguments than it takes: an `@action({ context: true })` method
 * takes at most its declared parameters before the context.
 */
export class ActionArgumentsError extends AcademyError {
  override readonly name: string = "ActionArgumentsError";
  readonly action: string | undefined;
  readonly agentId: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { action?: string; agentId?: string } = {}) {
    super(message, { ...options, code: ErrorCode.ActionArguments });
    this.action = options.action;
    this.agentId = options.agentId;
  }
  override details(): Record<string, unknown> {
    return { action: this.action, agentId: this.agentId };
  }
}

/**
 * A streaming action (an `async *` method) was called with `invoke`/`action`, or an ordinary one
 * with `stream`: `streaming` says which kind the action is.
 */
export class ActionKindError extends AcademyError {
  override readonly name: string = "ActionKindError";
  readonly action: string | undefined;
  readonly agentId: string | undefined;
  /** Whether the action is a streaming one (so `stream` is the way to call it). */
  readonly streaming: boolean | undefined;
  constructor(message: string, options: AcademyErrorOptions & { action?: string; agentId?: string; streaming?: boolean } = {}) {
    super(message, { ...options, code: ErrorCode.ActionKind });
    this.action = options.action;
    this.agentId = options.agentId;
    this.streaming = options.streaming;
  }
  override details(): Record<string, unknown> {
    return { action: this.action, agentId: this.agentId, streaming: this.streaming };
  }
}

/**
 * A stream ended without its end: its request was delivered to the agent again after the agent
 * lost it (a crash, a restart) and is not run a second time, or items went missing on the way
 * (a foreign caller's core reply subject). The items received before it were each received once,
 * in order; `received` says how many.
 */
export class StreamInterruptedError extends AcademyError {
  override readonly name: string = "StreamInterruptedError";
  readonly agentId: string | undefined;
  readonly tag: string | undefined;
  /** Items the caller had received when the stream was interrupted, when known. */
  readonly received: number | undefined;
  constructor(message: string, options: RequestOptions & { received?: number } = {}) {
    super(message, { ...options, code: ErrorCode.StreamInterrupted });
    this.agentId = options.agentId;
    this.tag = options.tag;
    this.received = options.received;
  }
  override details(): Record<string, unknown> {
    return { agentId: this.agentId, tag: this.tag, received: this.received };
  }
}

/** A request was sent to a user client's mailbox; only agents serve requests. */
export class InvalidClientError extends AcademyError {
  override readonly name: string = "InvalidClientError";
  constructor(message: string, options: AcademyErrorOptions = {}) {
    super(message, { ...options, code: ErrorCode.InvalidClient });
  }
}

/** A message carries a protocol version this library does not speak. */
export class IncompatibleProtocolError extends AcademyError {
  override readonly name: string = "IncompatibleProtocolError";
  readonly version: unknown;
  readonly supported: number | undefined;
  constructor(message: string, options: AcademyErrorOptions & { version?: unknown; supported?: number } = {}) {
    super(message, { ...options, code: ErrorCode.IncompatibleProtocol });
    this.version = options.version;
    this.supported = options.supported;
  }
  override details(): Record<string, unknown> {
    return { version: this.version, supported: this.supported };
  }
}

/** Bytes on a mailbox subject that are not a valid protocol envelope. */
export class MalformedMessageError extends AcademyError {
  override readonly name: string = "MalformedMessageError";
  readonly subject: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { subject?: string } = {}) {
    super(message, { ...options, code: ErrorCode.MalformedMessage });
    this.subject = options.subject;
  }
  override details(): Record<string, unknown> {
    return { subject: this.subject };
  }
}

/** An encoded message is larger than the exchange accepts (the server's `max_payload`). */
export class PayloadTooLargeError extends AcademyError {
  override readonly name: string = "PayloadTooLargeError";
  /** Size of the encoded message, in bytes. */
  readonly size: number | undefined;
  /** Largest message the exchange accepts, in bytes. */
  readonly limit: number | undefined;
  constructor(message: string, options: AcademyErrorOptions & { size?: number; limit?: number } = {}) {
    super(message, { ...options, code: ErrorCode.PayloadTooLarge });
    this.size = options.size;
    this.limit = options.limit;
  }
  override details(): Record<string, unknown> {
    return { size: this.size, limit: this.limit };
  }
}

/** A value cannot be encoded to (or decoded from) CBOR. */
export class SerializationError extends AcademyError {
  override readonly name: string = "SerializationError";
  constructor(message: string, options: AcademyErrorOptions = {}) {
    super(message, { ...options, code: ErrorCode.Serialization });
  }
}

/** A request got no response within its `timeoutMs`; for actions a cancel request was sent. */
export class RequestTimeoutError extends AcademyError {
  override readonly name: string = "RequestTimeoutError";
  readonly agentId: string | undefined;
  readonly timeoutMs: number | undefined;
  readonly operation: string | undefined;
  constructor(
    message: string,
    options: AcademyErrorOptions & { agentId?: string; timeoutMs?: number; operation?: string } = {},
  ) {
    super(message, { ...options, code: ErrorCode.RequestTimeout });
    this.agentId = options.agentId;
    this.timeoutMs = options.timeoutMs;
    this.operation = options.operation;
  }
  override details(): Record<string, unknown> {
    return { agentId: this.agentId, timeoutMs: this.timeoutMs, operation: this.operation };
  }
}

/** A request was delivered more often than the mailbox allows (it kept crashing its agent). */
export class DeliveryLimitError extends AcademyError {
  override readonly name: string = "DeliveryLimitError";
  readonly deliveries: number | undefined;
  constructor(message: string, options: AcademyErrorOptions & { deliveries?: number } = {}) {
    super(message, { ...options, code: ErrorCode.DeliveryLimit });
    this.deliveries = options.deliveries;
  }
  override details(): Record<string, unknown> {
    return { deliveries: this.deliveries };
  }
}

/** The exchange client (or manager) was closed; it can no longer be used. */
export class ClientClosedError extends AcademyError {
  override readonly name: string = "ClientClosedError";
  constructor(message: string, options: AcademyErrorOptions = {}) {
    super(message, { ...options, code: ErrorCode.ClientClosed });
  }
}

/**
 * A call that waits for an answer (an action, a ping) was made through a client that does not
 * read its mailbox (`createUserClient({ startListener: false })`).
 */
export class SendOnlyClientError extends AcademyError {
  override readonly name: string = "SendOnlyClientError";
  readonly entityId: string | undefined;
  constructor(message: string, options: EntityOptions = {}) {
    super(message, { ...options, code: ErrorCode.SendOnlyClient });
    this.entityId = options.entityId;
  }
  override details(): Record<string, unknown> {
    return { entityId: this.entityId };
  }
}

/** The exchange could not be reached (server gone, JetStream unavailable) within the retry window. */
export class ExchangeUnavailableError extends AcademyError {
  override readonly name: string = "ExchangeUnavailableError";
  readonly subject: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { subject?: string } = {}) {
    super(message, { ...options, code: ErrorCode.ExchangeUnavailable });
    this.subject = options.subject;
  }
  override details(): Record<string, unknown> {
    return { subject: this.subject };
  }
}

/**
 * The server refused the credentials (unknown user, wrong password or token, an nkey or creds file
 * it does not accept, an expired user JWT). Retrying with the same credentials cannot succeed.
 */
export class AuthenticationError extends AcademyError {
  override readonly name: string = "AuthenticationError";
  constructor(message: string, options: AcademyErrorOptions = {}) {
    super(message, { ...options, code: ErrorCode.Authentication });
  }
}

/**
 * The exchange's streams or buckets do not exist under this prefix, and the client was told not
 * to create them (a read-only tool, such as the `academy` command's listings): most often a
 * mistyped prefix, or a server no exchange has used yet.
 */
export class ExchangeNotFoundError extends AcademyError {
  override readonly name: string = "ExchangeNotFoundError";
  /** The prefix looked for. */
  readonly prefix: string | undefined;
  /** The stream or bucket found missing. */
  readonly resource: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { prefix?: string; resource?: string } = {}) {
    super(message, { ...options, code: ErrorCode.ExchangeNotFound });
    this.prefix = options.prefix;
    this.resource = options.resource;
  }
  override details(): Record<string, unknown> {
    return { prefix: this.prefix, resource: this.resource };
  }
}

/** The NATS server lacks something this library needs (a version, JetStream). */
export class UnsupportedServerError extends AcademyError {
  override readonly name: string = "UnsupportedServerError";
  readonly serverVersion: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { serverVersion?: string } = {}) {
    super(message, { ...options, code: ErrorCode.UnsupportedServer });
    this.serverVersion = options.serverVersion;
  }
  override details(): Record<string, unknown> {
    return { serverVersion: this.serverVersion };
  }
}

/** Options or server-side configuration are invalid or incompatible. */
export class InvalidConfigError extends AcademyError {
  override readonly name: string = "InvalidConfigError";
  readonly option: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { option?: string } = {}) {
    super(message, { ...options, code: ErrorCode.InvalidConfig });
    this.option = options.option;
  }
  override details(): Record<string, unknown> {
    return { option: this.option };
  }
}

/**
 * The NATS server refused an operation: the connection's user may not publish to, or subscribe
 * to, `subject` (its permissions, docs/SECURITY.md). Not retried.
 */
export class PermissionDeniedError extends AcademyError {
  override readonly name: string = "PermissionDeniedError";
  readonly subject: string | undefined;
  /** `publish` or `subscribe`. */
  readonly operation: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { subject?: string; operation?: string } = {}) {
    super(message, { ...options, code: ErrorCode.PermissionDenied });
    this.subject = options.subject;
    this.operation = options.operation;
  }
  override details(): Record<string, unknown> {
    return { subject: this.subject, operation: this.operation };
  }
}

/** An agent class is defined wrongly (a sync action, a clashing name, launching `Agent` itself). */
export class AgentDefinitionError extends AcademyError {
  override readonly name: string = "AgentDefinitionError";
  readonly agentType: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { agentType?: string } = {}) {
    super(message, { ...options, code: ErrorCode.AgentDefinition });
    this.agentType = options.agentType;
  }
  override details(): Record<string, unknown> {
    return { agentType: this.agentType };
  }
}

/** An agent member was used in a state that does not allow it (e.g. `agentId` before launch). */
export class AgentStateError extends AcademyError {
  override readonly name: string = "AgentStateError";
  constructor(message: string, options: AcademyErrorOptions = {}) {
    super(message, { ...options, code: ErrorCode.AgentState });
  }
}

/** `launch` was given a registration whose agent this manager already launched. */
export class AgentAlreadyLaunchedError extends AcademyError {
  override readonly name: string = "AgentAlreadyLaunchedError";
  readonly agentId: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { agentId?: string } = {}) {
    super(message, { ...options, code: ErrorCode.AgentAlreadyLaunched });
    this.agentId = options.agentId;
  }
  override details(): Record<string, unknown> {
    return { agentId: this.agentId };
  }
}

/** No executor of that name (or no default executor). */
export class UnknownExecutorError extends AcademyError {
  override readonly name: string = "UnknownExecutorError";
  readonly executor: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { executor?: string } = {}) {
    super(message, { ...options, code: ErrorCode.UnknownExecutor });
    this.executor = options.executor;
  }
  override details(): Record<string, unknown> {
    return { executor: this.executor };
  }
}

/** An executor could not run an agent (worker crashed, launch spec not runnable there). */
export class ExecutorError extends AcademyError {
  override readonly name: string = "ExecutorError";
  readonly executor: string | undefined;
  /** Exit code of the worker thread or process that died, when that is what happened. */
  readonly exitCode: number | undefined;
  constructor(message: string, options: AcademyErrorOptions & { executor?: string; exitCode?: number } = {}) {
    super(message, { ...options, code: ErrorCode.Executor });
    this.executor = options.executor;
    this.exitCode = options.exitCode;
  }
  override details(): Record<string, unknown> {
    return { executor: this.executor, exitCode: this.exitCode };
  }
}

/** No host of a pool can run an agent type (none of their agent modules exports it). */
export class UnknownAgentTypeError extends AcademyError {
  override readonly name: string = "UnknownAgentTypeError";
  readonly agentType: string | undefined;
  readonly pool: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { agentType?: string; pool?: string } = {}) {
    super(message, { ...options, code: ErrorCode.UnknownAgentType });
    this.agentType = options.agentType;
    this.pool = options.pool;
  }
  override details(): Record<string, unknown> {
    return { agentType: this.agentType, pool: this.pool };
  }
}

/**
 * A runtime host lost its place in the pool: it could not heartbeat within its time to live, or
 * another host reaped it. Its agents were stopped (their mailboxes kept) to be restarted elsewhere.
 */
export class HostFencedError extends AcademyError {
  override readonly name: string = "HostFencedError";
  readonly hostId: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { hostId?: string } = {}) {
    super(message, { ...options, code: ErrorCode.HostFenced });
    this.hostId = options.hostId;
  }
  override details(): Record<string, unknown> {
    return { hostId: this.hostId };
  }
}

/**
 * Several readers of one mailbox replaced its consumer at the same moment, again and again, and
 * this one gave up. The newest reader wins; starting this one again takes the mailbox over.
 */
export class MailboxContendedError extends AcademyError {
  override readonly name: string = "MailboxContendedError";
  readonly entityId: string | undefined;
  constructor(message: string, options: AcademyErrorOptions & { entityId?: string } = {}) {
    super(message, { ...options, code: ErrorCode.MailboxContended });
    this.entityId = options.entityId;
  }
  override details(): Record<string, unknown> {
    return { entityId: this.entityId };
  }
}

interface SiteOptions extends AcademyErrorOptions {
  /** The site (its prefix) concerned. */
  site?: string;
  /** The JetStream domain the site lives in, when known. */
  domain?: string;
}

/**
 * A factory was asked to provision a site that does not live in the JetStream domain of the
 * server it is connected to (its `domain` option names another domain, or the site's registry is
 * a read-only mirror there). Nothing was created: a factory provisions only in its own domain.
 */
export class ForeignSiteError extends AcademyError {
  override readonly name: string = "ForeignSiteError";
  readonly site: string | undefined;
  readonly domain: string | undefined;
  /** The JetStream domain of the server the factory is connected to ("" for none). */
  readonly serverDomain: string | undefined;
  constructor(message: string, options: SiteOptions & { serverDomain?: string } = {}) {
    super(message, { ...options, code: ErrorCode.ForeignSite });
    this.site = options.site;
    this.domain = options.domain;
    this.serverDomain = options.serverDomain;
  }
  override details(): Record<string, unknown> {
    return { site: this.site, domain: this.domain, serverDomain: this.serverDomain };
  }
}

/**
 * A remote site was needed and its link has never been set up, because its JetStream domain does
 * not answer (an uplink down since this process first named it, a wrong domain) or holds no such
 * site. Nothing was created for it; the link is set up once the site answers. Once set up, a link
 * survives outages: sends are stored and forwarded, reads come from local mirrors.
 */
export class SiteUnreachableError extends AcademyError {
  override readonly name: string = "SiteUnreachableError";
  readonly site: string | undefined;
  readonly domain: string | undefined;
  constructor(message: string, options: SiteOptions = {}) {
    super(message, { ...options, code: ErrorCode.SiteUnreachable });
    this.site = options.site;
    this.domain = options.domain;
  }
  override details(): Record<string, unknown> {
    return { site: this.site, domain: this.domain };
  }
}

/** An id, handle or option names a site this exchange has no link to (not in its `sites`). */
export class UnknownSiteError extends AcademyError {
  override readonly name: string = "UnknownSiteError";
  readonly site: string | undefined;
  constructor(message: string, options: SiteOptions = {}) {
    super(message, { ...options, code: ErrorCode.UnknownSite });
    this.site = options.site;
  }
  override details(): Record<string, unknown> {
    return { site: this.site };
  }
}

/**
 * An operation that only the site owning a mailbox can do (terminate it) was asked of another
 * site. Ask a process of that site, or send the agent a shutdown request.
 */
export class CrossSiteOperationError extends AcademyError {
  override readonly name: string = "CrossSiteOperationError";
  readonly site: string | undefined;
  readonly entityId: string | undefined;
  constructor(message: string, options: SiteOptions & { entityId?: string } = {}) {
    super(message, { ...options, code: ErrorCode.CrossSiteOperation });
    this.site = options.site;
    this.entityId = options.entityId;
  }
  override details(): Record<string, unknown> {
    return { site: this.site, entityId: this.entityId };
  }
}

/** `Manager.wait` / `Manager.shutdown` ran out of time. */
export class WaitTimeoutError extends AcademyError {
  override readonly name: string = "WaitTimeoutError";
  readonly timeoutMs: number | undefined;
  /** Number of agents still running. */
  readonly pending: number | undefined;
  constructor(message: string, options: AcademyErrorOptions & { timeoutMs?: number; pending?: number } = {}) {
    super(message, { ...options, code: ErrorCode.WaitTimeout });
    this.timeoutMs = options.timeoutMs;
    this.pending = options.pending;
  }
  override details(): Record<string, unknown> {
    return { timeoutMs: this.timeoutMs, pending: this.pending };
  }
}

/** Several errors at once (loop errors at shutdown, agent errors at manager close). */
export class ErrorGroup extends AcademyError {
  override readonly name: string = "ErrorGroup";
  readonly errors: readonly unknown[];
  constructor(message: string, options: AcademyErrorOptions & { errors?: readonly unknown[] } = {}) {
    super(message, { ...options, code: ErrorCode.ErrorGroup });
    this.errors = options.errors ?? [];
  }
}

/**
 * An exception thrown by a remote agent whose class is not known here. Its `name` is the remote
 * error's name (e.g. `"ValidationError"`), `code` the remote code when it had one, and
 * `remoteStack` the agent-side stack.
 */
export class RemoteError extends AcademyError {
  override readonly name: string = "RemoteError";
  constructor(message: string, options: AcademyErrorOptions & { code?: string } = {}) {
    super(message, { ...options, code: options.code ?? ErrorCode.Remote });
  }
}

/**
 * A write of an agent's durable state was refused because the record changed since this run of
 * the agent last read or wrote it: another run of the same agent (on another host, after this
 * one was reaped) loaded it and now owns it. The run that gets it stops its agent without
 * answering the request it was handling (the agent's new home answers it) and without touching
 * the state or the mailbox (docs/STATE.md, *Fencing*).
 */
export class StateConflictError extends AcademyError {
  override readonly name: string = "StateConflictError";
  /** The agent whose state it is (its uid). */
  readonly agentId: string | undefined;
  /** The revision this run expected. */
  readonly expectedRevision: number | undefined;
  constructor(message: string, options: AcademyErrorOptions & { agentId?: string; expectedRevision?: number } = {}) {
    super(message, { ...options, code: ErrorCode.StateConflict });
    this.agentId = options.agentId;
    this.expectedRevision = options.expectedRevision;
  }
  override details(): Record<string, unknown> {
    return { agentId: this.agentId, expectedRevision: this.expectedRevision };
  }
}

/**
 * An agent's encoded state record (its value, plus the responses kept for de-duplication) is
 * larger than the exchange stores in one record (the server's `max_payload`, less headers). Nothing
 * was written: the state keeps its last saved value (docs/STATE.md, *Size*).
 */
export class StateTooLargeError extends AcademyError {
  override readonly name: string = "StateTooLargeError";
  readonly agentId: string | undefined;
  /** Size of the encoded record, in bytes. */
  readonly size: number | undefined;
  /** Largest record the exchange stores, in bytes. */
  readonly limit: number | undefined;
  constructor(message: string, options: AcademyErrorOptions & { agentId?: string; size?: number; limit?: number } = {}) {
    super(message, { ...options, code: ErrorCode.StateTooLarge });
    this.agentId = options.agentId;
    this.size = options.size;
    this.limit = options.limit;
  }
  override details(): Record<string, unknown> {
    return { agentId: this.agentId, size: this.size, limit: this.limit };
  }
}

/** Raise the single error as-is, or several as an {@link ErrorGroup}. No-op for none. */
export function raiseErrors(errors: readonly unknown[], message: string): void {
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new ErrorGroup(`${message} (${errors.length} errors)`, { errors });
}

/** Every error class, by name: used to rebuild errors that crossed the wire. */
export const errorClasses: ReadonlyMap<
  string,
  new (message: string, options?: AcademyErrorOptions & Record<string, unknown>) => AcademyError
> = new Map(
  [
    AcademyError,
    BadEntityIdError,
    MailboxTerminatedError,
    AgentTerminatedError,
    UserTerminatedError,
    ActionCancelledError,
    PingCancelledError,
    ActionInvalidStateError,
    UnknownActionError,
    ActionArgumentsError,
    ActionKindError,
    StreamInterruptedError,
    InvalidClientError,
    IncompatibleProtocolError,
    MalformedMessageError,
    PayloadTooLargeError,
    SerializationError,
    RequestTimeoutError,
    DeliveryLimitError,
    ClientClosedError,
    SendOnlyClientError,
    ExchangeUnavailableError,
    AuthenticationError,
    ExchangeNotFoundError,
    UnsupportedServerError,
    InvalidConfigError,
    AgentDefinitionError,
    AgentStateError,
    AgentAlreadyLaunchedError,
    UnknownExecutorError,
    ExecutorError,
    UnknownAgentTypeError,
    HostFencedError,
    MailboxContendedError,
    ForeignSiteError,
    SiteUnreachableError,
    UnknownSiteError,
    CrossSiteOperationError,
    PermissionDeniedError,
    StateConflictError,
    StateTooLargeError,
    WaitTimeoutError,
    ErrorGroup,
    RemoteError,
  ].map((cls) => [new cls("").name, cls]),
);

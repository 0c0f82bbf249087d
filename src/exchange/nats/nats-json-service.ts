/**
 * Calling actions with plain JSON from any NATS client (docs/PROTOCOL.md, *JSON entry point*): one
 * NATS micro service per agent type, so that `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` (and the
 * `nats micro` tooling) list it. A request on `<prefix>.json.<type>.<agent>` with a JSON body
 * `{"action": "...", "args": [...]}` becomes an ordinary action request stored in the agent's
 * mailbox (the durable path every call takes); the reply is `{"result": ...}` or
 * `{"error": {"type", "code", "message", "data"?}}` with the micro headers
 * `Nats-Service-Error` and `Nats-Service-Error-Code`.
 *
 * The `$SRV` protocol is written here: `@nats-io/services` is published only as pre-releases that
 * pull another `@nats-io/nats-core` than the one this library pins (shared/NATS-NOTES.md).
 */
import { randomBytes } from "node:crypto";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { Msg, Subscription } from "@nats-io/nats-core";
import { keyedAgentId } from "../../agent/subscriptions.ts";
import {
  ActionArgumentsError,
  AgentTerminatedError,
  BadEntityIdError,
  InvalidConfigError,
  MailboxTerminatedError,
  MalformedMessageError,
  RequestTimeoutError,
  SerializationError,
  UnknownActionError,
} from "../../errors.ts";
import { AgentId } from "../../identifiers.ts";
import { MailboxStatus } from "../mailbox-status.ts";
import type { UserExchangeClient } from "../exchange-client.ts";
import type { JsonCallOptions, JsonCallService } from "../json-calls.ts";
import type { NatsExchange } from "./nats-exchange.ts";

/** The body of a JSON call. */
interface JsonCallBody {
  readonly action: string;
  readonly args: readonly unknown[];
  readonly timeoutMs: number | undefined;
}

/** Statistics of one endpoint, as `$SRV.STATS` reports them. */
interface EndpointStats {
  numRequests: number;
  numErrors: number;
  lastError: string;
  processingNs: bigint;
}

const QUEUE_GROUP = "q";
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The micro error code of an error: HTTP-like, as micro services use them. */
function statusCode(error: unknown): number {
  if (error instanceof MalformedMessageError || error instanceof ActionArgumentsError || error instanceof SerializationError) return 400;
  if (error instanceof BadEntityIdError || error instanceof UnknownActionError) return 404;
  if (error instanceof AgentTerminatedError || error instanceof MailboxTerminatedError) return 410;
  if (error instanceof RequestTimeoutError) return 504;
  return 500;
}

/** JSON for a value an action returned: bigints as text, bytes as base64, ids as their JSON. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  return value;
}

/**
 * Read a call's body.
 * @throws {MalformedMessageError} when it is not a JSON object with a text `action`, an optional
 *   array `args` and an optional positive `timeoutMs`.
 */
export function parseJsonCall(data: Uint8Array): JsonCallBody {
  let body: unknown;
  try {
    body = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new MalformedMessageError(`The body of a JSON call must be a JSON object: ${(error as Error).message}`, { cause: error });
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new MalformedMessageError('The body of a JSON call must be a JSON object {"action": ..., "args": [...]}');
  const { action, args = [], timeoutMs } = body as Record<string, unknown>;
  if (typeof action !== "string" || action.length === 0) throw new MalformedMessageError('The body of a JSON call needs "action": the action\'s name (text)');
  if (!Array.isArray(args)) throw new MalformedMessageError('"args" of a JSON call must be an array of the action\'s arguments');
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs <= 0)) {
    throw new MalformedMessageError('"timeoutMs" of a JSON call must be a positive number of ms');
  }
  return { action, args, timeoutMs: timeoutMs as number | undefined };
}

/** One micro service: the JSON entry point of one agent type. */
class TypeService {
  readonly name: string;
  readonly id = randomBytes(11).toString("hex");
  readonly subject: string;
  readonly agentType: string;
  readonly started = new Date().toISOString();
  readonly stats: EndpointStats = { numRequests: 0, numErrors: 0, lastError: "", processingNs: 0n };
  readonly version: string;

  constructor(prefix: string, agentType: string, subject: string, version: string) {
    this.agentType = agentType;
    this.subject = subject;
    this.version = version;
    this.name = `${prefix}-${agentType.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  }

  #identity(type: string): Record<string, unknown> {
    return { type, name: this.name, id: this.id, version: this.version, metadata: { "academy.agent_type": this.agentType } };
  }

  ping(): Record<string, unknown> {
    return this.#identity("io.nats.micro.v1.ping_response");
  }

  info(): Record<string, unknown> {
    return {
      ...this.#identity("io.nats.micro.v1.info_response"),
      description: `Actions of ${this.agentType} agents, called with JSON: {"action": "...", "args": [...]} on ${this.subject.slice(0, -1)}<agent uid or key>`,
      endpoints: [{ name: "call", subject: this.subject, queue_group: QUEUE_GROUP, metadata: null }],
    };
  }

  statsResponse(): Record<string, unknown> {
    const { numRequests, numErrors, lastError, processingNs } = this.stats;
    return {
      ...this.#identity("io.nats.micro.v1.stats_response"),
      started: this.started,
      endpoints: [
        {
          name: "call",
          subject: this.subject,
          queue_group: QUEUE_GROUP,
          num_requests: numRequests,
          num_errors: numErrors,
          last_error: lastError,
          processing_time: Number(processingNs),
          average_processing_time: numRequests === 0 ? 0 : Number(processingNs / BigInt(numRequests)),
        },
      ],
    };
  }
}

/**
 * Serve JSON calls to the agent types `options.types` on `ctx`'s connection, through `client`
 * (a user client of the same exchange, closed by `stop`).
 * @throws {InvalidConfigError} for no types, a bad version or timeout.
 */
export function serveJsonCalls(ctx: NatsExchange, client: UserExchangeClient, options: JsonCallOptions): JsonCallService {
  const version = options.version ?? "1.0.0";
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!Array.isArray(options.types) || options.types.length === 0 || options.types.some((t) => typeof t !== "string" || t.length === 0)) {
    throw new InvalidConfigError("serveJsonCalls needs types: the names of the agent types to serve", { option: "types" });
  }
  if (!SEMVER.test(version)) throw new InvalidConfigError(`version must be a semantic version (got ${version})`, { option: "version" });
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new InvalidConfigError(`timeoutMs must be a positive integer (got ${timeoutMs})`, { option: "timeoutMs" });
  const { nc, layout, logger } = ctx;
  const services = [...new Set(options.types)].map((type) => new TypeService(layout.prefix, type, layout.jsonCallSubjects(type), version));
  const subscriptions: Subscription[] = [];
  const inFlight = new Set<Promise<void>>();

  const reply = (m: Msg, body: unknown, error?: { code: number; message: string }): void => {
    if (m.reply === undefined || m.reply === "") return;
    let data: Uint8Array;
    try {
      data = encoder.encode(JSON.stringify(body, jsonReplacer));
    } catch (cause) {
      const failure = new SerializationError(`The action's result cannot be written as JSON: ${(cause as Error).message}`, { cause });
      return reply(m, errorBody(failure), { code: 500, message: failure.message });
    }
    if (error === undefined) {
      m.respond(data);
      return;
    }
    const headers = natsHeaders();
    headers.set("Nats-Service-Error", error.message.replace(/[\r\n]+/g, " ").slice(0, 512));
    headers.set("Nats-Service-Error-Code", String(error.code));
    m.respond(data, { headers });
  };

  const call = async (service: TypeService, m: Msg): Promise<void> => {
    const started = process.hrtime.bigint();
    service.stats.numRequests++;
    try {
      const body = parseJsonCall(m.data);
      const token = m.subject.slice(m.subject.lastIndexOf(".") + 1);
      const agentId = await resolveAgent(client, service.agentType, token);
      const result = await client.getHandle(agentId).invoke(body.action, body.args, { timeoutMs: body.timeoutMs ?? timeoutMs });
      reply(m, { result: result === undefined ? null : result });
    } catch (error) {
      const code = statusCode(error);
      service.stats.numErrors++;
      service.stats.lastError = `${code}:${(error as Error)?.message ?? String(error)}`;
      reply(m, errorBody(error), { code, message: (error as Error)?.message ?? String(error) });
    } finally {
      service.stats.processingNs += process.hrtime.bigint() - started;
    }
  };

  for (const service of services) {
    const endpoint = nc.subscribe(service.subject, {
      queue: QUEUE_GROUP,
      callback: (error, m) => {
        if (error !== null) return;
        const handled = call(service, m);
        inFlight.add(handled);
        void handled.finally(() => inFlight.delete(handled));
      },
    });
    subscriptions.push(endpoint);
    for (const [verb, answer] of [
      ["PING", () => service.ping()],
      ["INFO", () => service.info()],
      ["STATS", () => service.statsResponse()],
    ] as const) {
      for (const subject of [`$SRV.${verb}`, `$SRV.${verb}.${service.name}`, `$SRV.${verb}.${service.name}.${service.id}`]) {
        subscriptions.push(nc.subscribe(subject, { callback: (error, m) => (error === null ? reply(m, answer()) : undefined) }));
      }
    }
    logger.info({ service: service.name, subject: service.subject }, "serving JSON calls");
  }

  let stopping: Promise<void> | undefined;
  return {
    services: services.map(({ name, id, subject, agentType }) => ({ name, id, subject, agentType })),
    stop() {
      stopping ??= (async () => {
        for (const s of subscriptions) if (!s.isClosed()) s.unsubscribe();
        await Promise.all(inFlight);
        await client.close();
      })();
      return stopping;
    },
  };
}

/**
 * The agent a call's subject names: an agent uid, else the key of a keyed agent of the type.
 * @throws {BadEntityIdError} when neither is registered.
 */
async function resolveAgent(client: UserExchangeClient, agentType: string, token: string): Promise<AgentId> {
  const byUid = new AgentId(token);
  if ((await client.status(byUid)) !== MailboxStatus.Missing) return byUid;
  const keyed = keyedAgentId(agentType, token);
  if ((await client.status(keyed)) !== MailboxStatus.Missing) return keyed;
  throw new BadEntityIdError(`No ${agentType} agent with uid or key ${token}`, { entityId: token });
}

/** The error of a JSON call, in the documented shape. */
function errorBody(error: unknown): { error: Record<string, unknown> } {
  const e = error instanceof Error ? error : new Error(String(error));
  const code = (e as { code?: unknown }).code;
  const data = typeof (e as { details?: unknown }).details === "function" ? (e as unknown as { details(): Record<string, unknown> }).details() : undefined;
  const fields = data === undefined ? undefined : Object.fromEntries(Object.entries(data).filter(([, v]) => v !== undefined));
  return {
    error: {
      type: e.name,
      ...(typeof code === "string" && { code }),
      message: e.message,
      ...(fields !== undefined && Object.keys(fields).length > 0 && { data: fields }),
    },
  };
}

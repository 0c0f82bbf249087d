/**
 * The in-process exchange across threads: the main thread serves its `LocalExchange` on a
 * `MessagePort`; a worker thread reaches it through {@link PortExchangeApi}. Values cross as CBOR
 * (ids keep their classes), errors as failure shapes.
 */
import { MailboxStatus } from "../mailbox-status.ts";
import { MessageChannel } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";
import type { Agent } from "../../agent/agent.ts";
import type { AgentTypeInfo } from "../../agent/agent-type.ts";
import { ClientClosedError } from "../../errors.ts";
import { resolveInterceptors } from "../../interceptors/interceptors.ts";
import type { Interceptors } from "../../interceptors/interceptors.ts";
import { UserId } from "../../identifiers.ts";
import type { AgentId } from "../../identifiers.ts";
import { decodeValue, encodeValue } from "../../protocol/codec.ts";
import { fromFailure, toFailure } from "../../protocol/failure.ts";
import type { Failure } from "../../protocol/failure.ts";
import { silentLogger } from "../../util/logger.ts";
import type { Logger } from "../../util/logger.ts";
import { UserExchangeClient } from "../exchange-client.ts";

import type { AgentClientOptions, AgentExchangeClient, RequestHandler } from "../exchange-client.ts";

import type { CreateUserClientOptions, ExchangeFactory, RebuildWorkerFactory, WorkerFactoryDescriptor } from "../exchange-factory.ts";
import type { AgentRegistration } from "../transport.ts";

import type { LocalExchange, LocalMailboxSink } from "./local-exchange.ts";
import { CodecResultStore } from "../result-store.ts";
import type { ResultStore } from "../result-store.ts";
import { LocalTransport, openAgentClient } from "./local-transport.ts";
import { LocalStateStore } from "./local-state-store.ts";
import type { StateRecordsApi } from "./local-state-store.ts";
import type { StateStore } from "../../state/state-store.ts";
import { LocalReminderStore } from "./local-reminder-store.ts";
import type { RemindersApi } from "./local-reminder-store.ts";
import type { ReminderStore } from "../../state/reminder-store.ts";
import type { LocalExchangeApi } from "./local-transport.ts";

type Call =
  | { id: number; op: "status"; uid: string }
  | { id: number; op: "registerAgent"; type: AgentTypeInfo; name: string | undefined }
  | { id: number; op: "registerUser"; uid: string; name: string | undefined }
  | { id: number; op: "discover"; typeName: string; allowSubclasses: boolean }
  | { id: number; op: "send"; dest: string; bytes: Uint8Array }
  | { id: number; op: "terminate"; uid: string }
  | { id: number; op: "attach"; uid: string }
  | { id: number; op: "detach"; uid: string }
  | { id: number; op: "state"; method: "get" | "create" | "update" | "delete"; args: unknown[] }
  | { id: number; op: "reminders"; method: "put" | "get" | "delete" | "list" | "deleteAll"; args: unknown[] }
  | { id: number; op: "getResult"; key: string }
  | { id: number; op: "putResult"; key: string; bytes: Uint8Array };
/** A call without its id. */
type CallBody = Call extends infer C ? (C extends Call ? Omit<C, "id"> : never) : never;
type Notice = { op: "ack" | "nak"; uid: string; token: number; delayMs?: number };
type Reply = { id: number; ok: true; value: Uint8Array } | { id: number; ok: false; error: Failure };
type Event =
  | { event: "deliver"; uid: string; bytes: Uint8Array; deliveryCount: number; token: number; mayBeDuplicate: boolean }
  | { event: "terminated"; uid: string }
  | { event: "mailbox-terminated"; uid: string };

/**
 * Serve `exchange` on a new message port (main thread side). Returns the port to transfer to the
 * worker, and `close` to stop serving (attached mailboxes are detached: their unacked messages
 * go back to the queue). Serving also stops when the worker's end closes (the worker exited).
 */
export function serveLocalExchange(exchange: LocalExchange, onClosed: () => void = () => {}): { port: MessagePort; close(): void } {
  const { port1, port2 } = new MessageChannel();
  const attached = new Set<string>();
  const post = (message: Reply | Event): void => port1.postMessage(message);
  const unsubscribe = exchange.onTerminated((uid) => post({ event: "mailbox-terminated", uid }));
  let closed = false;

  const run = (call: Call): unknown => {
    switch (call.op) {
      case "status":
        return exchange.status(call.uid);
      case "registerAgent":
        return exchange.registerAgent(call.type, call.name);
      case "registerUser":
        return exchange.registerUser(new UserId(call.uid, call.name));
      case "discover":
        return exchange.discover(call.typeName, call.allowSubclasses);
      case "send":
        return exchange.send(call.dest, call.bytes);
      case "terminate":
        return exchange.terminate(call.uid);
      case "attach": {
        const uid = call.uid;
        const sink: LocalMailboxSink = {
          deliver: (bytes, deliveryCount, token, mayBeDuplicate) => post({ event: "deliver", uid, bytes, deliveryCount, token, mayBeDuplicate }),
          terminated: () => {
            attached.delete(uid);
            post({ event: "terminated", uid });
          },
        };
        exchange.attach(uid, sink);
        attached.add(uid);
        return undefined;
      }
      case "detach":
        attached.delete(call.uid);
        return exchange.detach(call.uid);
      case "state": {
        const records = exchange.stateRecords as unknown as Record<string, (...args: unknown[]) => unknown>;
        return records[call.method]!.apply(exchange.stateRecords, call.args);
      }
      case "reminders": {
        const reminders = exchange.reminders as unknown as Record<string, (...args: unknown[]) => unknown>;
        return reminders[call.method]!.apply(exchange.reminders, call.args);
      }
      case "getResult":
        return exchange.results?.get(call.key);
      case "putResult":
        return exchange.results?.put(call.key, call.bytes);
    }
  };

  const close = (): void => {
    if (closed) return;
    closed = true;
    unsubscribe();
    for (const uid of attached) exchange.detach(uid);
    attached.clear();
    port1.close();
    onClosed();
  };

  port1.on("message", (message: Call | Notice) => {
    if (!("id" in message)) {
      if (message.op === "ack") exchange.ack(message.uid, message.token);
      else exchange.nak(message.uid, message.token, message.delayMs);
      return;
    }
    try {
      post({ id: message.id, ok: true, value: encodeValue(run(message)) });
    } catch (error) {
      post({ id: message.id, ok: false, error: toFailure(error) });
    }
  });
  port1.on("close", close);
  port1.unref();
  return { port: port2, close };
}

/** The worker side: the local exchange API over a message port. */
export class PortExchangeApi implements LocalExchangeApi {
  readonly maxPayload: number;
  readonly #port: MessagePort;
  readonly #calls = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  readonly #sinks = new Map<string, LocalMailboxSink>();
  readonly #terminationListeners = new Set<(uid: string) => void>();
  #nextId = 1;
  #closed = false;

  constructor(port: MessagePort, maxPayload: number) {
    this.#port = port;
    this.maxPayload = maxPayload;
    port.on("message", (message: Reply | Event) => this.#receive(message));
    port.on("close", () => this.#failAll());
  }

  status(uid: string): Promise<MailboxStatus> {
    return this.#call({ op: "status", uid }) as Promise<MailboxStatus>;
  }

  registerAgent(type: AgentTypeInfo, name?: string): Promise<AgentRegistration> {
    return this.#call({ op: "registerAgent", type, name }) as Promise<AgentRegistration>;
  }

  async registerUser(id: UserId): Promise<void> {
    await this.#call({ op: "registerUser", uid: id.uid, name: id.name });
  }

  discover(typeName: string, allowSubclasses: boolean): Promise<AgentId[]> {
    return this.#call({ op: "discover", typeName, allowSubclasses }) as Promise<AgentId[]>;
  }

  async send(dest: string, bytes: Uint8Array): Promise<void> {
    await this.#call({ op: "send", dest, bytes });
  }

  async terminate(uid: string): Promise<void> {
    await this.#call({ op: "terminate", uid });
  }

  async attach(uid: string, sink: LocalMailboxSink): Promise<void> {
    this.#sinks.set(uid, sink);
    try {
      await this.#call({ op: "attach", uid });
    } catch (error) {
      this.#sinks.delete(uid);
      throw error;
    }
  }

  async detach(uid: string): Promise<void> {
    this.#sinks.delete(uid);
    await this.#call({ op: "detach", uid });
  }

  ack(uid: string, token: number): void {
    if (!this.#closed) this.#port.postMessage({ op: "ack", uid, token } satisfies Notice);
  }

  nak(uid: string, token: number, delayMs?: number): void {
    if (!this.#closed) this.#port.postMessage({ op: "nak", uid, token, delayMs } satisfies Notice);
  }

  /** The exchange's state records, across the port. */
  stateRecords(): StateRecordsApi {
    const call = (method: "get" | "create" | "update" | "delete", ...args: unknown[]): Promise<never> =>
      this.#call({ op: "state", method, args }) as Promise<never>;
    return {
      maxRecordBytes: this.maxPayload,
      get: (uid) => call("get", uid),
      create: (uid, bytes) => call("create", uid, bytes),
      update: (uid, bytes, revision) => call("update", uid, bytes, revision),
      delete: (uid, revision) => call("delete", uid, revision),
    };
  }

  /** The exchange's reminders, across the port (for agents: no scheduling). */
  reminders(): RemindersApi {
    const call = (method: "put" | "get" | "delete" | "list" | "deleteAll", ...args: unknown[]): Promise<never> =>
      this.#call({ op: "reminders", method, args }) as Promise<never>;
    return {
      put: (record) => call("put", record),
      get: (uid, name) => call("get", uid, name),
      delete: (uid, name, revision) => call("delete", uid, name, revision),
      list: (uid) => call("list", uid),
      deleteAll: (uid) => call("deleteAll", uid),
    };
  }

  onTerminated(listener: (uid: string) => void): () => void {
    this.#terminationListeners.add(listener);
    return () => this.#terminationListeners.delete(listener);
  }

  close(): void {
    if (this.#closed) return;
    this.#port.close();
    this.#failAll();
  }

  /** The result record under `key` in the main thread's exchange. */
  async getResult(key: string): Promise<Uint8Array | undefined> {
    return (await this.#call({ op: "getResult", key })) as Uint8Array | undefined;
  }

  /** Record a result in the main thread's exchange. */
  async putResult(key: string, bytes: Uint8Array): Promise<void> {
    await this.#call({ op: "putResult", key, bytes });
  }

  #call(call: CallBody): Promise<unknown> {
    if (this.#closed) return Promise.reject(new ClientClosedError("The worker's exchange port is closed"));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { resolve, reject });
      this.#port.postMessage({ ...call, id });
    });
  }

  #receive(message: Reply | Event): void {
    if ("id" in message) {
      const call = this.#calls.get(message.id);
      this.#calls.delete(message.id);
      if (call === undefined) return;
      if (message.ok) call.resolve(decodeValue(message.value));
      else call.reject(fromFailure(message.error));
      return;
    }
    switch (message.event) {
      case "deliver":
        this.#sinks.get(message.uid)?.deliver(message.bytes, message.deliveryCount, message.token, message.mayBeDuplicate);
        break;
      case "terminated": {
        const sink = this.#sinks.get(message.uid);
        this.#sinks.delete(message.uid);
        sink?.terminated();
        break;
      }
      case "mailbox-terminated":
        for (const listener of [...this.#terminationListeners]) listener(message.uid);
        break;
    }
  }

  #failAll(): void {
    this.#closed = true;
    const error = new ClientClosedError("The worker's exchange port is closed");
    for (const call of this.#calls.values()) call.reject(error);
    this.#calls.clear();
  }
}

/** The module that rebuilds a local exchange's factory in a worker thread (this one). */
export const PORT_FACTORY_MODULE = import.meta.url;

/** The data of a local exchange's worker factory descriptor. */
export interface LocalPortDescriptorData {
  readonly port: MessagePort;
  readonly maxPayload: number;
  /** The main thread's factory's `deadlines` option. @defaultValue true */
  readonly deadlines?: boolean;
  /** The main thread's factory's `tracing` option. @defaultValue true */
  readonly tracing?: boolean;
  /** The main thread's exchange's result window, in ms (0: effectively-once execution is off). @defaultValue 0 */
  readonly resultWindowMs?: number;
}

/**
 * A factory, in a worker thread, for the main thread's in-process exchange. It has the built-in
 * interceptors its main thread's factory has (deadlines, tracing) and no others: interceptors are
 * functions, which cannot reach a worker.
 */
export class PortExchangeFactory implements ExchangeFactory {
  readonly interceptors: Interceptors;
  readonly #api: PortExchangeApi;
  readonly #logger: Logger;
  readonly #results: ResultStore | undefined;

  constructor(data: LocalPortDescriptorData, logger: Logger = silentLogger) {
    const api = new PortExchangeApi(data.port, data.maxPayload);
    this.#api = api;
    const windowMs = data.resultWindowMs ?? 0;
    this.#results =
      windowMs === 0
        ? undefined
        : new CodecResultStore({
            windowMs,
            maxRecordBytes: data.maxPayload,
            get: (key) => api.getResult(key),
            put: (key, bytes) => api.putResult(key, bytes),
          });
    this.interceptors = resolveInterceptors(undefined, { deadlines: data.deadlines ?? true, tracing: data.tracing ?? true });
    this.#logger = logger;
  }

  async createUserClient(options: CreateUserClientOptions = {}): Promise<UserExchangeClient> {
    const userId = UserId.create(options.name);
    await this.#api.registerUser(userId);
    return UserExchangeClient.open(new LocalTransport(this.#api, userId, this.#logger), { logger: this.#logger, ...options }, this);
  }

  async createAgentClient<A extends Agent>(
    registration: AgentRegistration<A>,
    handler: RequestHandler,
    options: AgentClientOptions = {},
  ): Promise<AgentExchangeClient> {
    return openAgentClient(this.#api, registration, handler, { logger: this.#logger, ...options }, this);
  }

  /** The main thread's exchange's state records, across the port. */
  async stateStore(): Promise<StateStore> {
    return new LocalStateStore(this.#api.stateRecords());
  }

  /** The main thread's exchange's reminders, across the port (set, cancel, list: no scheduling). */
  async reminderStore(): Promise<ReminderStore> {
    return new LocalReminderStore(this.#api.reminders(), undefined);
  }

  async resultStore(): Promise<ResultStore | undefined> {
    return this.#results;
  }

  forWorker(): WorkerFactoryDescriptor {
    throw new ClientClosedError("A worker's exchange factory cannot be shared further");
  }

  async close(): Promise<void> {
    this.#api.close();
  }
}

/** Rebuilds, in a worker thread, a factory described by `LocalExchangeFactory.forWorker`: on its port. */
export const rebuildWorkerFactory: RebuildWorkerFactory = (data, logger) =>
  new PortExchangeFactory(data as LocalPortDescriptorData, logger);

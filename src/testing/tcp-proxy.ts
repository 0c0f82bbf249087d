/**
 * A TCP proxy on 127.0.0.1 that can cut and restore the link it carries: the uplink of a leaf
 * node in tests. `cut()` destroys every connection through it and refuses new ones (each is
 * accepted and closed at once, as a broken link would look to the leaf); `restore()` lets
 * connections through again on the same port.
 *
 * This module uses only Node built-ins.
 */
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { NatsServerError, NatsServerErrorCode, findFreePorts } from "./nats-server.ts";

/** What callers may pass to {@link startTcpProxy}. */
export interface TcpProxyOptions {
  /** Port on 127.0.0.1 to forward every connection to. */
  targetPort: number;
  /**
   * Port the proxy listens on.
   * @defaultValue a random free port
   */
  port?: number;
}

/** A running {@link startTcpProxy} proxy. */
export interface TcpProxy extends AsyncDisposable {
  /** The port the proxy listens on. */
  readonly port: number;
  /** The port it forwards to. */
  readonly targetPort: number;
  /** False while the link is cut. */
  readonly isOpen: boolean;
  /** Connections carried right now. */
  readonly connections: number;
  /** Local ports of the proxy's connections to the target (what the target sees as peers). */
  readonly upstreamPorts: readonly number[];
  /** Destroy every connection and refuse new ones until {@link TcpProxy.restore}. Idempotent. */
  cut(): void;
  /** Let connections through again. Idempotent. */
  restore(): void;
  /** Stop listening and destroy every connection. Idempotent. */
  close(): Promise<void>;
}

class TcpProxyImpl implements TcpProxy {
  readonly port: number;
  readonly targetPort: number;
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  #open = true;
  #closed: Promise<void> | undefined;

  constructor(server: Server, port: number, targetPort: number) {
    this.#server = server;
    this.port = port;
    this.targetPort = targetPort;
    server.on("connection", (client) => this.#accept(client));
  }

  get isOpen(): boolean {
    return this.#open;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  get upstreamPorts(): readonly number[] {
    return [...this.#pairs].flatMap(([, upstream]) => (upstream.localPort === undefined ? [] : [upstream.localPort]));
  }

  #accept(client: Socket): void {
    client.on("error", () => undefined);
    if (!this.#open || this.#closed !== undefined) {
      client.destroy();
      return;
    }
    const upstream = netConnect({ host: "127.0.0.1", port: this.targetPort });
    upstream.on("error", () => undefined);
    const pair: [Socket, Socket] = [client, upstream];
    this.#pairs.add(pair);
    const drop = (): void => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.once("close", drop);
    upstream.once("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  cut(): void {
    this.#open = false;
    for (const [client, upstream] of [...this.#pairs]) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  restore(): void {
    this.#open = true;
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.cut();
      this.#server.close(() => resolve());
    });
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts a TCP proxy on 127.0.0.1 forwarding to `targetPort` (which need not be listening yet:
 * a connection to a target that is down is closed at once).
 * @throws NatsServerError when the port cannot be bound.
 */
export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const port = options.port ?? (await findFreePorts(1))[0]!;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(new NatsServerError(`TCP proxy could not listen on 127.0.0.1:${port}: ${error.message}`, NatsServerErrorCode.InvalidState, { cause: error })),
    );
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => resolve());
  });
  server.unref();
  return new TcpProxyImpl(server, port, options.targetPort);
}

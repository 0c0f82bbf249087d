/**
 * `academy dashboard`: a live page of a deployment, served over HTTP. The page is rendered on the
 * server; a small script swaps in sections the server sends over server-sent events (`/events`)
 * as they change. The data comes through the exchange's contracts, read-only (nothing is created):
 * host records, placements and the registry from KV watches (`PoolBackend`), dead letters from the
 * dead-letter store (new ones every second), mailbox depths from the exchange's statistics (every
 * 2 s), actions per second from the counts hosts publish in their records at each heartbeat.
 *
 * Paths: `/` (the page), `/events` (the stream), `/api/state` (the same data as JSON),
 * `/healthz`, `/dashboard.js`, `/dashboard.css`. It listens on 127.0.0.1 unless told otherwise and
 * has no authentication: put it behind one to expose it.
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ExchangeNotFoundError, NatsExchangeFactory } from "../src/index.ts";
import type { NatsExchangeOptions } from "../src/index.ts";
import type { DeadLetterStore } from "../src/exchange/dead-letters.ts";
import type { ExchangeStats } from "../src/exchange/exchange-stats.ts";
import type { StopWatch } from "../src/pool/pool-backend.ts";
import { silentLogger } from "../src/util/logger.ts";
import type { Logger } from "../src/util/logger.ts";
import { DASHBOARD_SCRIPT, DASHBOARD_STYLE } from "./dashboard-assets.ts";
import { renderPage, renderSection } from "./dashboard-html.ts";
import { DashboardSection, DashboardState, MAX_LETTER_ROWS } from "./dashboard-state.ts";

/** Options of {@link Dashboard.start}. */
export interface DashboardOptions {
  /**
   * The port to listen on; 0 picks a free one (see {@link Dashboard.port}).
   * @defaultValue 8080
   */
  port?: number;
  /**
   * The address to listen on: `0.0.0.0` (or `::`) to serve other machines.
   * @defaultValue "127.0.0.1"
   */
  host?: string;
  /** The NATS exchange to show (opened read-only: nothing is created, nothing relayed). */
  exchange?: NatsExchangeOptions;
  /** @defaultValue silent */
  logger?: Logger;
}

/** How often new dead letters are looked for, in ms. */
const LETTERS_EVERY_MS = 1_000;
/** How often mailbox depths and the dead-letter count are read, in ms. */
const STATS_EVERY_MS = 2_000;
/** How often the dead letters shown are listed again (some may have been replayed or purged), in ms. */
const LETTERS_RECHECK_EVERY_MS = 10_000;
/** How long changes gather before they are sent, in ms. */
const FLUSH_AFTER_MS = 150;
/** A client this far behind (bytes not yet sent) is dropped; its browser reconnects and gets the page anew. */
const MAX_CLIENT_BACKLOG = 4 * 1024 * 1024;
/** How long to wait before opening the exchange again when it could not be read, in ms. */
const RETRY_AFTER_MS = 3_000;

const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
} as const;

/** What the dashboard reads, on one exchange connection. */
interface Source {
  readonly factory: NatsExchangeFactory;
  readonly letters: DeadLetterStore;
  readonly stats: ExchangeStats;
  readonly stops: StopWatch[];
}

/** A running dashboard (see the module's description). */
export class Dashboard {
  readonly #server: Server;
  readonly #state: DashboardState;
  readonly #options: DashboardOptions;
  readonly #logger: Logger;
  readonly #clients = new Set<ServerResponse>();
  readonly #dirty = new Set<DashboardSection>();
  #flushTimer: NodeJS.Timeout | undefined;
  #ticker: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #source: Source | undefined;
  #polling = false;
  #lastStats = 0;
  #lastRecheck = 0;
  #closed = false;

  private constructor(server: Server, state: DashboardState, options: DashboardOptions) {
    this.#server = server;
    this.#state = state;
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    state.onChange((section) => this.#markDirty(section));
  }

  /**
   * Listen, then connect to the exchange and follow it.
   * @throws {ExchangeNotFoundError} when there is no exchange under the prefix (nothing is created).
   * @throws {ExchangeUnavailableError} / {AuthenticationError} when NATS cannot be used.
   * @throws an `EADDRINUSE` (or other listen) error when the port cannot be bound.
   */
  static async start(options: DashboardOptions = {}): Promise<Dashboard> {
    const state = new DashboardState(options.exchange?.prefix ?? "academy");
    let dashboard: Dashboard | undefined;
    const server = createServer((req, res) => dashboard!.#serve(req, res));
    dashboard = new Dashboard(server, state, options);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 8080, options.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    try {
      await dashboard.#connect(true);
    } catch (error) {
      await dashboard.close();
      throw error;
    }
    dashboard.#ticker = setInterval(() => dashboard.#tick(), 1_000);
    return dashboard;
  }

  /** The port it listens on. */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Where to open it. */
  get url(): string {
    const host = this.#options.host ?? "127.0.0.1";
    const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
    return `http://${shown}:${this.port}/`;
  }

  /** Stop serving and following the exchange. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#ticker);
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#flushTimer);
    for (const client of this.#clients) client.end();
    this.#clients.clear();
    await this.#disconnect();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Open the exchange and start the watches. The first time, a missing exchange is thrown (a
   * mistyped prefix must not wait forever); otherwise, and for an exchange whose pools no host
   * has created yet, the page says why it waits and this is tried again.
   */
  async #connect(first: boolean): Promise<void> {
    const logger = this.#logger;
    const factory = new NatsExchangeFactory({
      ...this.#options.exchange,
      provision: false,
      relay: false,
      retryWindowMs: 5_000,
      logger,
      connectionOptions: { name: "academy-dashboard", ...this.#options.exchange?.connectionOptions },
    });
    const stops: StopWatch[] = [];
    let opened = false;
    try {
      const backend = await factory.poolBackend();
      opened = true;
      const source: Source = { factory, letters: await factory.deadLetters(), stats: await factory.stats(), stops };
      const state = this.#state;
      state.clearRecords();
      stops.push(await backend.watchMailboxes((entry) => state.putMailbox(entry), (uid) => state.removeMailbox(uid)));
      stops.push(await backend.watchHosts((entry) => state.putHost(entry), (hostId) => state.removeHost(hostId)));
      stops.push(await backend.watchPlacements(undefined, (placement) => state.putPlacement(placement), { current: true }));
      const { lastId } = await source.stats.deadLetters();
      state.addLetters(await source.letters.list({ after: Math.max(0, lastId - 4 * MAX_LETTER_ROWS) }));
      this.#source = source;
      state.setConnection("connected");
      void this.#poll(true);
    } catch (error) {
      for (const stop of stops) stop();
      await factory.close().catch(() => undefined);
      if (first && !opened) throw error;
      const detail =
        error instanceof ExchangeNotFoundError
          ? `nothing to show yet: ${error.message}`
          : `cannot read the exchange: ${(error as Error)?.message ?? String(error)}`;
      logger.warn({ err: error }, "dashboard cannot read the exchange; trying again");
      this.#state.setConnection("waiting", detail);
      this.#retryTimer = setTimeout(() => void this.#connect(false).catch(() => undefined), RETRY_AFTER_MS);
    }
  }

  async #disconnect(): Promise<void> {
    const source = this.#source;
    this.#source = undefined;
    if (source === undefined) return;
    for (const stop of source.stops) stop();
    await source.factory.close().catch(() => undefined);
  }

  #tick(): void {
    this.#state.tick();
    void this.#poll(false);
  }

  /** Read what is polled: new dead letters every second; depths and counts, and removals, less often. */
  async #poll(all: boolean): Promise<void> {
    const source = this.#source;
    if (source === undefined || this.#polling || this.#closed) return;
    this.#polling = true;
    const state = this.#state;
    try {
      const now = Date.now();
      state.addLetters(await source.letters.list({ after: state.lastLetterId, limit: MAX_LETTER_ROWS }));
      if (all || now - this.#lastStats >= STATS_EVERY_MS - LETTERS_EVERY_MS / 2) {
        this.#lastStats = now;
        state.setDepths(await source.stats.mailboxDepths());
        state.setLetterCount((await source.stats.deadLetters()).count);
      }
      const first = state.firstLetterId;
      if (first !== undefined && now - this.#lastRecheck >= LETTERS_RECHECK_EVERY_MS) {
        this.#lastRecheck = now;
        state.replaceLettersFrom(first, await source.letters.list({ after: first - 1 }));
      }
    } catch (error) {
      this.#logger.warn({ err: error }, "dashboard poll failed");
    } finally {
      this.#polling = false;
    }
  }

  #markDirty(section: DashboardSection): void {
    this.#dirty.add(section);
    this.#flushTimer ??= setTimeout(() => this.#flush(), FLUSH_AFTER_MS);
  }

  /** Send the sections that changed to every client. */
  #flush(): void {
    this.#flushTimer = undefined;
    if (this.#clients.size === 0) {
      this.#dirty.clear();
      return;
    }
    const view = this.#state.view();
    const messages = [...this.#dirty].map((section) => sectionEvent(section, renderSection(section, view)));
    this.#dirty.clear();
    const payload = messages.join("");
    for (const client of this.#clients) {
      if (client.writableLength > MAX_CLIENT_BACKLOG) {
        client.destroy();
        this.#clients.delete(client);
        continue;
      }
      client.write(payload);
    }
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const path = (req.url ?? "/").split("?")[0];
    switch (path) {
      case "/":
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", ...SECURITY_HEADERS }).end(renderPage(this.#state.view()));
        return;
      case "/dashboard.js":
        res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", ...SECURITY_HEADERS }).end(DASHBOARD_SCRIPT);
        return;
      case "/dashboard.css":
        res.writeHead(200, { "content-type": "text/css; charset=utf-8", ...SECURITY_HEADERS }).end(DASHBOARD_STYLE);
        return;
      case "/events":
        this.#subscribe(res);
        return;
      case "/api/state":
        res.writeHead(200, { "content-type": "application/json", ...SECURITY_HEADERS }).end(JSON.stringify(this.#state.view()));
        return;
      case "/favicon.ico":
        res.writeHead(204, SECURITY_HEADERS).end();
        return;
      case "/healthz":
        res.writeHead(this.#source === undefined ? 503 : 200, { "content-type": "text/plain" }).end(this.#source === undefined ? "waiting\n" : "ok\n");
        return;
      default:
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  }

  /** A new event stream: every section now, then the ones that change. */
  #subscribe(res: ServerResponse): void {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", connection: "keep-alive", ...SECURITY_HEADERS });
    const view = this.#state.view();
    res.write(`retry: 2000\n\n${Object.values(DashboardSection).map((s) => sectionEvent(s, renderSection(s, view))).join("")}`);
    this.#clients.add(res);
    res.on("close", () => this.#clients.delete(res));
  }
}

/** One server-sent event carrying a rendered section. */
function sectionEvent(section: DashboardSection, html: string): string {
  return `event: section\ndata: ${JSON.stringify({ id: section, html })}\n\n`;
}

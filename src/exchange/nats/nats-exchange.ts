/**
 * What every NATS transport of one factory shares: the connection, JetStream handles, the
 * provisioned streams and buckets, the registry and its watch-fed view. Created once per factory
 * on first use; checks the server and provisions everything idempotently.
 */
import { MailboxStatus, isSendable, terminatedError } from "../mailbox-status.ts";
import type { JetStreamClient, JetStreamManager, PubAck, StreamConfig } from "@nats-io/jetstream";
import { DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { headers as natsHeaders, nanos } from "@nats-io/nats-core";
import type { MsgHdrs, NatsConnection, Subscription } from "@nats-io/nats-core";
import { ExchangeNotFoundError, ForeignSiteError, InvalidConfigError, MalformedMessageError, PayloadTooLargeError, UnknownSiteError, UnsupportedServerError } from "../../errors.ts";
import { EntityRole } from "../../identifiers.ts";
import type { AgentId, EntityId } from "../../identifiers.ts";
import { decodeMessage, encodeMessage } from "../../protocol/codec.ts";
import { toFailure } from "../../protocol/failure.ts";
import { NatsHeader, MessageType, deduplicationId, isRequest, responseRouting } from "../../protocol/messages.ts";
import type { Message } from "../../protocol/messages.ts";
import type { Logger } from "../../util/logger.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { natsLayout } from "./nats-layout.ts";
import type { NatsLayout } from "./nats-layout.ts";
import { HeaderBlock } from "./header-block.ts";
import type { PublishHeaders } from "./header-block.ts";
import { JetStreamPublisher } from "./js-publisher.ts";
import { isConsumerNotFound, isStreamNotFound, retryAfterFailure, withNatsRetry } from "./nats-errors.ts";
import type { RetryOptions } from "./nats-errors.ts";
import { NatsRegistry } from "./nats-registry.ts";
import { RegistryView } from "./registry-view.ts";
import { NatsSiteLink } from "./nats-site-link.ts";
import { CodecResultStore } from "../result-store.ts";
import type { ResultStore } from "../result-store.ts";
import { natsResultBytes } from "./nats-result-store.ts";
import { batchWrites } from "./write-batching.ts";
import { encodeCommandsWithBuffer } from "./command-encoding.ts";

/** The oldest server this library runs on (work-queue streams, KV, `next_by_subj`, durable inactivity). */
export const MIN_SERVER_VERSION = "2.9.0";

/** Resolved JetStream settings of a NATS exchange (see `NatsExchangeOptions` for meanings). */
export interface NatsSettings {
  readonly prefix: string;
  /** Replicas of new streams and buckets; undefined: chosen from the cluster's size when provisioning. */
  readonly replicas: number | undefined;
  readonly storage: "file" | "memory";
  readonly ackWaitMs: number;
  readonly maxDeliveries: number;
  readonly maxAckPending: number;
  readonly duplicateWindowMs: number;
  readonly retryWindowMs: number;
  readonly requestTimeoutMs: number;
  readonly consumerInactiveMs: number;
  readonly deadLetterMaxAgeMs: number;
  /** How long results are kept for effectively-once execution, in ms; 0: off. */
  readonly resultWindowMs: number;
  readonly replies: "mailbox" | "core";
  /** This site's JetStream domain, checked on open; undefined: no site identity. */
  readonly domain: string | undefined;
  /** The other sites this factory reaches (empty: a single-site exchange). */
  readonly sites: readonly NatsSiteSettings[];
  readonly outboxMaxAgeMs: number;
  readonly outboxMaxBytes: number;
  /** Whether this process relays the other sites' messages into this one. */
  readonly relay: boolean;
}

/** A remote site: its name (prefix) and JetStream domain. */
export interface NatsSiteSettings {
  readonly name: string;
  readonly domain: string;
}

/** A message being dead-lettered: its bytes, where it was, and its routing headers. */
export interface DeadLetterSource {
  readonly data: Uint8Array;
  readonly subject: string;
  /** Stream sequence in the mailbox stream. */
  readonly seq: number;
  /** Routing headers of the original, kept on the dead letter as `Academy-Original-<name>`. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/** Settings as a connected exchange uses them: the number of replicas is known. */
export type ResolvedNatsSettings = NatsSettings & { readonly replicas: number };

/** How the replicas of new streams and buckets were chosen (logged at provisioning). */
export interface ReplicasDecision {
  readonly replicas: number;
  /** `option`: the `replicas` option; `cluster size`: from the servers the connected server reports. */
  readonly source: "option" | "cluster size";
  /** Servers of the cluster as the connected server reports them (1 when it is not clustered; undefined when it does not say). */
  readonly clusterServers: number | undefined;
}

/**
 * Replicas for new streams and buckets when the `replicas` option is not set: 3 when the server
 * is in a cluster of three or more servers, else 1. The size is the number of distinct client URLs
 * the server advertises (`connect_urls` of its INFO, itself included), which nats-server 2.9 sends
 * to clients of a clustered server unless the cluster sets `no_advertise`; a clustered server that
 * advertises none has an unknown size, and gets 1 (set `replicas` there).
 */
export function replicasForServer(info: { readonly cluster?: string | undefined; readonly connect_urls?: readonly string[] | undefined } | undefined, option?: number): ReplicasDecision {
  const clustered = info?.cluster !== undefined && info.cluster !== "";
  const advertised = new Set(info?.connect_urls ?? []).size;
  const clusterServers = !clustered ? 1 : advertised > 0 ? advertised : undefined;
  if (option !== undefined) return { replicas: option, source: "option", clusterServers };
  return { replicas: clusterServers !== undefined && clusterServers >= 3 ? 3 : 1, source: "cluster size", clusterServers };
}

/** What a mailbox reader hears of its consumer (see `NatsExchange.watchMailbox`). */
export interface MailboxWatcher {
  /** The mailbox's subject in the mailbox stream. */
  readonly subject: string;
  /** The consumer was deleted. */
  consumerDeleted(): void;
  /** The connection came back after an outage. Settles once the consumer has been checked. */
  reconnected(): Promise<void>;
  /**
   * Look for messages the server keeps in the mailbox behind its consumer (after a leader change,
   * NATS-LAYOUT.md 5.2). Settles once checked (and, if one was found, once the consumer is made
   * again).
   * @param consumerElectedAt - the time of the election of this mailbox's consumer's leader,
   *   when that was the change (every creation of a consumer also announces one).
   */
  checkBehind(consumerElectedAt?: number): Promise<void>;
}

/** How many mailboxes check their consumer at a time after a reconnect or a leader change. */
const MAILBOX_CHECKS_AT_ONCE = 32;

/**
 * When, after a leader change of the mailbox stream or of a mailbox consumer (or a reconnect), its
 * mailboxes look for messages left behind their consumers: once the new leader has taken over,
 * and again once the publications and acknowledgements retried across the change have landed.
 */
const BEHIND_CHECKS_AFTER_MS = [2_000, 15_000] as const;

/** The JetStream storage type of the settings. */
export function storageType(settings: Pick<NatsSettings, "storage">): StorageType {
  return settings.storage === "memory" ? StorageType.Memory : StorageType.File;
}

/** Options of every KV bucket the library creates (latest value only). */
export function kvBucketOptions(settings: ResolvedNatsSettings): { history: number; replicas: number; storage: StorageType; timeout: number } {
  return { history: 1, replicas: settings.replicas, storage: storageType(settings), timeout: settings.requestTimeoutMs };
}

const SETTLED: Promise<void> = Promise.resolve();

/** Bytes NATS adds for a header block: `NATS/1.0\r\n`, each `key: value\r\n`, then `\r\n`. */
function headerBytes(fields: ReadonlyArray<readonly [string, string]>): number {
  let size = 12;
  for (const [k, v] of fields) size += Buffer.byteLength(k) + Buffer.byteLength(v) + 4;
  return size;
}

/** The size of the re-publication mark (PROTOCOL.md 10.10) in a header block. */
const RESENT_BYTES = headerBytes([[NatsHeader.Resent, "1"]]) - headerBytes([]);

/** Parse `major.minor.patch` (ignoring pre-release suffixes). */
function versionTuple(version: string): [number, number, number] {
  const [major = 0, minor = 0, patch = 0] = version.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0);
  return [major, minor, patch];
}

function versionAtLeast(version: string, minimum: string): boolean {
  const a = versionTuple(version);
  const b = versionTuple(minimum);
  for (let i = 0; i < 3; i++) if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  return true;
}

export class NatsExchange {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly layout: NatsLayout;
  readonly settings: ResolvedNatsSettings;
  readonly registry: NatsRegistry;
  readonly view: RegistryView;
  readonly logger: Logger;
  /** The server's `max_payload`, in bytes (headers included). */
  readonly maxPayload: number;
  /**
   * This exchange's site (its prefix) when it has a site identity (option `domain`): ids it mints
   * carry it. Undefined for a single-site exchange.
   */
  readonly site: string | undefined;
  /** Links to the other sites, by name (empty for a single-site exchange). */
  readonly links: ReadonlyMap<string, NatsSiteLink>;
  /** Whether missing streams and buckets are created (else they are `ExchangeNotFoundError`s). */
  readonly provisioning: Provisioning;
  readonly #mailboxWatchers = new Map<string, MailboxWatcher>();
  readonly #publisher: JetStreamPublisher;
  /** The retries of the message path's publishes (the retry window of `retry`). */
  readonly #publishRetry: RetryOptions;
  #results: Promise<ResultStore | undefined> | undefined;
  #advisories: Subscription[] | undefined;
  /** Leader changes whose checks (`#checkBehind`) are running, by what changed: the time of the latest. */
  readonly #leaderChanges = new Map<string, number>();

  private constructor(
    nc: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
    settings: ResolvedNatsSettings,
    registryKv: KV,
    typesKv: KV,
    listsKv: KV,
    logger: Logger,
    provisioning: Provisioning,
  ) {
    this.nc = nc;
    this.provisioning = provisioning;
    this.js = js;
    this.jsm = jsm;
    this.settings = settings;
    this.layout = natsLayout(settings.prefix);
    this.logger = logger;
    this.site = settings.domain === undefined ? undefined : settings.prefix;
    this.maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    // One socket write per event-loop turn (write-batching.ts).
    batchWrites(nc);
    encodeCommandsWithBuffer(nc);
    this.#publisher = new JetStreamPublisher(nc);
    this.#publishRetry = { windowMs: settings.retryWindowMs, what: "publish" };
    this.registry = new NatsRegistry(registryKv, typesKv, listsKv, js, jsm, { registry: this.layout.registryBucket, types: this.layout.typesBucket }, settings.retryWindowMs, this.site, (what, subject, data, headers) => this.publishRecord(what, subject, data, headers));
    this.view = new RegistryView(registryKv, logger, () => nc.isClosed(), this.site);
    this.links = new Map(settings.sites.map((site) => [site.name, new NatsSiteLink(this, site)]));
  }

  /**
   * Check the server and provision the streams and buckets (idempotent; safe to race); with
   * `provision: false`, only check that they exist.
   * @throws {UnsupportedServerError} for a server older than {@link MIN_SERVER_VERSION} or without JetStream.
   * @throws {InvalidConfigError} if an existing stream has an incompatible configuration.
   * @throws {ExchangeNotFoundError} with `provision: false`, when a stream or bucket is missing.
   */
  static async open(
    nc: NatsConnection,
    requested: NatsSettings,
    logger: Logger,
    options: { readonly provision?: boolean } = {},
  ): Promise<NatsExchange> {
    const version = nc.info?.version ?? "0.0.0";
    if (!versionAtLeast(version, MIN_SERVER_VERSION)) {
      throw new UnsupportedServerError(
        `nats-server ${version} is too old: this library needs ${MIN_SERVER_VERSION} or later with JetStream enabled`,
        { serverVersion: version },
      );
    }
    if (nc.info?.jetstream !== true) {
      throw new UnsupportedServerError(`nats-server ${version} has JetStream disabled: start it with -js (or jetstream {} in its config)`, {
        serverVersion: version,
      });
    }
    const decision = replicasForServer(nc.info, requested.replicas);
    const settings: ResolvedNatsSettings = Object.freeze({ ...requested, replicas: decision.replicas });
    if (options.provision !== false) {
      const log = { prefix: settings.prefix, replicas: decision.replicas, source: decision.source, cluster: nc.info?.cluster, clusterServers: decision.clusterServers };
      if (decision.source === "cluster size" && decision.clusterServers === undefined) {
        logger.warn(log, "the server is clustered but does not say how many servers: new streams and buckets get 1 replica (set the replicas option)");
      } else {
        logger.info(log, "replicas of new streams and buckets (existing ones are kept as they are)");
      }
    }
    const retry = <T>(what: string, op: () => Promise<T>): Promise<T> =>
      withNatsRetry(op, { windowMs: settings.retryWindowMs, what });
    const jsm = await retry("reach JetStream", () => jetstreamManager(nc, { timeout: settings.requestTimeoutMs }));
    const js = jetstream(nc, { timeout: settings.requestTimeoutMs });
    const layout = natsLayout(settings.prefix);
    const storage = storageType(settings);
    if (settings.domain !== undefined) {
      const serverDomain = (await retry("read the JetStream domain", () => jsm.getAccountInfo())).domain ?? "";
      if (serverDomain !== settings.domain) {
        throw new ForeignSiteError(
          `Site ${settings.prefix} lives in JetStream domain ${settings.domain}, but the server serves domain ${JSON.stringify(serverDomain)}: ` +
            "a factory provisions only in its own domain; connect to a server of that site, or reach it as a remote site (option sites)",
          { site: settings.prefix, domain: settings.domain, serverDomain },
        );
      }
    }
    const provision: Provisioning = { provision: options.provision ?? true, prefix: settings.prefix };

    await retry("provision mailbox stream", () =>
      ensureStream(jsm, logger, {
        name: layout.mailboxStream,
        subjects: [layout.mailboxSubjects],
        retention: RetentionPolicy.Workqueue,
        storage,
        num_replicas: settings.replicas,
        duplicate_window: nanos(settings.duplicateWindowMs),
        discard: DiscardPolicy.Old,
      }, () => assertNotMirrored(jsm, layout.registryBucket, settings.prefix), provision),
    );
    await retry("provision dead-letter stream", () =>
      ensureStream(jsm, logger, {
        name: layout.deadLetterStream,
        subjects: [layout.deadLetterSubjects],
        retention: RetentionPolicy.Limits,
        storage,
        num_replicas: settings.replicas,
        max_age: nanos(settings.deadLetterMaxAgeMs),
        discard: DiscardPolicy.Old,
      }, undefined, provision),
    );
    const kvm = new Kvm(js);
    const bucketOptions = kvBucketOptions(settings);
    const registryKv = await retry("provision registry bucket", () => openBucket(kvm, jsm, layout.registryBucket, bucketOptions, provision));
    const typesKv = await retry("provision type index bucket", () => openBucket(kvm, jsm, layout.typesBucket, bucketOptions, provision));
    // The type index's member lists: a bucket of their own, which other sites never mirror.
    const listsKv = await retry("provision type index member lists bucket", () => openBucket(kvm, jsm, layout.memberListsBucket, bucketOptions, provision));
    // The buckets opened on first use elsewhere (result records, durable state, reminders) are made
    // with the others, so that users who only look streams up (an operator provisions) find them;
    // without provisioning each is opened when first needed.
    if (provision.provision) {
      if (settings.resultWindowMs > 0) {
        await retry("provision results bucket", () => openBucket(kvm, jsm, layout.resultsBucket, { ...bucketOptions, ttl: settings.resultWindowMs }, provision));
      }
      await retry("provision state bucket", () => kvm.create(layout.stateBucket, bucketOptions));
      await retry("provision reminders bucket", () => kvm.create(layout.remindersBucket, bucketOptions));
    }
    logger.debug({ prefix: settings.prefix, serverVersion: version }, "NATS exchange ready");
    const exchange = new NatsExchange(nc, js, jsm, settings, registryKv, typesKv, listsKv, logger, provision);
    if (provision.provision) {
      // Layout 2 of the type index (member lists): complete it from layout 1 if an earlier version
      // made the deployment, then remove the lists earlier versions kept in the types bucket
      // (NATS-LAYOUT.md 6.4).
      const migrated = await exchange.registry.ensureMemberLayout();
      if (migrated > 0) logger.info({ agents: migrated }, "type index member lists built from the per-uid index");
      if (await exchange.registry.removeLegacyMemberLists()) {
        logger.info({ bucket: layout.typesBucket }, "type index member lists of an earlier version removed from the types bucket");
      }
      // Records whose last write is a compare-and-set (terminations by earlier versions) stall
      // other sites' mirrors of the registry: rewritten once as plain puts (nats-registry.ts).
      const rewritten = await exchange.registry.rewriteCompareAndSetRecords();
      if (rewritten > 0) logger.info({ records: rewritten }, "registry records of an earlier version rewritten for other sites' mirrors");
    }
    for (const link of exchange.links.values()) link.start();
    return exchange;
  }

  /**
   * The result records of effectively-once execution: the bucket `<prefix>_results` (max age: the
   * result window), provisioned or opened on first use; undefined when `resultWindowMs` is 0.
   * @throws {ExchangeNotFoundError} without provisioning, when the bucket does not exist.
   */
  results(): Promise<ResultStore | undefined> {
    if (this.settings.resultWindowMs === 0) return Promise.resolve(undefined);
    if (this.#results === undefined) {
      const opening = this.#openResults();
      this.#results = opening;
      opening.catch(() => {
        if (this.#results === opening) this.#results = undefined;
      });
    }
    return this.#results;
  }

  async #openResults(): Promise<ResultStore> {
    const { layout, settings } = this;
    const options = { ...kvBucketOptions(settings), ttl: settings.resultWindowMs };
    const kvm = new Kvm(this.js);
    let kv = await this.retry("provision results bucket", () => openBucket(kvm, this.jsm, layout.resultsBucket, options, this.provisioning));
    // With one replica there is no follower to lag: a direct get (cheaper than a read through the
    // stream's leader) sees every acknowledged write.
    const info = await this.retry("look up results bucket", () => this.jsm.streams.info(`KV_${layout.resultsBucket}`));
    if (info.config.num_replicas === 1 && info.config.allow_direct === true) kv = await kvm.open(layout.resultsBucket, { timeout: options.timeout });
    return new CodecResultStore(natsResultBytes(this, kv, layout.resultsBucket, settings.resultWindowMs, this.maxPayload));
  }

  /**
   * The link to another site.
   * @throws {UnknownSiteError} if this exchange has none to it (not in its `sites`).
   */
  link(site: string): NatsSiteLink {
    const link = this.links.get(site);
    if (link === undefined) {
      throw new UnknownSiteError(
        `Site ${site} is not one of the sites this exchange reaches (${this.links.size === 0 ? "none" : [...this.links.keys()].join(", ")}): add it to the option sites`,
        { site },
      );
    }
    return link;
  }

  /** Whether `site` names another site than this exchange's own (undefined: its own). */
  isRemote(site: string | undefined): site is string {
    return site !== undefined && site !== this.layout.prefix;
  }

  /** Stop the links to other sites and the registry view. Idempotent. */
  async close(): Promise<void> {
    this.view.close();
    await Promise.all([...this.links.values()].map((link) => link.close()));
  }

  /**
   * Tell `watcher` when the mailbox consumer `consumer` is deleted (by a termination, by hand, or
   * by the server) and when the connection comes back after an outage (a server restarted
   * without its state loses consumers silently). Push consumers send nothing while idle, so these
   * are how a reader learns that its consumer is gone. Also when to look for messages behind the
   * consumer (`checkBehind`): after leader changes of the mailbox stream or of the consumer, and
   * after reconnects. Three advisory subscriptions and one status loop serve every mailbox of the
   * connection; the watchers are called a few at a time.
   */
  watchMailbox(consumer: string, watcher: MailboxWatcher): () => void {
    if (this.#advisories === undefined) {
      const stream = this.layout.mailboxStream;
      const deleted = `$JS.EVENT.ADVISORY.CONSUMER.DELETED.${stream}.`;
      const consumerLeader = `$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.${stream}.`;
      this.#advisories = [
        this.nc.subscribe(`${deleted}*`, {
          callback: (error, msg) => {
            if (error !== null) return;
            this.#mailboxWatchers.get(msg.subject.slice(deleted.length))?.consumerDeleted();
          },
        }),
        // Leader changes (clustered servers only): a new leader can be behind what the old one
        // delivered, or past what it stored (NATS-LAYOUT.md 5.2, "Messages behind the consumer").
        this.nc.subscribe(`${consumerLeader}*`, {
          callback: (error, msg) => {
            if (error !== null) return;
            const name = msg.subject.slice(consumerLeader.length);
            if (!this.#mailboxWatchers.has(name)) return;
            this.#leaderChanged(name, () => {
              const watcher = this.#mailboxWatchers.get(name);
              return watcher === undefined ? [] : [watcher];
            });
          },
        }),
        this.nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${stream}`, {
          callback: (error) => {
            if (error === null) this.#leaderChanged("", () => this.#watchersHoldingMessages());
          },
        }),
      ];
      void this.#watchReconnects();
    }
    this.#mailboxWatchers.set(consumer, watcher);
    return () => {
      if (this.#mailboxWatchers.get(consumer) === watcher) this.#mailboxWatchers.delete(consumer);
    };
  }

  async #watchReconnects(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type !== "reconnect") continue;
      const watchers = [...this.#mailboxWatchers.values()];
      this.logger.info({ mailboxes: watchers.length }, "reconnected; checking mailbox consumers");
      await this.#eachMailbox(watchers, (w) => w.reconnected());
      // A client that was cut off hears no advisory sent meanwhile: treat it as a leader change.
      this.#leaderChanged("", () => this.#watchersHoldingMessages());
    }
  }

  /**
   * The watched mailboxes to check after a change of the mailbox stream or a reconnect. Many
   * mailboxes (a host's): only those holding messages, listed by the stream's per-subject counts at
   * its leader (a work queue keeps only what is not yet acknowledged, so an idle mailbox is not
   * listed), so that a host of 10,000 idle agents checks with a few requests rather than 10,000.
   * The listing names every mailbox of the stream holding messages, this connection's or not: it
   * is used only when it is shorter than the list of this connection's mailboxes (the stream's
   * subject count, read first); else, and for a few mailboxes (a user client's), or if the stream
   * cannot be read, every watched mailbox checks.
   */
  async #watchersHoldingMessages(): Promise<readonly MailboxWatcher[]> {
    const watchers = [...this.#mailboxWatchers.values()];
    if (watchers.length <= MAILBOX_CHECKS_AT_ONCE) return watchers;
    try {
      const stream = this.layout.mailboxStream;
      if (((await this.jsm.streams.info(stream)).state.num_subjects ?? 0) > watchers.length) return watchers;
      const subjects = (await this.jsm.streams.info(stream, { subjects_filter: this.layout.mailboxSubjects })).state.subjects ?? {};
      return watchers.filter((w) => subjects[w.subject] !== undefined);
    } catch (error) {
      this.logger.debug({ err: error }, "could not list the mailboxes holding messages; checking every mailbox");
      return watchers;
    }
  }

  /** Run `check` on `watchers`, a few at a time. */
  async #eachMailbox(watchers: readonly MailboxWatcher[], check: (w: MailboxWatcher) => Promise<void>): Promise<void> {
    for (let i = 0; i < watchers.length; i += MAILBOX_CHECKS_AT_ONCE) {
      await Promise.all(watchers.slice(i, i + MAILBOX_CHECKS_AT_ONCE).map(check));
    }
  }

  /**
   * A leader changed (`key`: a mailbox consumer's name, or "" for the mailbox stream or a
   * reconnect): the mailboxes `watchers()` gives look for messages behind their consumers at each
   * of {@link BEHIND_CHECKS_AFTER_MS} after it. A change while checks run starts them over.
   */
  #leaderChanged(key: string, watchers: () => readonly MailboxWatcher[] | Promise<readonly MailboxWatcher[]>): void {
    const running = this.#leaderChanges.has(key);
    this.#leaderChanges.set(key, Date.now());
    if (running) return;
    void this.#checkBehind(key, watchers);
  }

  async #checkBehind(key: string, watchers: () => readonly MailboxWatcher[] | Promise<readonly MailboxWatcher[]>): Promise<void> {
    try {
      let changedAt = 0;
      let pass = 0;
      while (pass < BEHIND_CHECKS_AFTER_MS.length && !this.nc.isClosed()) {
        const latest = this.#leaderChanges.get(key) ?? changedAt;
        if (latest !== changedAt) {
          changedAt = latest;
          pass = 0;
        }
        const wait = changedAt + BEHIND_CHECKS_AFTER_MS[pass]! - Date.now();
        if (wait > 0) {
          await sleep(wait, undefined, { ref: false });
          continue;
        }
        await this.#eachMailbox(await watchers(), (w) => w.checkBehind(key === "" ? undefined : changedAt));
        pass++;
      }
    } finally {
      this.#leaderChanges.delete(key);
    }
  }

  /**
   * Retry a NATS operation through transient failures, within the retry window; with `signal`,
   * no attempt starts after it is aborted (`ClientClosedError`).
   */
  retry<T>(what: string, operation: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withNatsRetry(operation, { windowMs: this.settings.retryWindowMs, what, signal });
  }

  /**
   * Put a message in its destination mailbox (JetStream, de-duplicated by message id), or publish a
   * response to its `replyTo` core subject.
   * @throws {PayloadTooLargeError} if it exceeds the server's `max_payload`.
   * @throws {ExchangeUnavailableError} if the server does not take it within the retry window.
   */
  send(message: Message, resent = false): Promise<void> {
    // Not async (one promise fewer per message): what it throws becomes a rejection.
    try {
      return this.#send(message, resent);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #send(message: Message, resent: boolean): Promise<void> {
    if (message.destSite !== undefined && message.destSite !== this.layout.prefix) return this.#sendRemote(message);
    const data = encodeMessage(message);
    const request = isRequest(message);
    const headers = new HeaderBlock();
    headers.set(NatsHeader.MsgId, deduplicationId(message));
    // The sender's mailbox for answering a request whose body cannot be read; a response is never
    // answered, so it goes without (about 50 bytes less per response, both ways: PROTOCOL.md 6.3).
    if (request && message.src !== undefined) headers.set(NatsHeader.Source, message.src);
    if (resent) headers.set(NatsHeader.Resent, "1");
    // Room for the re-publication mark that a retry adds (#publish).
    this.checkSize(data.byteLength + headers.encode().byteLength + (resent ? 0 : RESENT_BYTES), `Message to ${message.dest}`);
    if (!request && message.replyTo !== undefined) {
      // Every reply this process publishes passes here: never into the exchange's own subjects.
      if (message.replyTo.startsWith(`${this.layout.prefix}.`)) {
        throw new MalformedMessageError(`replyTo ${message.replyTo} is inside the exchange's own subjects; not replying there`);
      }
      // A caller without a mailbox: a core NATS reply. The request's ack follows it on the same
      // connection, so the server has the reply before it can see the ack (no flush needed).
      this.nc.publish(message.replyTo, data);
      return SETTLED;
    }
    return this.#store(this.layout.mailboxSubject(message.dest), data, headers);
  }

  /**
   * Put a message for a mailbox of another site into the outbox to that site, from where that
   * site's mirror and relay take it to the mailbox: stored here even while the uplink is down. It
   * carries this site in `srcSite` (where answers go) and never a `replyTo`: answers from another
   * site come back through this site's mailboxes.
   */
  async #sendRemote(message: Message): Promise<void> {
    const site = message.destSite!;
    const link = this.link(site);
    await link.ready();
    const request = isRequest(message);
    const routed: Message =
      request && message.src !== undefined
        ? { ...message, replyTo: undefined, srcSite: this.layout.prefix, destSite: undefined }
        : { ...message, srcSite: this.layout.prefix, destSite: undefined };
    const data = encodeMessage(routed);
    const headers = new HeaderBlock();
    headers.set(NatsHeader.MsgId, deduplicationId(message));
    if (request && message.src !== undefined) headers.set(NatsHeader.Source, message.src);
    this.checkSize(data.byteLength + headers.encode().byteLength + RESENT_BYTES, `Message to ${message.dest}@${site}`);
    await this.#publish(this.layout.outboxMailboxSubject(site, message.dest), data, headers);
  }

  /**
   * Store a message that is already encoded in a subject of this site's streams (the relay
   * forwarding what another site sent), de-duplicated by its `Nats-Msg-Id` header.
   */
  publishStored(subject: string, data: Uint8Array, headers: PublishHeaders): Promise<PubAck> {
    return this.#publish(subject, data, headers);
  }

  /** {@link publishStored} for a message whose acknowledgement is not read: resolves once stored. */
  store(subject: string, data: Uint8Array, headers: PublishHeaders): Promise<void> {
    return this.#store(subject, data, headers);
  }

  /**
   * Store a control-plane record — a KV write (its subject and `Nats-Expected-Last-Subject-Sequence`
   * header made by the caller: `kv-records.ts`), a launch request — through the shared-inbox
   * publisher, retrying transient failures within the retry window. Unlike `js.publish()`, no
   * nats.js request per write, so no `Error` built for each (launching 1,000 agents makes several
   * thousand of these writes). Not marked `Academy-Resent` on retries: such records are written by
   * compare-and-set or de-duplicated by message id, not read by the duplicate rule.
   */
  async publishRecord(what: string, subject: string, data: Uint8Array, headers: MsgHdrs | undefined): Promise<PubAck> {
    return this.retry(what, () => this.#publisher.publish(subject, data, headers, this.settings.requestTimeoutMs));
  }

  /**
   * Status of a mailbox of `site` (undefined: this site). Another site's is read from the local
   * mirror of its registry, which trails it (eventually consistent).
   * @throws {UnknownSiteError} for a site this exchange has no link to.
   * @throws {SiteUnreachableError} if the link to that site was never set up and it does not answer.
   */
  async statusAt(uid: string, site: string | undefined, fresh = false): Promise<MailboxStatus> {
    if (this.isRemote(site)) return this.link(site).status(uid);
    return fresh ? this.registry.status(uid) : this.status(uid);
  }

  /**
   * Active agents of a type on `site` (undefined: this site). Another site's come from the local
   * mirrors of its registry and type index, filtered by status: eventually consistent.
   */
  async discoverAt(typeName: string, allowSubclasses: boolean, site: string | undefined): Promise<AgentId[]> {
    return this.link(site!).discover(typeName, allowSubclasses);
  }

  /** Status of a mailbox of this site from the registry view, if it knows it (no round trip). */
  knownStatus(uid: string): MailboxStatus | undefined {
    this.view.start();
    return this.view.status(uid);
  }

  /** Status of a mailbox, from the registry view when it knows, else from the bucket. */
  async status(uid: string): Promise<MailboxStatus> {
    const known = this.knownStatus(uid);
    if (known !== undefined) return known;
    const entry = await this.registry.get(uid);
    if (entry === undefined) return MailboxStatus.Missing;
    this.view.apply(entry);
    return entry.record.status;
  }

  /**
   * Answer a request on the exchange's behalf (termination, rejection): to its `replyTo`, or to
   * its sender's mailbox if that is still active (never creating messages nobody will read).
   */
  async answer(response: Message): Promise<void> {
    if (response.replyTo === undefined) {
      const remote = this.isRemote(response.destSite);
      if (!isSendable(await this.statusAt(response.dest, response.destSite), remote)) return;
    }
    await this.send(response);
  }

  /**
   * Record a message that could not be handled on the dead-letter stream, with the reason and the
   * original routing headers, on `subject` (under the dead-letter stream's `<prefix>.dlq.>`).
   * De-duplicated by `msgId`, by default the original's stream sequence.
   */
  async deadLetter(subject: string, original: DeadLetterSource, error: Error, msgId = `dl:${original.seq}`): Promise<void> {
    const headers = natsHeaders();
    headers.set("Academy-Dead-Reason", (error as { code?: string }).code ?? error.name);
    headers.set("Academy-Dead-Error", error.message.replace(/[\r\n]+/g, " ").slice(0, 512));
    headers.set("Academy-Original-Subject", original.subject);
    headers.set("Academy-Original-Seq", String(original.seq));
    for (const [name, value] of original.headers) headers.set(`Academy-Original-${name}`, value);
    // e.g. Academy-Original-Msg-Id, Academy-Original-Src, Academy-Original-Reply-To
    await this.retry("dead-letter", () =>
      this.js.publish(subject, original.data, { headers, msgID: msgId }),
    );
  }

  /**
   * Terminate a mailbox: mark it terminated, stop its consumer, answer every request still in it
   * with `MailboxTerminatedError`, then purge it. Idempotent; no-op for unknown ids.
   */
  async terminate(id: EntityId): Promise<void> {
    const terminated = await this.registry.markTerminated(id.uid);
    if (terminated !== undefined) this.view.apply(terminated);
    const role = terminated?.record.role ?? id.role;
    const { layout, jsm } = this;
    await this.retry("delete mailbox consumer", async () => {
      try {
        await jsm.consumers.delete(layout.mailboxStream, layout.mailboxConsumer(id.uid));
      } catch (error) {
        if (!isConsumerNotFound(error)) throw error;
      }
    });
    const subject = layout.mailboxSubject(id.uid);
    const error = toFailure(terminatedError(id.uid, role === EntityRole.User ? EntityRole.User : EntityRole.Agent));
    for (let seq = 1; ; ) {
      const stored = await this.retry("read mailbox", () =>
        jsm.streams.getMessage(layout.mailboxStream, { seq, next_by_subj: subject } as never),
      );
      if (stored === null) break;
      seq = stored.seq + 1;
      let message: Message;
      try {
        message = decodeMessage(stored.data);
      } catch {
        continue;
      }
      if (!isRequest(message) || (message.src === undefined && message.replyTo === undefined)) continue;
      await this.answer({ ...responseRouting(message), type: MessageType.ErrorResponse, error }).catch((sendError: unknown) => {
        this.logger.debug({ err: sendError, tag: message.tag }, "could not answer request in terminated mailbox");
      });
    }
    await this.retry("purge mailbox", () => jsm.streams.purge(layout.mailboxStream, { filter: subject }));
  }

  /**
   * Publish a mailbox message, retrying with the same message id. Every attempt after the first
   * carries `Academy-Resent: 1`: if the first was stored and the retry comes after the duplicate
   * window, the retry is stored again, and the mark makes the agent read the request's result
   * record before running it (PROTOCOL.md 10.10).
   */
  #publish(subject: string, data: Uint8Array, headers: PublishHeaders): Promise<PubAck> {
    return this.#stored(subject, data, headers, true) as Promise<PubAck>;
  }

  /** {@link #publish} that resolves with undefined once stored (no acknowledgement object). */
  #store(subject: string, data: Uint8Array, headers: PublishHeaders): Promise<void> {
    return this.#stored(subject, data, headers, false) as Promise<void>;
  }

  #stored(subject: string, data: Uint8Array, headers: PublishHeaders, wantsAck: boolean): Promise<unknown> {
    // `retry("publish", ...)` without its `.catch()` per publish: the publish hands a failure to
    // the retries itself (one promise per publish; the same attempts, errors and window).
    const startedAt = Date.now();
    const timeoutMs = this.settings.requestTimeoutMs;
    const publisher = this.#publisher;
    return publisher.send(subject, data, headers, timeoutMs, wantsAck, (error) => {
      headers.set(NatsHeader.Resent, "1");
      return retryAfterFailure(() => publisher.send(subject, data, headers, timeoutMs, wantsAck), this.#publishRetry, startedAt, error);
    });
  }

  /**
   * @param what - what is being sent, for the message ("Message to <uid>").
   * @throws {PayloadTooLargeError} if `size` exceeds the server's `max_payload`.
   */
  checkSize(size: number, what: string): void {
    if (size > this.maxPayload) {
      throw new PayloadTooLargeError(
        `${what} is ${size} bytes (headers included); the NATS server's max_payload is ${this.maxPayload} bytes`,
        { size, limit: this.maxPayload },
      );
    }
  }
}

/**
 * Refuse to provision a prefix whose registry is, in this domain, a read-only mirror of another
 * site's: the prefix belongs to that site, and streams made here would be an empty copy of it.
 * @throws {ForeignSiteError} if the registry bucket here is a mirror.
 */
async function assertNotMirrored(jsm: JetStreamManager, registryBucket: string, prefix: string): Promise<void> {
  try {
    const info = await jsm.streams.info(`KV_${registryBucket}`);
    const mirror = info.config.mirror;
    if (mirror !== undefined && mirror !== null) {
      const domain = /^\$JS\.([^.]+)\.API$/.exec(mirror.external?.api ?? "")?.[1];
      throw new ForeignSiteError(
        `Prefix ${prefix} is a site mirrored here from ${domain === undefined ? "elsewhere" : `JetStream domain ${domain}`}: it belongs to that site; ` +
          "reach it as a remote site (option sites) or connect to one of its servers",
        { site: prefix, ...(domain !== undefined && { domain }) },
      );
    }
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
  }
}

/**
 * Create a stream, or check that the existing one is compatible (same retention, covers our
 * subjects). Another process may create it at the same moment: adding twice is fine.
 */
/** Whether to create what is missing, and the prefix to name when not. */
export interface Provisioning {
  readonly provision: boolean;
  readonly prefix: string;
}

/** The error for a stream or bucket that is missing and not to be created. */
export function notFound(prefix: string, resource: string): ExchangeNotFoundError {
  return new ExchangeNotFoundError(
    `No exchange with prefix '${prefix}' on this NATS server (${resource} does not exist): check the prefix; ` +
      "the streams and buckets are created by the first manager or host that uses it",
    { prefix, resource },
  );
}

/**
 * A KV bucket: created if missing (an existing one is used as it is), or, without provisioning,
 * opened if it exists. The handle returned reads at the leader of the bucket's stream
 * (`STREAM.MSG.GET`): the KV client would otherwise read with a direct get, which any replica
 * answers, a follower that has not yet applied the latest write included, so a read right after a
 * write (this process's own, or one another process made before telling this one) could miss it.
 * Writes and watches are the same through either handle; the bucket keeps direct get enabled for
 * other readers (docs/NATS-LAYOUT.md section 6.1).
 * @throws {ExchangeNotFoundError} without provisioning, when the bucket does not exist.
 */
export async function openBucket(
  kvm: Kvm,
  jsm: JetStreamManager,
  name: string,
  options: ReturnType<typeof kvBucketOptions> & { readonly ttl?: number },
  provisioning: Provisioning,
): Promise<KV> {
  if (provisioning.provision) {
    await kvm.create(name, options);
  } else {
    try {
      await jsm.streams.info(`KV_${name}`);
    } catch (error) {
      if (isStreamNotFound(error)) throw notFound(provisioning.prefix, `bucket ${name}`);
      throw error;
    }
  }
  return kvm.open(name, { allow_direct: false, timeout: options.timeout });
}

export async function ensureStream(
  jsm: JetStreamManager,
  logger: Logger,
  config: Partial<StreamConfig> & { name: string },
  beforeCreate?: () => Promise<void>,
  provisioning?: Provisioning,
): Promise<void> {
  let existing;
  try {
    existing = await jsm.streams.info(config.name);
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
    if (provisioning?.provision === false) throw notFound(provisioning.prefix, `stream ${config.name}`);
    await beforeCreate?.();
    try {
      await jsm.streams.add(config);
      return;
    } catch (addError) {
      existing = await jsm.streams.info(config.name).catch(() => {
        throw addError;
      });
    }
  }
  const current = existing.config;
  if (config.mirror !== undefined && current.mirror?.name !== config.mirror.name) {
    throw new InvalidConfigError(`Stream ${config.name} exists but does not mirror ${config.mirror.name}: use another prefix or remove the stream`, {
      option: "prefix",
    });
  }
  if (current.retention !== config.retention) {
    throw new InvalidConfigError(
      `Stream ${config.name} exists with retention '${current.retention}', expected '${config.retention}': use another prefix or remove the stream`,
      { option: "prefix" },
    );
  }
  const missing = (config.subjects ?? []).filter((s) => !(current.subjects ?? []).includes(s));
  if (missing.length > 0) {
    throw new InvalidConfigError(`Stream ${config.name} exists without subjects ${missing.join(", ")}: use another prefix`, {
      option: "prefix",
    });
  }
  // Existing streams are used as they are; say so when the options asked for something else.
  const drift = (["num_replicas", "storage", "duplicate_window", "max_age"] as const).filter(
    (key) => config[key] !== undefined && current[key] !== undefined && current[key] !== config[key],
  );
  if (drift.length > 0) {
    logger.warn(
      { stream: config.name, differs: Object.fromEntries(drift.map((k) => [k, { existing: current[k], requested: config[k] }])) },
      "stream exists with other settings; using it as it is (update it with the nats CLI to change them)",
    );
  }
}

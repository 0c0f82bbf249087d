/**
 * The link from this site to one other site (docs/EDGE.md): what this site keeps, in its own
 * JetStream domain, to reach that site through an uplink that fails.
 *
 * - the **outbox** `<p>_out_<site>`, a limits stream: messages (and launch requests) to that
 *   site's mailboxes are stored here, link up or down; that site mirrors it;
 * - the **inbox** `<p>_in_<site>`, a mirror of that site's outbox for this site, and a **relay**
 *   that stores each of its messages in this site's mailboxes ({@link NatsRelay});
 * - read-only **KV mirrors** of that site's registry and type index (same bucket names), read by
 *   status and discover through a watch-fed view. The index's member lists (`<site>_type_lists`)
 *   are not mirrored: they are kept by compare-and-set, and on nats-server 2.9.10 a key updated
 *   twice that way during an outage stalls a mirror for good.
 *
 * Mirrors are set up once, when the site first answers; from then on they catch up by themselves
 * after outages and restarts of either side (a mirror resumes from its own last sequence). A link
 * whose inbox exists was set up before, so a process restarted during an outage works at once,
 * offline. A link to a site that has never answered creates nothing: it says
 * `SiteUnreachableError` and tries again every few seconds.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import { DiscardPolicy, RetentionPolicy, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { nanos } from "@nats-io/nats-core";
import { SiteUnreachableError } from "../../errors.ts";
import type { AgentId } from "../../identifiers.ts";
import type { Logger } from "../../util/logger.ts";
import { MailboxStatus } from "../mailbox-status.ts";
import type { NatsExchange, NatsSiteSettings } from "./nats-exchange.ts";
import { ensureStream, kvBucketOptions, storageType } from "./nats-exchange.ts";
import { isStreamNotFound } from "./nats-errors.ts";
import { natsLayout } from "./nats-layout.ts";
import { NatsRegistry } from "./nats-registry.ts";
import { NatsRelay } from "./nats-relay.ts";
import { RegistryView } from "./registry-view.ts";


/** States of a {@link NatsSiteLink}. */
export const SiteLinkState = {
  /** Not set up yet: setting up, or waiting to try again. */
  Connecting: "connecting",
  /** Outbox, inbox, mirrors and relay are in place; works whether the uplink is up or not. */
  Ready: "ready",
  Closed: "closed",
} as const;
export type SiteLinkState = (typeof SiteLinkState)[keyof typeof SiteLinkState];

/** How soon a link that could not be set up tries again, in ms. */
const SETUP_RETRY_MS = 2_000;

/** What a ready link holds. */
interface Mirrors {
  readonly registry: NatsRegistry;
  readonly view: RegistryView;
  /** Undefined in a process that does not relay (option `relay: false`). */
  readonly relay: NatsRelay | undefined;
}


/**
 * How long a discover across sites waits for the view of the mirrored registry to catch up (one
 * watch over the local mirror, whether the link is up or not) before it falls back to the
 * mirrored type index.
 */
const VIEW_SYNC_MS = 5_000;
export class NatsSiteLink {
  readonly site: NatsSiteSettings;
  readonly #exchange: NatsExchange;
  readonly #logger: Logger;
  readonly #terminationListeners = new Set<(uid: string) => void>();
  #state: SiteLinkState = SiteLinkState.Connecting;
  #setup: Promise<Mirrors> | undefined;
  #mirrors: Mirrors | undefined;
  #retry: NodeJS.Timeout | undefined;
  #warned = false;
  /** Aborted by close(): the background renewal of the type index mirror starts nothing after it. */
  readonly #closing = new AbortController();
  /** That renewal (#renewLegacyTypesMirror) while it runs; close() waits for it. Never rejects. */
  #renewal: Promise<unknown> | undefined;

  constructor(exchange: NatsExchange, site: NatsSiteSettings) {
    this.#exchange = exchange;
    this.site = site;
    this.#logger = exchange.logger.child({ site: site.name, domain: site.domain });
  }

  get state(): SiteLinkState {
    return this.#state;
  }

  /** Set the link up in the background, trying again until it is ready or closed. */
  start(): void {
    void this.ready().catch(() => undefined);
  }

  /**
   * Resolves once the link is set up (at once when it already is).
   * @throws {SiteUnreachableError} if it was never set up and the site does not answer now.
   */
  async ready(): Promise<void> {
    await this.#ready();
  }

  #ready(): Promise<Mirrors> {
    if (this.#mirrors !== undefined) return Promise.resolve(this.#mirrors);
    if (this.#state === SiteLinkState.Closed) return Promise.reject(this.#closedError());
    this.#setup ??= this.#setUp().then(
      (mirrors) => {
        if (this.#state === SiteLinkState.Closed) {
          // Closed while it was being set up: stopped before the setup settles (close() waits).
          return this.#stop(mirrors).then(() => {
            throw this.#closedError();
          });
        }
        this.#mirrors = mirrors;
        this.#state = SiteLinkState.Ready;
        this.#logger.info("site link ready");
        return mirrors;
      },
      (error: unknown) => {
        this.#setup = undefined;
        if (this.#state !== SiteLinkState.Closed) {
          if (!this.#warned) this.#logger.warn({ err: error }, "site link not set up yet; trying again");
          this.#warned = true;
          this.#retry ??= setTimeout(() => {
            this.#retry = undefined;
            this.start();
          }, SETUP_RETRY_MS);
          this.#retry.unref();
        }
        throw error;
      },
    );
    return this.#setup;
  }

  /** Status of a mailbox of that site, from the local mirror of its registry. */
  async status(uid: string): Promise<MailboxStatus> {
    const { registry, view } = await this.#ready();
    const known = view.status(uid);
    if (known !== undefined) return known;
    const entry = await registry.get(uid);
    if (entry === undefined) return MailboxStatus.Missing;
    view.apply(entry);
    return entry.record.status;
  }

  /**
   * Active agents of a type on that site, from the local mirrors: the view of the mirrored
   * registry, waited for up to {@link VIEW_SYNC_MS} when it has not caught up yet (a fresh
   * process), else the mirrored type index's per-uid keys checked against the mirrored registry.
   * The index is only a fallback: purges of its keys are not mirrored, and its mirror is a stream
   * of its own that can trail the registry's, so it may miss agents the registry has.
   */
  async discover(typeName: string, allowSubclasses: boolean): Promise<AgentId[]> {
    const { registry, view } = await this.#ready();
    view.start();
    const warm = await view.discover(typeName, allowSubclasses, VIEW_SYNC_MS);
    if (warm !== undefined) return warm;
    const hits = await registry.indexHits(typeName, allowSubclasses);
    return (await registry.checkHits(hits, typeName, allowSubclasses)).found;
  }

  /** Call `listener(uid)` when a mailbox of that site is seen terminated in the mirror. */
  onTerminated(listener: (uid: string) => void): () => void {
    this.#terminationListeners.add(listener);
    return () => this.#terminationListeners.delete(listener);
  }

  /**
   * Stop the relay and the view; the streams stay. A setup still running starts no further step
   * and stops what it started before this resolves (it waits for the step in flight, one NATS
   * request at most); a renewal of the type index mirror still running starts no further stream
   * operation, and one already deleting the mirror makes it again before this resolves: no stream
   * or consumer operation of the link happens after it. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#state === SiteLinkState.Closed) return;
    this.#state = SiteLinkState.Closed;
    this.#closing.abort();
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    const mirrors = this.#mirrors;
    this.#mirrors = undefined;
    if (mirrors !== undefined) await this.#stop(mirrors);
    else await this.#setup?.then(
      () => undefined,
      () => undefined,
    );
    await this.#renewal;
  }

  async #stop(mirrors: Mirrors): Promise<void> {
    mirrors.view.close();
    await mirrors.relay?.close();
  }

  #context(): { site: string; domain: string } {
    return { site: this.site.name, domain: this.site.domain };
  }

  #closedError(): SiteUnreachableError {
    return new SiteUnreachableError(`The link to site ${this.site.name} is closed`, this.#context());
  }

  async #setUp(): Promise<Mirrors> {
    const exchange = this.#exchange;
    const { jsm, js, layout, settings, logger } = exchange;
    const site = this.site;
    const inbox = layout.inboxStream(site.name);
    // Each step starts only while the link is open (close() aborts `closing`), retries included.
    const closing = this.#closing.signal;
    const retry = <T>(what: string, operation: () => Promise<T>): Promise<T> =>
      closing.aborted ? Promise.reject(this.#closedError()) : exchange.retry(what, operation, closing);
    const known = await retry("read inbox", async () => {
      try {
        await jsm.streams.info(inbox);
        return true;
      } catch (error) {
        if (isStreamNotFound(error)) return false;
        throw error;
      }
    });
    // Never set up: create nothing for a site that does not answer.
    if (!known) {
      if (closing.aborted) throw this.#closedError();
      await this.#probe();
    }
    const storage = storageType(settings);
    const kept = {
      retention: RetentionPolicy.Limits,
      storage,
      num_replicas: settings.replicas,
      max_age: nanos(settings.outboxMaxAgeMs),
      max_bytes: settings.outboxMaxBytes,
      discard: DiscardPolicy.Old,
    };
    await retry("provision outbox", () =>
      ensureStream(jsm, logger, {
        ...kept,
        name: layout.outboxStream(site.name),
        subjects: [layout.outboxSubjects(site.name)],
        duplicate_window: nanos(settings.duplicateWindowMs),
      }),
    );
    const remote = natsLayout(site.name);
    const kvm = new Kvm(js);
    const mirrorOf = (bucket: string) => ({ ...kvBucketOptions(settings), mirror: { name: bucket, domain: site.domain } });
    const mirror = (bucket: string) => retry("provision KV mirror", () => kvm.create(bucket, mirrorOf(bucket)));
    // The renewal below makes a mirror it deleted again even once the link is closed.
    const remakeMirror = (bucket: string) => exchange.retry("provision KV mirror", () => kvm.create(bucket, mirrorOf(bucket)));
    const registryKv = await mirror(remote.registryBucket);
    const typesKv = await mirror(remote.typesBucket);
    // Created last: its existence says the link was set up.
    await retry("provision inbox", () =>
      ensureStream(jsm, logger, {
        ...kept,
        name: inbox,
        mirror: { name: remote.outboxStream(layout.prefix), external: { api: `$JS.${site.domain}.API`, deliver: "" } },
      }),
    );
    // Nothing below starts while the link is closed: the view's watch and the relay's consumer.
    if (closing.aborted) throw this.#closedError();
    // Read-only, and without member lists: the site's lists bucket is not mirrored (they are kept
    // by compare-and-set, which stalls mirrors on 2.9.10), so this registry discovers from the
    // mirrored per-uid keys and never writes.
    const registry = new NatsRegistry(registryKv, typesKv, undefined, js, jsm, { registry: remote.registryBucket, types: remote.typesBucket }, settings.retryWindowMs, site.name);
    const view = new RegistryView(registryKv, this.#logger, () => exchange.nc.isClosed(), site.name);
    view.onTerminated((uid) => {
      for (const listener of [...this.#terminationListeners]) listener(uid);
    });
    view.start();
    const relay = settings.relay ? new NatsRelay(exchange, site, this.#logger) : undefined;
    relay?.start();
    // A type index mirror fed by an earlier version may be stuck for good: made again once the site
    // has been upgraded. In the background: it asks the site, which may not answer now. Reads by
    // name go on with the mirror made again. (A registry mirror stuck at an earlier version's
    // compare-and-set termination cannot be told from a slow one: docs/EDGE.md 4 says what to do.)
    // Kept for close(), which stops it and waits for it.
    this.#renewal = this.#renewLegacyTypesMirror(remote.typesBucket, remakeMirror, this.#closing.signal).catch((error: unknown) => {
      this.#logger.warn({ err: error }, "type index mirror could not be made again");
    });
    return { registry, view, relay };
  }

  /**
   * Make the mirror of the site's type index again if an earlier version fed it. That version
   * kept the type index's member lists (`v2.` keys, written by compare-and-set) in the types
   * bucket, and on nats-server 2.9.10 a mirror re-checks each message's expected-sequence header
   * against its own copy: where the write a list update expects was replaced at the site before
   * the mirror fetched it, the mirror stalls there for good, and neither the purge that removes
   * the lists at an upgraded site (NATS-LAYOUT.md 6.4) nor anything else releases it. A mirror made
   * again after that purge holds only the per-uid keys and catches up at once. While the site
   * still holds such keys (not upgraded yet), or does not answer, the mirror is left as it is; the
   * next start of this process checks again. A mirror with no such key costs one stream info.
   * Once `signal` is aborted (the link closed) it starts no further request, up to the deletion;
   * a mirror it has deleted is always made again (other processes of this site read it).
   * @returns whether the mirror was made again.
   */
  async #renewLegacyTypesMirror(bucket: string, create: (bucket: string) => Promise<unknown>, signal: AbortSignal): Promise<boolean> {
    const exchange = this.#exchange;
    const { jsm, nc, settings } = exchange;
    const stream = `KV_${bucket}`;
    // Lists `v2.members.<type>.<shard>` and the marker `v2.layout.ready`: three tokens or more,
    // so never a per-uid key (`<type>.<uid>`), even of a type named "v2".
    const legacy = `$KV.${bucket}.v2.*.>`;
    const holdsLegacyKeys = async (manager: JetStreamManager): Promise<boolean> =>
      Object.keys((await manager.streams.info(stream, { subjects_filter: legacy })).state.subjects ?? {}).length > 0;
    try {
      if (signal.aborted) return false;
      if (!(await holdsLegacyKeys(jsm)) || signal.aborted) return false;
      const remote = await jetstreamManager(nc, { domain: this.site.domain, timeout: settings.requestTimeoutMs });
      if (signal.aborted) return false;
      if (await holdsLegacyKeys(remote)) {
        this.#logger.warn({ stream }, "type index mirror holds member lists of an earlier version, and so does the site: left as it is until the site has been upgraded");
        return false;
      }
    } catch (error) {
      if (!isStreamNotFound(error)) this.#logger.warn({ stream, err: error }, "type index mirror could not be checked: left as it is");
      return false;
    }
    if (signal.aborted) return false;
    this.#logger.warn({ stream }, "type index mirror made again: it held member lists of an earlier version, which the site has removed");
    await exchange.retry("delete type index mirror", async () => {
      try {
        await jsm.streams.delete(stream);
      } catch (error) {
        if (!isStreamNotFound(error)) throw error;
      }
    });
    // Even if the link was closed meanwhile (close() waits for this).
    await create(bucket);
    return true;
  }

  /**
   * Check that the site answers in its domain and holds its registry there.
   * @throws {SiteUnreachableError} otherwise.
   */
  async #probe(): Promise<void> {
    const { nc, settings } = this.#exchange;
    const site = this.site;
    let remote: JetStreamManager;
    try {
      remote = await jetstreamManager(nc, { domain: site.domain, timeout: settings.requestTimeoutMs });
    } catch (error) {
      throw new SiteUnreachableError(
        `Site ${site.name} cannot be reached: JetStream domain ${site.domain} does not answer (${(error as Error).message}); ` +
          "nothing was created for it. Its link is set up once it answers.",
        { ...this.#context(), cause: error },
      );
    }
    try {
      await remote.streams.info(`KV_${natsLayout(site.name).registryBucket}`);
    } catch (error) {
      throw new SiteUnreachableError(
        `JetStream domain ${site.domain} answers but holds no site ${site.name} (no registry bucket ${natsLayout(site.name).registryBucket}): ` +
          "nothing was created for it",
        { ...this.#context(), cause: error },
      );
    }
  }
}

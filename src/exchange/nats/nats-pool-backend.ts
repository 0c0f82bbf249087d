/**
 * Host pools on NATS ({@link PoolBackend}): the launch stream and pool consumers
 * (`nats-launch-queue.ts`), the hosts and placements KV buckets, and the registry reads of hosts
 * and listings. Provisioned on first use by a host, a host-pool executor or a listing (clients
 * that use no pool never create them), once per exchange connection. docs/NATS-LAYOUT.md
 * section 14 describes the layout.
 */
import { DiscardPolicy, RetentionPolicy } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV, KvEntry } from "@nats-io/kv";
import { nanos } from "@nats-io/nats-core";
import type { MailboxStatus } from "../mailbox-status.ts";
import type { AgentTypeInfo } from "../../agent/agent-type.ts";
import type { AgentId } from "../../identifiers.ts";
import type { HostEntry, LaunchQueue, MailboxEntry, PoolBackend, StopWatch, Versioned } from "../../pool/pool-backend.ts";
import { decodeHostRecord, decodePlacement } from "../../pool/records.ts";
import type { HostRecord, LaunchRequest, Placement } from "../../pool/records.ts";
import { encodeValue } from "../../protocol/codec.ts";
import { followKv } from "./kv-follow.ts";
import { scanLatest, scanLatestEntries } from "./kv-scan.ts";
import { ensureStream, kvBucketOptions, notFound, openBucket, storageType } from "./nats-exchange.ts";
import type { NatsExchange } from "./nats-exchange.ts";
import { isWrongLastSequence } from "./nats-errors.ts";
import { ExchangeNotFoundError } from "../../errors.ts";
import { KvRecords } from "./kv-records.ts";
import type { KvRecord } from "./kv-records.ts";
import { HEADER_ALLOWANCE, launchPending, openLaunchQueue, publishLaunch, publishRemoteLaunch } from "./nats-launch-queue.ts";
import { decodeRecord } from "./nats-registry.ts";

const backends = new WeakMap<NatsExchange, Promise<NatsPoolBackend>>();

/**
 * Host pools on the streams and buckets of one NATS exchange connection. On an exchange opened
 * without provisioning, pool resources that do not exist yet (no host ever joined under this
 * prefix) read as empty; writing to them is an `ExchangeNotFoundError`.
 */
export class NatsPoolBackend implements PoolBackend {
  readonly ctx: NatsExchange;
  readonly site: string | undefined;
  readonly #hostsKv: KV | undefined;
  readonly #placementsKv: KV | undefined;
  /** Placement reads and writes through the exchange's shared-inbox publisher (`kv-records.ts`). */
  readonly #placementWrites: KvRecords | undefined;

  private constructor(ctx: NatsExchange, hosts: KV | undefined, placements: KV | undefined) {
    this.ctx = ctx;
    this.site = ctx.site;
    this.#hostsKv = hosts;
    this.#placementsKv = placements;
    this.#placementWrites =
      placements === undefined ? undefined : new KvRecords(placements, (what, subject, data, headers) => ctx.publishRecord(what, subject, data, headers));
  }

  /** Whether the backend has its buckets (always, unless the exchange was opened without provisioning). */
  get #provisioned(): boolean {
    return this.#hostsKv !== undefined && this.#placementsKv !== undefined;
  }

  get #hosts(): KV {
    if (this.#hostsKv === undefined) throw notFound(this.ctx.settings.prefix, `bucket ${this.ctx.layout.hostsBucket}`);
    return this.#hostsKv;
  }

  get #writes(): KvRecords {
    if (this.#placementWrites === undefined) throw notFound(this.ctx.settings.prefix, `bucket ${this.ctx.layout.placementsBucket}`);
    return this.#placementWrites;
  }

  get #placements(): KV {
    if (this.#placementsKv === undefined) throw notFound(this.ctx.settings.prefix, `bucket ${this.ctx.layout.placementsBucket}`);
    return this.#placementsKv;
  }

  /** The backend of an exchange connection, provisioned on first use. */
  static for(ctx: NatsExchange): Promise<NatsPoolBackend> {
    let backend = backends.get(ctx);
    if (backend === undefined) {
      backend = NatsPoolBackend.#open(ctx);
      backends.set(ctx, backend);
      backend.catch(() => backends.delete(ctx));
    }
    return backend;
  }

  static async #open(ctx: NatsExchange): Promise<NatsPoolBackend> {
    const { settings, layout, jsm, js, provisioning } = ctx;
    if (!provisioning.provision) {
      // Read-only: use what exists; a prefix whose pools never had a host has no pool resources.
      const kvm = new Kvm(js);
      const options = kvBucketOptions(settings);
      const existing = (name: string): Promise<KV | undefined> =>
        ctx.retry("open pool bucket", () => openBucket(kvm, jsm, name, options, provisioning)).catch((error: unknown) => {
          if (error instanceof ExchangeNotFoundError) return undefined;
          throw error;
        });
      return new NatsPoolBackend(ctx, await existing(layout.hostsBucket), await existing(layout.placementsBucket));
    }
    await ctx.retry("provision launch stream", () =>
      ensureStream(jsm, ctx.logger, {
        name: layout.launchStream,
        subjects: [layout.launchSubjects],
        retention: RetentionPolicy.Workqueue,
        storage: storageType(settings),
        num_replicas: settings.replicas,
        duplicate_window: nanos(settings.duplicateWindowMs),
        discard: DiscardPolicy.Old,
      }),
    );
    const kvm = new Kvm(js);
    const options = kvBucketOptions(settings);
    // Reads go to the leader: a host must see the placement and registration a manager has just written.
    const hosts = await ctx.retry("provision hosts bucket", () => openBucket(kvm, jsm, layout.hostsBucket, options, provisioning));
    const placements = await ctx.retry("provision placements bucket", () => openBucket(kvm, jsm, layout.placementsBucket, options, provisioning));
    return new NatsPoolBackend(ctx, hosts, placements);
  }

  // --- launches ---

  publishLaunch(request: LaunchRequest, encoded?: Uint8Array): Promise<void> {
    if (!this.#provisioned) return Promise.reject(notFound(this.ctx.settings.prefix, `stream ${this.ctx.layout.launchStream}`));
    return publishLaunch(this.ctx, request, encoded);
  }

  publishRemoteLaunch(site: string, request: LaunchRequest): Promise<void> {
    return publishRemoteLaunch(this.ctx, site, request);
  }

  onRemoteMailboxTerminated(site: string, listener: (uid: string) => void): StopWatch {
    const link = this.ctx.link(site);
    link.start();
    return link.onTerminated(listener);
  }

  launchPending(pool: string, uid: string): Promise<boolean> {
    if (!this.#provisioned) return Promise.resolve(false);
    return launchPending(this.ctx, pool, uid);
  }

  launchQueue(pool: string): Promise<LaunchQueue> {
    if (!this.#provisioned) return Promise.reject(notFound(this.ctx.settings.prefix, `stream ${this.ctx.layout.launchStream}`));
    return openLaunchQueue(this.ctx, pool);
  }

  checkSize(size: number, what: string): void {
    this.ctx.checkSize(size, what);
  }

  // --- placements ---

  async getPlacement(pool: string, uid: string): Promise<Versioned<Placement> | undefined> {
    if (this.#placementsKv === undefined) return undefined;
    return placementEntry(await this.#writes.get("read placement", this.ctx.layout.placementKey(pool, uid)));
  }

  async createPlacement(placement: Placement): Promise<Versioned<Placement> | undefined> {
    const key = this.ctx.layout.placementKey(placement.pool, placement.uid);
    const data = encodeValue(placement);
    this.ctx.checkSize(data.byteLength + HEADER_ALLOWANCE, `Placement of agent ${placement.uid} (its launch arguments included)`);
    try {
      const revision = await this.#writes.create("create placement", key, data);
      return { value: placement, revision };
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
  }

  async compareAndSetPlacement(placement: Placement, revision: number): Promise<number | undefined> {
    const key = this.ctx.layout.placementKey(placement.pool, placement.uid);
    try {
      return await this.#writes.update("update placement", key, encodeValue(placement), revision);
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
  }

  async placementsOf(uid: string): Promise<Placement[]> {
    return this.#scanPlacements("read placements", this.ctx.layout.placementsOf(uid));
  }

  async listPlacements(pool?: string): Promise<Placement[]> {
    return this.#scanPlacements("list placements", pool === undefined ? ">" : `${pool}.*`);
  }

  async #scanPlacements(what: string, keyFilter: string): Promise<Placement[]> {
    if (this.#placementsKv === undefined) return [];
    const latest = await this.ctx.retry(what, () => scanLatest(this.ctx.js, this.ctx.layout.placementsBucket, keyFilter));
    return [...latest.values()].map(decodePlacement).filter((p) => p !== undefined);
  }

  async watchPlacements(pool: string | undefined, onChange: (placement: Placement) => void, options: { current?: boolean } = {}): Promise<StopWatch> {
    // Resume from a known revision even when the first watch fails before delivering anything.
    let resumeFrom: number | undefined;
    if (options.current !== true) {
      const status = await this.ctx.retry("read placements bucket", () => this.#placements.status());
      resumeFrom = status.streamInfo.state.last_seq + 1;
    }
    return followKv(
      this.ctx,
      "placements",
      // With `current`, the watch first delivers every placement's latest value.
      () => this.#placements.watch({ key: pool === undefined ? ">" : `${pool}.*`, ...(resumeFrom !== undefined && { resumeFromRevision: resumeFrom }) }),
      (entry) => {
        resumeFrom = entry.revision + 1;
        if (entry.operation !== "PUT") return;
        const placement = decodePlacement(entry.value);
        if (placement !== undefined) onChange(placement);
      },
    );
  }

  // --- hosts ---

  createHost(record: HostRecord): Promise<number> {
    return this.ctx.retry("register host", () => this.#hosts.create(record.hostId, encodeValue(record)));
  }

  async updateHost(record: HostRecord, revision: number): Promise<number | undefined> {
    try {
      return await this.#hosts.update(record.hostId, encodeValue(record), revision);
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
  }

  async deleteHost(hostId: string, revision?: number): Promise<boolean> {
    try {
      await this.ctx.retry("remove host", () => this.#hosts.delete(hostId, revision === undefined ? undefined : { previousSeq: revision }));
      return true;
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw error;
    }
  }

  async getHost(hostId: string): Promise<HostEntry | undefined> {
    if (this.#hostsKv === undefined) return undefined;
    return hostEntry(await this.ctx.retry("read host", () => this.#hosts.get(hostId)));
  }

  async listHosts(pool?: string): Promise<HostEntry[]> {
    if (this.#hostsKv === undefined) return [];
    // One scan of the bucket, not keys() and a get per key: keys() stops early when heartbeats
    // rewrite keys during the listing, and the hosts it had not reached were left out (kv-scan.ts).
    const latest = await this.ctx.retry("list hosts", () => scanLatestEntries(this.ctx.js, this.ctx.layout.hostsBucket, ">", this.ctx.settings.requestTimeoutMs));
    const found: HostEntry[] = [];
    for (const entry of latest.values()) {
      const value = decodeHostRecord(entry.value);
      if (value !== undefined && (pool === undefined || value.pool === pool)) found.push({ value, revision: entry.revision, written: entry.written });
    }
    return found;
  }

  watchHosts(onPut: (entry: HostEntry) => void, onRemove: (hostId: string) => void): Promise<StopWatch> {
    return followKv(
      this.ctx,
      "hosts",
      () => this.#hosts.watch({ key: ">" }),
      (entry) => {
        if (entry.operation !== "PUT") {
          onRemove(entry.key);
          return;
        }
        const host = hostEntry(entry);
        if (host !== undefined) onPut(host);
      },
    );
  }

  // --- the registry ---

  mailboxStatus(uid: string): Promise<MailboxStatus> {
    return this.ctx.registry.status(uid);
  }

  terminateMailbox(id: AgentId): Promise<void> {
    return this.ctx.terminate(id);
  }

  async registerAgentAs(id: AgentId, type: AgentTypeInfo): Promise<boolean> {
    const entry = await this.ctx.registry.registerAgentAs(id, type);
    if (entry !== undefined) this.ctx.view.apply(entry);
    return entry !== undefined;
  }

  onMailboxTerminated(listener: (uid: string) => void): StopWatch {
    this.ctx.view.start();
    return this.ctx.view.onTerminated(listener);
  }

  async listMailboxes(): Promise<MailboxEntry[]> {
    const latest = await this.ctx.retry("list agents", () => scanLatestEntries(this.ctx.js, this.ctx.layout.registryBucket, ">"));
    const entries: MailboxEntry[] = [];
    for (const { value, revision } of latest.values()) {
      const record = decodeRecord(value);
      if (record !== undefined) entries.push({ ...record, revision });
    }
    return entries;
  }

  watchMailboxes(onPut: (entry: MailboxEntry) => void, onRemove: (uid: string) => void): Promise<StopWatch> {
    return followKv(
      this.ctx,
      "registry",
      () => this.ctx.registry.bucket.watch({ key: ">" }),
      (entry) => {
        if (entry.operation !== "PUT") {
          onRemove(entry.key);
          return;
        }
        const record = decodeRecord(entry.value);
        if (record !== undefined) onPut({ ...record, revision: entry.revision });
      },
    );
  }

  deleteMailbox(uid: string, revision: number): Promise<boolean> {
    return this.#deleteKey(this.ctx.registry.bucket, this.ctx.layout.registryBucket, uid, revision, "remove mailbox record");
  }

  deletePlacement(pool: string, uid: string, revision: number): Promise<boolean> {
    if (this.#placementsKv === undefined) return Promise.resolve(false);
    return this.#deleteKey(this.#placementsKv, this.ctx.layout.placementsBucket, this.ctx.layout.placementKey(pool, uid), revision, "remove placement");
  }

  /**
   * Delete a key if still at `revision` (compare-and-set), then purge its subject so that not even
   * a delete marker is left (watchers have seen the delete).
   */
  async #deleteKey(kv: KV, bucket: string, key: string, revision: number, what: string): Promise<boolean> {
    try {
      await this.ctx.retry(what, () => kv.delete(key, { previousSeq: revision }));
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw error;
    }
    await this.ctx.retry(what, () => this.ctx.jsm.streams.purge(`KV_${bucket}`, { filter: `$KV.${bucket}.${key}` }));
    return true;
  }

  isClosed(): boolean {
    return this.ctx.nc.isClosed();
  }
}

function placementEntry(entry: KvRecord | null): Versioned<Placement> | undefined {
  if (entry === null || entry.operation !== "PUT") return undefined;
  const value = decodePlacement(entry.value);
  return value === undefined ? undefined : { value, revision: entry.revision };
}

function hostEntry(entry: KvEntry | null): HostEntry | undefined {
  if (entry === null || entry.operation !== "PUT") return undefined;
  const value = decodeHostRecord(entry.value);
  return value === undefined ? undefined : { value, revision: entry.revision, written: entry.created };
}

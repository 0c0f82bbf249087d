/**
 * The NATS side of host pools: the launch stream, the pool consumers, and the hosts and placements
 * buckets. Provisioned on first use by a host or a host-pool executor (clients that use no pool
 * never create them), once per exchange connection.
 */
import type { Consumer, ConsumerConfig, PubAck } from "@nats-io/jetstream";
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV, KvEntry } from "@nats-io/kv";
import { nanos } from "@nats-io/nats-core";
import { setTimeout as sleep } from "node:timers/promises";
import { InvalidConfigError } from "../errors.ts";
import type { NatsExchange } from "../exchange/nats/nats-exchange.ts";
import { ensureStream, kvBucketOptions, storageType } from "../exchange/nats/nats-exchange.ts";
import { isConsumerNotFound, isWrongLastSequence, withDeadline } from "../exchange/nats/nats-errors.ts";
import { scanLatest } from "../exchange/nats/kv-scan.ts";
import { encodeValue } from "../protocol/codec.ts";
import { decodeHostRecord, decodePlacement, encodeLaunchRequest } from "./records.ts";
import type { HostRecord, LaunchRequest, Placement } from "./records.ts";

/** A record with the KV revision it was read or written at. */
export interface Versioned<T> {
  readonly value: T;
  readonly revision: number;
}

/** A host record, with its revision and the server's time of that revision. */
export interface HostEntry extends Versioned<HostRecord> {
  /** Server timestamp of the last heartbeat. */
  readonly written: Date;
}

const RESTART_DELAY_MS = 500;
/** Room left for the NATS headers of a launch request or KV write (message id, KV operation). */
const HEADER_ALLOWANCE = 256;

const stores = new WeakMap<NatsExchange, Promise<PoolStore>>();

export class PoolStore {
  readonly ctx: NatsExchange;
  readonly hosts: KV;
  readonly placements: KV;

  private constructor(ctx: NatsExchange, hosts: KV, placements: KV) {
    this.ctx = ctx;
    this.hosts = hosts;
    this.placements = placements;
  }

  /** The store of an exchange connection, provisioned on first use. */
  static for(ctx: NatsExchange): Promise<PoolStore> {
    let store = stores.get(ctx);
    if (store === undefined) {
      store = PoolStore.#open(ctx);
      stores.set(ctx, store);
      store.catch(() => stores.delete(ctx));
    }
    return store;
  }

  static async #open(ctx: NatsExchange): Promise<PoolStore> {
    const { settings, layout, jsm, js } = ctx;
    const storage = storageType(settings);
    await ctx.retry("provision launch stream", () =>
      ensureStream(jsm, ctx.logger, {
        name: layout.launchStream,
        subjects: [layout.launchSubjects],
        retention: RetentionPolicy.Workqueue,
        storage,
        num_replicas: settings.replicas,
        duplicate_window: nanos(settings.duplicateWindowMs),
        discard: DiscardPolicy.Old,
      }),
    );
    const kvm = new Kvm(js);
    const options = kvBucketOptions(settings);
    const hosts = await ctx.retry("provision hosts bucket", () => kvm.create(layout.hostsBucket, options));
    const placements = await ctx.retry("provision placements bucket", () => kvm.create(layout.placementsBucket, options));
    return new PoolStore(ctx, hosts, placements);
  }

  /**
   * The durable consumer the hosts of `pool` share, created if missing.
   * @throws {InvalidConfigError} if a consumer of that name exists with another filter.
   */
  async poolConsumer(pool: string): Promise<Consumer> {
    const { layout, jsm, js } = this.ctx;
    const name = layout.poolConsumer(pool);
    const config: Partial<ConsumerConfig> = {
      durable_name: name,
      filter_subject: layout.poolSubjects(pool),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      // A host acknowledges a launch as soon as it has claimed it (one KV write): a short wait is plenty.
      ack_wait: nanos(30_000),
      max_deliver: -1,
      max_ack_pending: 10_000,
      max_waiting: 4096,
    };
    await this.ctx.retry("provision pool consumer", async () => {
      try {
        const info = await jsm.consumers.info(layout.launchStream, name);
        if (info.config.filter_subject !== config.filter_subject) {
          throw new InvalidConfigError(
            `Consumer ${name} on ${layout.launchStream} filters ${String(info.config.filter_subject)}, not ${config.filter_subject}`,
            { option: "pool" },
          );
        }
      } catch (error) {
        if (!isConsumerNotFound(error)) throw error; // not found: create it
        await jsm.consumers.add(layout.launchStream, config);
      }
    });
    return js.consumers.get(layout.launchStream, name);
  }

  /** Put a launch request on the stream, de-duplicated by agent and generation. */
  publishLaunch(request: LaunchRequest): Promise<PubAck> {
    const { layout, js, settings } = this.ctx;
    const subject = layout.launchSubject(request.pool, request.uid);
    const data = encodeLaunchRequest(request);
    this.ctx.checkSize(data.byteLength + HEADER_ALLOWANCE, `Launch request of agent ${request.uid}`);
    return this.ctx.retry("publish launch request", () =>
      js.publish(subject, data, { msgID: `launch:${request.uid}:${request.gen}`, timeout: settings.requestTimeoutMs }),
    );
  }

  /** Whether a launch request for agent `uid` is waiting in the stream. */
  async launchPending(pool: string, uid: string): Promise<boolean> {
    const { layout, jsm } = this.ctx;
    const stored = await this.ctx.retry("read launch stream", () =>
      jsm.streams.getMessage(layout.launchStream, { last_by_subj: layout.launchSubject(pool, uid) }),
    );
    return stored !== null;
  }

  // --- placements ---

  async getPlacement(pool: string, uid: string): Promise<Versioned<Placement> | undefined> {
    const entry = await this.ctx.retry("read placement", () => this.placements.get(this.ctx.layout.placementKey(pool, uid)));
    return placementEntry(entry);
  }

  /** Create a placement; undefined if one exists already. */
  async createPlacement(placement: Placement): Promise<Versioned<Placement> | undefined> {
    const key = this.ctx.layout.placementKey(placement.pool, placement.uid);
    const data = encodeValue(placement);
    this.ctx.checkSize(data.byteLength + HEADER_ALLOWANCE, `Placement of agent ${placement.uid} (its launch arguments included)`);
    try {
      const revision = await this.ctx.retry("create placement", () => this.placements.create(key, data));
      return { value: placement, revision };
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
  }

  /**
   * Change a placement by compare-and-set: `change` gets the current record and returns the new
   * one, or undefined to leave it. Retries on concurrent writes.
   * @returns the written record, or undefined if there was none or `change` declined.
   */
  async updatePlacement(
    pool: string,
    uid: string,
    change: (current: Placement) => Placement | undefined,
  ): Promise<Versioned<Placement> | undefined> {
    const key = this.ctx.layout.placementKey(pool, uid);
    for (;;) {
      const current = await this.getPlacement(pool, uid);
      if (current === undefined) return undefined;
      const changed = change(current.value);
      if (changed === undefined) return undefined;
      const next: Placement = { ...changed, updatedAt: Date.now() };
      try {
        const revision = await this.ctx.retry("update placement", () =>
          this.placements.update(key, encodeValue(next), current.revision),
        );
        return { value: next, revision };
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
      }
    }
  }

  /** Placements of agent `uid` on every pool. */
  async placementsOf(uid: string): Promise<Placement[]> {
    const latest = await this.ctx.retry("read placements", () =>
      scanLatest(this.ctx.js, this.ctx.layout.placementsBucket, this.ctx.layout.placementsOf(uid)),
    );
    return [...latest.values()].map(decodePlacement).filter((p) => p !== undefined);
  }

  /** Every placement of a pool (or of every pool), latest values. */
  async listPlacements(pool?: string): Promise<Placement[]> {
    const latest = await this.ctx.retry("list placements", () =>
      scanLatest(this.ctx.js, this.ctx.layout.placementsBucket, pool === undefined ? ">" : `${pool}.*`),
    );
    return [...latest.values()].map(decodePlacement).filter((p) => p !== undefined);
  }

  /**
   * Call `onChange` for every placement of `pool` written from now on (with `current`: first for
   * the latest value of each existing placement), until the returned stop function is called.
   * The watch restarts (resuming where it stopped) if it fails. Resolves once
   * the watch is in place.
   */
  async watchPlacements(
    pool: string,
    onChange: (placement: Placement, revision: number) => void,
    options: { current?: boolean } = {},
  ): Promise<() => void> {
    // Resume from a known revision even when the first watch fails before delivering anything.
    let resumeFrom: number | undefined;
    if (options.current !== true) {
      const status = await this.ctx.retry("read placements bucket", () => this.placements.status());
      resumeFrom = status.streamInfo.state.last_seq + 1;
    }
    return this.#follow(
      "placements",
      // With `current`, the watch first delivers every placement's latest value.
      () => this.placements.watch({ key: `${pool}.*`, ...(resumeFrom !== undefined && { resumeFromRevision: resumeFrom }) }),
      (entry) => {
        resumeFrom = entry.revision + 1;
        if (entry.operation !== "PUT") return;
        const placement = decodePlacement(entry.value);
        if (placement !== undefined) onChange(placement, entry.revision);
      },
    );
  }

  // --- hosts ---

  /** Create a host record; throws if the id is taken. */
  async createHost(record: HostRecord): Promise<number> {
    return this.ctx.retry("register host", () => this.hosts.create(record.hostId, encodeValue(record)));
  }

  /** Rewrite a host record at `revision`; undefined if it changed or was removed meanwhile. */
  async updateHost(record: HostRecord, revision: number): Promise<number | undefined> {
    try {
      return await this.hosts.update(record.hostId, encodeValue(record), revision);
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
  }

  /** Remove a host record (only if still at `revision`, when given); false if it had changed. */
  async deleteHost(hostId: string, revision?: number): Promise<boolean> {
    try {
      await this.ctx.retry("remove host", () =>
        this.hosts.delete(hostId, revision === undefined ? undefined : { previousSeq: revision }),
      );
      return true;
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw error;
    }
  }

  async getHost(hostId: string): Promise<HostEntry | undefined> {
    const entry = await this.ctx.retry("read host", () => this.hosts.get(hostId));
    return hostEntry(entry);
  }

  /** Every registered host (of `pool`, if given). */
  async listHosts(pool?: string): Promise<HostEntry[]> {
    const found: HostEntry[] = [];
    await this.ctx.retry("list hosts", async () => {
      found.length = 0;
      const keys: string[] = [];
      // The key listing is a consumer that may stall under load: bounded, then retried.
      await withDeadline(
        (async () => {
          for await (const key of await this.hosts.keys()) keys.push(key);
        })(),
        this.ctx.settings.requestTimeoutMs,
      );
      const entries = await Promise.all(keys.map((key) => this.hosts.get(key)));
      for (const entry of entries) {
        const host = hostEntry(entry);
        if (host !== undefined && (pool === undefined || host.value.pool === pool)) found.push(host);
      }
    });
    return found;
  }

  /**
   * Follow the hosts bucket: `onPut` for every record (current ones first), `onRemove` when one is
   * removed. Restarts if the watch fails. Resolves once the watch is in place.
   */
  async watchHosts(onPut: (entry: HostEntry) => void, onRemove: (hostId: string) => void): Promise<() => void> {
    return this.#follow(
      "hosts",
      () => this.hosts.watch({ key: ">" }),
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

  /**
   * Feed every entry of a KV watch to `onEntry`, reopening the watch (with `open`, which decides
   * where it resumes) whenever it fails, until the returned stop function is called or the
   * connection closes. Resolves once the first watch is in place.
   */
  async #follow(
    what: string,
    open: () => Promise<AsyncIterable<KvEntry> & { stop(): void }>,
    onEntry: (entry: KvEntry) => void,
  ): Promise<() => void> {
    let stopped = false;
    let current = await this.ctx.retry(`watch ${what}`, open);
    void (async () => {
      while (!stopped) {
        try {
          for await (const entry of current) onEntry(entry);
        } catch (error) {
          this.ctx.logger.warn({ err: error }, `${what} watch failed; restarting`);
        }
        if (stopped || this.ctx.nc.isClosed()) return;
        await sleep(RESTART_DELAY_MS);
        try {
          current = await open();
          if (stopped) current.stop();
        } catch (error) {
          this.ctx.logger.warn({ err: error }, `could not restart the ${what} watch`);
        }
      }
    })();
    return () => {
      stopped = true;
      current.stop();
    };
  }
}

function placementEntry(entry: KvEntry | null): Versioned<Placement> | undefined {
  if (entry === null || entry.operation !== "PUT") return undefined;
  const value = decodePlacement(entry.value);
  return value === undefined ? undefined : { value, revision: entry.revision };
}

function hostEntry(entry: KvEntry | null): HostEntry | undefined {
  if (entry === null || entry.operation !== "PUT") return undefined;
  const value = decodeHostRecord(entry.value);
  return value === undefined ? undefined : { value, revision: entry.revision, written: entry.created };
}

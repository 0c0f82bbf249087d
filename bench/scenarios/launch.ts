/**
 * Launch: N agents launched through a pool of 2 runtime hosts (`academy host` child processes)
 * with a HostPoolExecutor, each pinged as soon as its launch resolves. Measured from the first
 * `launch` call: when every launch request is stored (every `launch` resolved), the first ping
 * answer, and the last. Each round has its own prefix and 2 fresh hosts; the full run repeats
 * it (3 rounds per size) and shows the median round. Against a bare-NATS floor measured in the
 * same run, before and after each round: N JetStream publishes to a work-queue stream, each
 * followed at once by a core request/reply to a responder (the least NATS needs to store N
 * requests and answer N pings).
 */
import { availableParallelism } from "node:os";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { RetentionPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { HostPoolExecutor, Manager, NatsExchangeFactory } from "../../src/index.ts";
import { BenchEcho } from "../agents.ts";
import { cpuTimeMs, startHost } from "../lib/hosts.ts";
import type { BenchHost } from "../lib/hosts.ts";
import type { BenchContext, ScenarioResult, Target } from "../lib/report.ts";
import { ms, ratio } from "../lib/stats.ts";

const POOL = "default";
const HOSTS = 2;
/** Upper bound on any one ping (a launch that never starts fails the scenario instead of hanging). */
const PING_TIMEOUT_MS = 60_000;
/** Time given to `Manager.close()` (it shuts every agent down) before the hosts are killed. */
const CLOSE_TIMEOUT_MS = 60_000;
/** Size of the floor's stored message, about that of an encoded launch request (BenchEcho: 327 B). */
const FLOOR_PAYLOAD_BYTES = 320;
const SIZES = [100, 1_000] as const;
const TARGET_N = 1_000;
/** Issue 17: 1,000 agents on 2 hosts, all answering, in under 1.5 s (it was 5 s). */
const TARGET_MS = 1_500;

/** Milliseconds from the first launch (or publish) call. */
interface Timeline {
  /** Every launch request stored (every `launch`, or every JetStream publish, resolved). */
  readonly storedMs: number;
  readonly firstAnswerMs: number;
  /** Every agent (or responder request) answered. */
  readonly allAnsweredMs: number;
}

interface Round {
  readonly runtime: Timeline;
  /** Floor measured before and after the runtime round. */
  readonly floorBefore: Timeline;
  readonly floorAfter: Timeline;
  /** Per host (by id): agents started, and when the first and last started (ms from the first launch). */
  readonly hosts: Record<string, HostStarts>;
  /** CPU time each process used during the runtime round (ms): manager, hosts, nats-server. */
  readonly cpuMs: Record<string, number>;
  /** JetStream API requests (all clients) during the runtime round, per agent. */
  readonly jsApiPerAgent: number;
  /** How long `Manager.close()` took to shut the N agents down. */
  readonly closeMs: number;
}

interface HostStarts {
  readonly started: number;
  readonly firstMs: number;
  readonly lastMs: number;
}

/** When `host` logged "agent starting", in ms from `since` (epoch ms). */
function starts(host: BenchHost, since: number): HostStarts {
  const times = host.lines
    .filter((line) => line.includes('"msg":"agent starting"'))
    .map((line) => (JSON.parse(line) as { time: number }).time - since);
  return { started: times.length, firstMs: Math.min(...times), lastMs: Math.max(...times) };
}

/** JetStream API requests the server has handled so far (consumer and stream operations, KV reads by API). */
async function jsApiRequests(ctx: BenchContext): Promise<number> {
  const varz = (await (await fetch(`http://127.0.0.1:${ctx.server.monitorPort}/varz`)).json()) as { jetstream?: { stats?: { api?: { total?: number } } } };
  return varz.jetstream?.stats?.api?.total ?? Number.NaN;
}

/** CPU time of this process, the hosts and the server so far (ms), by name. */
function cpuNow(hosts: readonly BenchHost[], serverPid: number | undefined): Record<string, number> {
  const usage = process.cpuUsage();
  const cpu: Record<string, number> = { manager: (usage.user + usage.system) / 1000 };
  for (const host of hosts) cpu[host.hostId] = cpuTimeMs(host.pid);
  if (serverPid !== undefined) cpu["nats-server"] = cpuTimeMs(serverPid);
  return cpu;
}

/** Start pinging each as soon as it resolves; resolve with the timeline of the whole batch. */
async function pipeline(n: number, store: (i: number) => Promise<() => Promise<unknown>>): Promise<Timeline> {
  const start = performance.now();
  let lastStored = 0;
  const answered: number[] = [];
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const ping = await store(i);
      lastStored = Math.max(lastStored, performance.now() - start);
      await ping();
      answered.push(performance.now() - start);
    }),
  );
  return { storedMs: lastStored, firstAnswerMs: Math.min(...answered), allAnsweredMs: Math.max(...answered) };
}

function mean(timelines: readonly Timeline[]): Timeline {
  const avg = (pick: (t: Timeline) => number): number => timelines.reduce((sum, t) => sum + pick(t), 0) / timelines.length;
  return { storedMs: avg((t) => t.storedMs), firstAnswerMs: avg((t) => t.firstAnswerMs), allAnsweredMs: avg((t) => t.allAnsweredMs) };
}

/** The bare-NATS floor: its own work-queue stream and a core responder on another connection. */
class Floor {
  readonly #nc: NatsConnection;
  readonly #responder: NatsConnection;
  readonly #prefix: string;
  #round = 0;

  private constructor(nc: NatsConnection, responder: NatsConnection, prefix: string) {
    this.#nc = nc;
    this.#responder = responder;
    this.#prefix = prefix;
    responder.subscribe(`${prefix}.ping`, {
      callback: (_error, msg) => {
        msg.respond();
      },
    });
  }

  static async start(servers: string, prefix: string): Promise<Floor> {
    const [nc, responder] = await Promise.all([connect({ servers }), connect({ servers })]);
    const floor = new Floor(nc, responder, prefix);
    await responder.flush(); // the subscription is in place before the first request
    return floor;
  }

  /** N stored publishes, each followed by one request/reply as soon as it is acknowledged. */
  async round(n: number): Promise<Timeline> {
    const jsm = await jetstreamManager(this.#nc);
    const stream = `${this.#prefix}_${++this.#round}`;
    const subject = `${this.#prefix}.store.${this.#round}`;
    // File storage, one replica: as the runtime's launch stream.
    await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
    try {
      const js = jetstream(this.#nc);
      const payload = new Uint8Array(FLOOR_PAYLOAD_BYTES);
      return await pipeline(n, async (i) => {
        await js.publish(`${subject}.${i}`, payload);
        return () => this.#nc.request(`${this.#prefix}.ping`, undefined, { timeout: PING_TIMEOUT_MS });
      });
    } finally {
      await jsm.streams.delete(stream);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.#nc.close(), this.#responder.close()]);
  }
}

/** One round: N agents on a fresh pool of 2 hosts, floors before and after, then everything shut down. */
async function measureRound(ctx: BenchContext, n: number): Promise<Round> {
  const prefix = ctx.prefix(`launch${n}`);
  const servers = ctx.server.url;
  ctx.log(`launch: N=${n}: starting ${HOSTS} hosts (capacity ${n} each)`);
  const started = await Promise.allSettled(Array.from({ length: HOSTS }, () => startHost({ servers, prefix, pool: POOL, capacity: n })));
  const hosts: BenchHost[] = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  let floor: Floor | undefined;
  let manager: Manager | undefined;
  try {
    for (const s of started) if (s.status === "rejected") throw s.reason;
    floor = await Floor.start(servers, `${prefix}_floor`); // subjects apart from the runtime's
    const pool = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers, prefix }), {
      executors: { pool: new HostPoolExecutor({ pool: POOL }) },
    });
    manager = pool;
    const floorBefore = await floor.round(n);
    const apiBefore = await jsApiRequests(ctx);
    const cpuBefore = cpuNow(hosts, ctx.server.pid);
    const launchedAt = Date.now();
    const runtime = await pipeline(n, async () => {
      const handle = await pool.launch(BenchEcho, { executor: "pool" });
      return () => handle.ping({ timeoutMs: PING_TIMEOUT_MS });
    });
    const cpuMs = Object.fromEntries(Object.entries(cpuNow(hosts, ctx.server.pid)).map(([name, t]) => [name, t - (cpuBefore[name] ?? 0)]));
    const jsApiPerAgent = ((await jsApiRequests(ctx)) - apiBefore) / n;
    const floorAfter = await floor.round(n);
    ctx.log(`launch: N=${n}: all answered at ${ms(runtime.allAnsweredMs)} ms (floor ${ms(floorBefore.allAnsweredMs)} / ${ms(floorAfter.allAnsweredMs)} ms)`);
    const hostStarts = Object.fromEntries(hosts.map((host) => [host.hostId, starts(host, launchedAt)]));
    manager = undefined;
    const closeMs = await close(ctx, pool, n);
    return { runtime, floorBefore, floorAfter, hosts: hostStarts, cpuMs, jsApiPerAgent, closeMs };
  } finally {
    if (manager !== undefined) await close(ctx, manager, n); // after a failure
    await floor?.close();
    await Promise.all(hosts.map((host) => host.stop(10_000)));
  }
}

/**
 * Shut the agents down while their hosts still run (close waits for them); the hosts are stopped
 * after. Never hangs past CLOSE_TIMEOUT_MS. Returns how long it took.
 */
async function close(ctx: BenchContext, manager: Manager, n: number): Promise<number> {
  const start = performance.now();
  const closed = manager.close().then(
    () => true,
    (error: unknown) => {
      ctx.log(`launch: N=${n}: manager close failed: ${String(error)}`);
      return true;
    },
  );
  const timedOut = new Promise<false>((resolve) => setTimeout(() => resolve(false), CLOSE_TIMEOUT_MS).unref());
  const inTime = await Promise.race([closed, timedOut]);
  const closeMs = performance.now() - start;
  if (!inTime) ctx.log(`launch: N=${n}: manager still closing after ${ms(closeMs)} ms; stopping the hosts`);
  return inTime ? closeMs : Number.NaN;
}

interface SizeResult {
  readonly n: number;
  readonly rounds: readonly Round[];
  /** The round with the median time until all answered. */
  readonly median: Round;
  /** Mean of every floor round of this size. */
  readonly floor: Timeline;
  /** Median round / floor, all answered. */
  readonly ratio: number;
}

/** Where the CPU went in the largest size's median round: the server, the manager and the hosts share this machine. */
function cpuNote(r: SizeResult): string {
  const { cpuMs, runtime, jsApiPerAgent } = r.median;
  const seconds = (value: number): string => `${(value / 1000).toFixed(1)} s`;
  const hostsMs = Object.entries(cpuMs).filter(([name]) => name !== "manager" && name !== "nats-server").reduce((sum, [, t]) => sum + t, 0);
  return (
    `CPU in the ${r.n.toLocaleString("en-US")} round (${seconds(runtime.allAnsweredMs)} wall, ${availableParallelism()} cores): nats-server ${seconds(cpuMs["nats-server"] ?? Number.NaN)}, ` +
    `manager ${seconds(cpuMs.manager ?? Number.NaN)}, hosts ${seconds(hostsMs)}; ${jsApiPerAgent.toFixed(1)} JetStream API requests per agent.`
  );
}

export default async function launch(ctx: BenchContext): Promise<ScenarioResult> {
  const roundsPerSize = ctx.quick ? 1 : 3;
  const results: SizeResult[] = [];
  for (const n of SIZES) {
    const rounds: Round[] = [];
    for (let i = 0; i < roundsPerSize; i++) rounds.push(await measureRound(ctx, n));
    const byTotal = [...rounds].sort((a, b) => a.runtime.allAnsweredMs - b.runtime.allAnsweredMs);
    const median = byTotal[Math.floor((byTotal.length - 1) / 2)]!;
    const floor = mean(rounds.flatMap((r) => [r.floorBefore, r.floorAfter]));
    results.push({ n, rounds, median, floor, ratio: median.runtime.allAnsweredMs / floor.allAnsweredMs });
  }

  const count = (n: number): string => n.toLocaleString("en-US");
  const rows = results.flatMap((r) => [
    [`${count(r.n)} agents, runtime`, ms(r.median.runtime.storedMs), ms(r.median.runtime.firstAnswerMs), ms(r.median.runtime.allAnsweredMs), ratio(r.ratio)],
    [`${count(r.n)} bare NATS floor`, ms(r.floor.storedMs), ms(r.floor.firstAnswerMs), ms(r.floor.allAnsweredMs), ""],
  ]);

  const largest = results[results.length - 1]!;
  const seconds = `${(largest.median.runtime.allAnsweredMs / 1000).toFixed(2)} s`;
  const targets: Target[] = [
    {
      name: "1,000 agents launched and answering",
      goal: `< ${TARGET_MS / 1000} s`,
      measured: largest.n >= TARGET_N ? seconds : `${seconds} for ${count(largest.n)} (1,000 not run)`,
      met: largest.n >= TARGET_N && largest.median.runtime.allAnsweredMs < TARGET_MS,
    },
  ];

  return {
    id: "launch",
    title: `3. Launch: N agents through a pool of ${HOSTS} hosts, each pinged as its launch resolves (ms from the first launch${roundsPerSize > 1 ? `; median of ${roundsPerSize} rounds` : ""})`,
    headers: ["N", "requests stored", "first answer", "all answered", "vs floor"],
    rows,
    figures: {
      hosts: HOSTS,
      roundsPerSize,
      floorPayloadBytes: FLOOR_PAYLOAD_BYTES,
      sizes: results.map((r) => ({
        n: r.n,
        runtime: r.median.runtime,
        floor: r.floor,
        ratioAllAnswered: r.ratio,
        rounds: r.rounds.map((round) => ({
          runtime: round.runtime,
          floorBefore: round.floorBefore,
          floorAfter: round.floorAfter,
          hostsAgentStarting: round.hosts,
          cpuMs: round.cpuMs,
          jsApiRequestsPerAgent: round.jsApiPerAgent,
          managerCloseMs: round.closeMs,
        })),
      })),
    },
    targets,
    notes: [
      "Per launch: registry and placement writes, then the request on the pool's work queue; a host claims it and starts the agent with its mailbox consumer, which answers the ping.",
      cpuNote(largest),
      `Floor: N JetStream publishes (${FLOOR_PAYLOAD_BYTES} B, work-queue stream, file storage), each followed at once by a core request/reply; mean of the rounds before and after each runtime round.`,
    ],
  };
}

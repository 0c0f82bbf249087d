/**
 * Malformed flood: 10,000 malformed messages (2,000 with `--short`) published into agent and user
 * mailboxes, a pool's launch queue and every KV bucket (registry, type index, its member lists,
 * hosts, placements, results), while a healthy agent is called continuously from another client and a runtime host serves the
 * pool. The garbage: random bytes, truncated CBOR envelopes, envelopes with wrong types, another
 * protocol version, foreign envelopes (JSON, CBOR arrays and text), oversized envelope headers and
 * NATS headers, and CBOR values that are not records.
 *
 * Passes when nothing crashes, no call stalls over 1 s, the healthy agent answers every call (each
 * run exactly once, by the execution ledger), memory is bounded (heap after the flood, after a full
 * GC, within 64 MB of before), every malformed mailbox message and launch request is dead-lettered
 * (none left in the streams), and afterwards the host still launches an agent and discovery still
 * returns exactly the live agents. Everything runs in this process against one server.
 * `FLOOD_TOTAL=<n>` in the environment overrides the number of messages (for investigating).
 */
import { connect } from "@nats-io/transport-node";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { MsgHdrs, NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Agent, HostPoolExecutor, Manager, NatsExchangeFactory, action, natsLayout } from "../../../src/index.ts";
import { encodeValue } from "../../../src/protocol/codec.ts";
import { memberListKey, memberListKeys } from "../../../src/exchange/nats/type-members.ts";
import { startNatsServer } from "../../../src/testing/index.ts";
import { RuntimeHost } from "../../../runtime/index.ts";
import { readLedger, recordExecution, tally } from "../ledger.ts";
import type { ChaosContext, ChaosResult, ChaosScenario } from "../scenario.ts";

const POOL = "flood";
const MAX_STALL_MS = 1_000;
/** Heap growth allowed once the flood has been handled and a full GC has run. */
const HEAP_BOUND_BYTES = 64 * 1024 * 1024;
/** Concurrent callers of the healthy agent. */
const CALLERS = 4;

let ledger = "";

/** The healthy agent: records each call in the execution ledger. */
export class FloodProbe extends Agent {
  @action async hit(id: string): Promise<string> {
    recordExecution(ledger, id);
    return id;
  }
}

/** A small deterministic generator (mulberry32), so a failing run can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Garbage {
  readonly data: Uint8Array;
  readonly headers?: MsgHdrs;
  readonly kind: string;
}

/** Malformed payloads of every kind, addressed (where it matters) to mailbox `dest`. */
function garbageMaker(next: () => number): (dest: string) => Garbage {
  const int = (n: number): number => Math.floor(next() * n);
  const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256));
  const text = (n: number): string => "x".repeat(n);
  const kinds: Array<(dest: string) => Garbage> = [
    () => ({ kind: "random bytes", data: bytes(1 + int(512)) }),
    (dest) => {
      const whole = encodeValue({ v: 1, type: "action-request", tag: randomUUID(), dest, replyTo: `_INBOX.flood.${int(1e9)}`, action: "hit", args: ["x"] });
      return { kind: "truncated CBOR", data: whole.subarray(0, 1 + int(whole.byteLength - 1)) };
    },
    (dest) => {
      const wrong: Array<Record<string, unknown>> = [
        { v: 1, type: "action-request", tag: 123, dest, action: "hit" },
        { v: "1", type: "action-request", tag: randomUUID(), dest, action: "hit" },
        { v: 1, type: "action-request", tag: randomUUID(), dest, action: "hit", args: "not an array" },
        { v: 1, type: "action-request", tag: randomUUID(), dest: [dest], action: "hit" },
        { v: 1, type: "no-such-type", tag: randomUUID(), dest },
        { v: 1, type: "action-response", tag: randomUUID(), result: 1, error: 5 },
        { v: 1, type: "error-response", tag: randomUUID(), error: "not a failure map" },
        { v: 1, type: "action-request", tag: randomUUID(), dest, action: "hit", replyTo: "foo.*" },
        { v: null },
        { v: 1n << 70n },
      ];
      return { kind: "wrong types", data: encodeValue(wrong[int(wrong.length)]) };
    },
    (dest) => ({ kind: "another version", data: encodeValue({ v: 2 + int(100), type: "action-request", tag: randomUUID(), dest, action: "hit" }) }),
    () => {
      const foreign = [
        new TextEncoder().encode(JSON.stringify({ jsonrpc: "2.0", method: "hit", params: [1], id: int(1e6) })),
        encodeValue([1, "action-request", randomUUID()]),
        encodeValue("action-request"),
        encodeValue(int(1e9)),
        new Uint8Array(0),
      ];
      return { kind: "foreign envelope", data: foreign[int(foreign.length)]! };
    },
    (dest) => {
      const headers: Record<string, string> = {};
      for (let i = 0; i < 65 + int(100); i++) headers[`x-h${i}`] = text(int(5000));
      return { kind: "oversized envelope headers", data: encodeValue({ v: 1, type: "action-request", tag: randomUUID(), dest, action: "hit", args: [], headers }) };
    },
    () => {
      const h = natsHeaders();
      for (let i = 0; i < 40; i++) h.set(`X-Flood-${i}`, text(1024));
      h.set("Academy-Src", text(2048));
      h.set("Academy-Reply-To", "$JS.API.STREAM.DELETE.x");
      h.set("Nats-Msg-Id", `flood-${randomUUID()}`);
      return { kind: "oversized NATS headers", data: bytes(16), headers: h };
    },
    () => {
      const records = [
        { v: 1, uid: 5, role: "agent", status: "active" },
        { v: 1, uid: randomUUID(), role: "root", status: "active" },
        { v: 1, uid: randomUUID(), role: "agent", status: "zombie", chain: "FloodProbe" },
        { v: 1, hostId: 7, pool: POOL, types: "all", capacity: -1 },
        { v: 1, uid: "not a uid!", type: "FloodProbe", chain: ["FloodProbe", "Agent"], pool: POOL, gen: -1, args: "x" },
        ["FloodProbe"],
        [null, 1, 2],
      ];
      return { kind: "not a record", data: encodeValue(records[int(records.length)]) };
    },
  ];
  return (dest) => kinds[int(kinds.length)]!(dest);
}

/** Sample memory every 100 ms; `gc()` forces a full collection (V8's, exposed here). */
function memoryProbe(): { stop(): { peakRss: number; peakHeap: number }; gc(): void } {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  let peakRss = 0;
  let peakHeap = 0;
  const timer = setInterval(() => {
    const { rss, heapUsed } = process.memoryUsage();
    peakRss = Math.max(peakRss, rss);
    peakHeap = Math.max(peakHeap, heapUsed);
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      return { peakRss, peakHeap };
    },
    gc,
  };
}

async function streamMessages(nc: NatsConnection, stream: string, subject: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream, { subjects_filter: subject });
  return Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
}

/** What is left under `subject`, subject by subject, with the first message's headers of each. */
async function stillInMailboxes(nc: NatsConnection, stream: string, subject: string): Promise<string> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream, { subjects_filter: subject });
  const left: string[] = [];
  for (const [name, count] of Object.entries(info.state.subjects ?? {})) {
    const first = await jsm.streams.getMessage(stream, { next_by_subj: name, seq: 0 } as never).catch(() => undefined);
    const headers = first?.header === undefined ? "" : [...first.header.keys()].map((key) => `${key}=${first.header.get(key)}`).join(" ");
    left.push(`${name}: ${count}, first seq ${first?.seq ?? "?"} [${headers}] ${first?.data.length ?? 0} B`);
  }
  return left.join("; ");
}

/** Wait until `check` holds, polling every 100 ms, at most `ms`. */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function run(ctx: ChaosContext): Promise<ChaosResult> {
  const total = process.env["FLOOD_TOTAL"] !== undefined ? Number(process.env["FLOOD_TOTAL"]) : ctx.short ? 2_000 : 10_000;
  const dir = mkdtempSync(join(tmpdir(), "academy-flood-"));
  ledger = join(dir, "ledger");
  await using server = await startNatsServer();
  const prefix = `flood${process.pid}`;
  const layout = natsLayout(prefix);
  const options = { servers: server.url, prefix };
  const agentFactory = new NatsExchangeFactory(options);
  const callerFactory = new NatsExchangeFactory(options);
  const nc = await connect({ servers: server.url });
  const memory = memoryProbe();
  try {
    const manager = await Manager.fromExchangeFactory(agentFactory, { executors: { [POOL]: new HostPoolExecutor({ pool: POOL }) } });
    const host = await RuntimeHost.start({ pool: POOL, classes: [FloodProbe], exchange: options, heartbeatMs: 500, hostTtlMs: 2_000 });
    const probe = await manager.launch(FloodProbe);
    const pooled = await manager.launch(FloodProbe, { executor: POOL });
    await pooled.with({ timeoutMs: 20_000 }).hit("warm-up-pool");
    const caller = await callerFactory.createUserClient();
    const target = caller.getHandle(probe.agentId).with({ timeoutMs: 10_000 });
    await target.hit("warm-up");

    memory.gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const rssBefore = process.memoryUsage().rss;

    // The healthy agent, called continuously until the flood has been handled.
    const ids: string[] = [];
    let answered = 0;
    let failed = 0;
    const failures: string[] = [];
    let lastCompletion = Date.now();
    let maxStallMs = 0;
    let calling = true;
    const callers = Array.from({ length: CALLERS }, async () => {
      while (calling) {
        const id = randomUUID();
        ids.push(id);
        try {
          if ((await target.hit(id)) === id) answered++;
          else failures.push(`wrong answer for ${id}`);
        } catch (error) {
          failed++;
          failures.push(`${(error as Error).name}: ${(error as Error).message}`);
        }
        const now = Date.now();
        maxStallMs = Math.max(maxStallMs, now - lastCompletion);
        lastCompletion = now;
      }
    });

    // The flood: round robin over the targets, as fast as the connection takes it.
    const next = random(0x5eed + total);
    const garbage = garbageMaker(next);
    const mailboxes = [probe.agentId.uid, pooled.agentId.uid, caller.clientId.uid];
    // The type's member lists that the final discover reads, except the shards holding the live
    // agents (garbage there would drop them: whoever may write the bucket may do that), so that
    // discover reads garbage in the others and must ignore it.
    const liveShards = new Set([probe, pooled].map((h) => memberListKey("FloodProbe", h.agentId.uid)));
    const garbledShards = memberListKeys("FloodProbe").filter((key) => !liveShards.has(key));
    const targets: Array<{ what: string; subject: () => string; dest: string }> = [
      ...mailboxes.map((uid) => ({ what: `mailbox ${uid}`, subject: () => layout.mailboxSubject(uid), dest: uid })),
      { what: "launch queue", subject: () => layout.launchSubject(POOL, randomUUID()), dest: randomUUID() },
      { what: "registry", subject: () => `$KV.${layout.registryBucket}.${randomUUID()}`, dest: randomUUID() },
      { what: "type index", subject: () => `$KV.${layout.typesBucket}.FloodProbe.${randomUUID()}`, dest: randomUUID() },
      { what: "member lists", subject: () => `$KV.${layout.memberListsBucket}.${garbledShards[Math.floor(next() * garbledShards.length)]!}`, dest: randomUUID() },
      { what: "hosts", subject: () => `$KV.${layout.hostsBucket}.flood-${randomUUID()}`, dest: randomUUID() },
      { what: "placements", subject: () => `$KV.${layout.placementsBucket}.${POOL}.${randomUUID()}`, dest: randomUUID() },
      { what: "results", subject: () => `$KV.${layout.resultsBucket}.${probe.agentId.uid}.${randomUUID()}`, dest: randomUUID() },
    ];
    const sent = new Map<string, number>();
    const kinds = new Map<string, number>();
    const floodStarted = Date.now();
    for (let i = 0; i < total; i++) {
      const t = targets[i % targets.length]!;
      const g = garbage(t.dest);
      nc.publish(t.subject(), g.data, g.headers === undefined ? undefined : { headers: g.headers });
      sent.set(t.what, (sent.get(t.what) ?? 0) + 1);
      kinds.set(g.kind, (kinds.get(g.kind) ?? 0) + 1);
      if (i % 250 === 249) await nc.flush();
    }
    await nc.flush();
    const floodPublishedMs = Date.now() - floodStarted;
    ctx.log(`published ${total} malformed messages in ${floodPublishedMs} ms`);

    // Every malformed mailbox message and launch request ends dead-lettered, none left behind.
    const mailboxGarbage = mailboxes.reduce((sum, uid) => sum + (sent.get(`mailbox ${uid}`) ?? 0), 0);
    const launchGarbage = sent.get("launch queue") ?? 0;
    let progress = 0;
    await until(
      async () => {
        const dead = await streamMessages(nc, layout.deadLetterStream, `${prefix}.dlq.*`);
        const deadLaunches = await streamMessages(nc, layout.deadLetterStream, layout.poolDeadLetterSubject(POOL));
        if (++progress % 20 === 0) ctx.log(`dead letters: ${dead} of ${mailboxGarbage} mailbox messages, ${deadLaunches} of ${launchGarbage} launch requests; ${answered} calls answered`);
        return dead >= mailboxGarbage && deadLaunches >= launchGarbage;
      },
      120_000,
      "the malformed messages to be dead-lettered",
    );
    const drainedMs = Date.now() - floodStarted;
    // Keep calling for a moment after the flood was handled.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    calling = false;
    await Promise.all(callers);
    const { peakRss, peakHeap } = memory.stop();

    // The callers' last requests are acknowledged once their responses are stored, without the
    // caller waiting, and a rejection is terminated once its answer is out; a rejected launch
    // request is acknowledged after its dead letter is stored (and, when it names an agent, after
    // its placement and mailbox are settled): all settled within moments of the dead letters being
    // counted, not at once. A message that stays (poison, or a rejection never terminated or
    // acknowledged) fails the run after 15 s.
    let leftInMailboxes = 0;
    let leftInLaunches = 0;
    await until(
      async () => {
        leftInMailboxes = await streamMessages(nc, layout.mailboxStream, `${prefix}.mbox.*`);
        leftInLaunches = await streamMessages(nc, layout.launchStream, `${prefix}.launch.>`);
        return leftInMailboxes === 0 && leftInLaunches === 0;
      },
      15_000,
      "the mailboxes and the launch queue to empty",
    ).catch(() => undefined);
    const leftSubjects = leftInMailboxes === 0 ? "" : await stillInMailboxes(nc, layout.mailboxStream, `${prefix}.mbox.*`);
    const deadLetters = await streamMessages(nc, layout.deadLetterStream, `${prefix}.dlq.*`);
    const launchDeadLetters = await streamMessages(nc, layout.deadLetterStream, layout.poolDeadLetterSubject(POOL));

    // Afterwards: the host still launches and runs agents, discovery returns the live agents only.
    const later = await manager.launch(FloodProbe, { executor: POOL });
    const laterAnswer = await later.with({ timeoutMs: 20_000 }).hit("after-flood");
    const fresh = new NatsExchangeFactory(options);
    const freshClient = await fresh.createUserClient();
    const discovered = (await freshClient.discover(FloodProbe)).map((id) => id.uid).sort();
    const live = [probe.agentId.uid, pooled.agentId.uid, later.agentId.uid].sort();
    await fresh.close();

    memory.gc();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    await caller.close();
    await manager.shutdown(later, { blocking: true });
    await manager.shutdown(pooled, { blocking: true });
    // The manager first: its close waits for the pool's agents, so their host must still be up.
    await manager.close();
    await host.drain();

    const counts = readLedger(ledger);
    const { executedTwice, neverExecuted } = tally(counts, ids);
    const problems: string[] = [];
    if (failed > 0 || answered !== ids.length) problems.push(`${ids.length - answered} of ${ids.length} calls not answered (${failures.slice(0, 3).join("; ")})`);
    if (leftInMailboxes !== 0) problems.push(`${leftInMailboxes} messages left in mailboxes (${leftSubjects})`);
    if (leftInLaunches !== 0) problems.push(`${leftInLaunches} launch requests left in the queue`);
    if (laterAnswer !== "after-flood") problems.push("the host did not run a new agent after the flood");
    if (JSON.stringify(discovered) !== JSON.stringify(live)) problems.push(`discover returned ${discovered.length} agents, ${live.length} live`);
    if (heapGrowth > HEAP_BOUND_BYTES) problems.push(`heap grew by ${Math.round(heapGrowth / 2 ** 20)} MB`);
    const result: ChaosResult = {
      calls: ids.length,
      answered,
      failed,
      executedTwice,
      neverExecuted,
      maxStallMs,
      details: {
        malformed: total,
        toMailboxes: mailboxGarbage,
        toLaunchQueue: launchGarbage,
        toKvBuckets: total - mailboxGarbage - launchGarbage,
        kinds: [...kinds].map(([k, n]) => `${k}: ${n}`).join(", "),
        publishedMs: floodPublishedMs,
        handledMs: drainedMs,
        deadLetters: deadLetters,
        launchDeadLetters,
        heapGrowthMB: Math.round((heapGrowth / 2 ** 20) * 10) / 10,
        peakHeapGrowthMB: Math.round(((peakHeap - heapBefore) / 2 ** 20) * 10) / 10,
        peakRssGrowthMB: Math.round(((peakRss - rssBefore) / 2 ** 20) * 10) / 10,
        discovered: discovered.length,
      },
    };
    if (problems.length > 0) throw new Error(`malformed flood: ${problems.join("; ")}; ${JSON.stringify(result)}`);
    return result;
  } finally {
    await nc.close();
    await callerFactory.close();
    await agentFactory.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const scenario: ChaosScenario = {
  id: "malformed-flood",
  title: "10,000 malformed messages into mailboxes, a launch queue and every KV bucket while a healthy agent is called",
  maxStallMs: MAX_STALL_MS,
  run,
};
export default scenario;

/**
 * `npm run bench:timeline -- [--calls 1000] [--rounds 6] [--size 64] [--only exchange,f2r,core,f1r]`:
 * where the time of one sequential call goes, the exchange beside the floors with the same stored
 * messages (F2r for durable replies, F1r for core replies; bench/lib/floors.ts), caller and agent
 * in this process as in scenario 1.
 *
 * For each path it prints:
 * - the mean time per call split into the event loop's active and idle time
 *   (`performance.eventLoopUtilization()` over each round): idle is the time this process waits
 *   for nats-server and the network, active is its own work, including time blocked in system
 *   calls such as socket writes;
 * - the call's timeline, median offsets from the call's start, of the most common sequence of
 *   events: each NATS publish (`pub <subject>`), each batch nats.js hands its transport
 *   (`flush`), each socket write and its return (`write` / `written`), each message nats.js
 *   dispatches (`msg <subscription>`), and the call's resolution. Subjects are shown with their
 *   ids replaced by `*`.
 *
 * Diagnostic only: it wraps nats.js's protocol handler (`publish`, `processMsg`, `flushPending`)
 * and `net.Socket.prototype.write` in this process to timestamp them, which adds a little to every
 * path alike. Paths alternate round by round; the first round is a warm-up and not counted.
 */
import net from "node:net";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { Manager, NatsExchangeFactory } from "../src/index.ts";
import { startNatsServer } from "../src/testing/index.ts";
import { BenchEcho } from "./agents.ts";
import { FloorKind, openFloor } from "./lib/floors.ts";

const PATHS = ["exchange", "f2r", "core", "f1r"] as const;
type PathName = (typeof PATHS)[number];

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "1000" },
    rounds: { type: "string", default: "6" },
    size: { type: "string", default: "64" },
    only: { type: "string" },
  },
});
const callsPerRound = Number(values.calls);
const rounds = Number(values.rounds);
const size = Number(values.size);
const paths = values.only === undefined ? [...PATHS] : (values.only.split(",").map((s) => s.trim()) as PathName[]);
for (const path of paths) if (!PATHS.includes(path)) throw new Error(`unknown path ${JSON.stringify(path)}; known: ${PATHS.join(", ")}`);
if (!(callsPerRound > 0) || !(rounds > 1) || !(size >= 0)) throw new Error("--calls > 0, --rounds > 1 and --size >= 0 are required");

type Event = [atMs: number, what: string];
const events: Event[] = [];
let recording = false;
const record = (what: string): void => {
  if (recording) events.push([performance.now(), what]);
};
/** A subject with its ids (long or numbered tokens) replaced by `*`, so that calls compare. */
const shape = (subject: string): string =>
  subject
    .split(".")
    .map((token) => (token.length > 12 || /\d/.test(token) ? "*" : token))
    .join(".");

await using server = await startNatsServer({ maxPayload: 8 * 1024 * 1024 });

// nats.js's protocol handler has no hooks: wrap its prototype, reached through a first connection.
interface Protocol {
  publish(subject: string, ...rest: unknown[]): unknown;
  processMsg(msg: { sid: number; subject: unknown }, data: Uint8Array): unknown;
  flushPending(): unknown;
  subscriptions: { get(sid: number): { subject?: string } | undefined };
  outbound: { size(): number };
}
{
  const first = await connect({ servers: server.url });
  const proto = Object.getPrototypeOf((first as unknown as { protocol: Protocol }).protocol) as Protocol;
  const { publish, processMsg, flushPending } = proto;
  proto.publish = function (this: Protocol, subject: string, ...rest: unknown[]) {
    record(`pub ${shape(subject)}`);
    return publish.call(this, subject, ...rest);
  };
  proto.processMsg = function (this: Protocol, msg, data) {
    if (recording) record(`msg ${shape(String(this.subscriptions.get(msg.sid)?.subject ?? msg.subject))}`);
    return processMsg.call(this, msg, data);
  };
  proto.flushPending = function (this: Protocol) {
    if (recording && this.outbound.size() > 0) record(`flush ${this.outbound.size()} B`);
    return flushPending.call(this);
  };
  await first.close();
}
const socketWrite = net.Socket.prototype.write as (this: net.Socket, ...args: unknown[]) => boolean;
net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]): boolean {
  record(`write ${(args[0] as { length?: number } | undefined)?.length ?? "?"} B`);
  const written = socketWrite.apply(this, args);
  record("written");
  return written;
} as typeof net.Socket.prototype.write;

const prefix = `tl${process.pid}`;
await using durable = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: `${prefix}d` }));
await using fast = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: `${prefix}c`, replies: "core" }));
const durableAgent = await durable.launch(BenchEcho);
const fastAgent = await fast.launch(BenchEcho);
const f2r = await openFloor({ servers: server.url, prefix: `${prefix}f2r`, kind: FloorKind.F2, agents: 1, records: true });
const f1r = await openFloor({ servers: server.url, prefix: `${prefix}f1r`, kind: FloorKind.F1, agents: 1, records: true });
const payload = new Uint8Array(size).fill(7);
const call: Record<PathName, () => Promise<unknown>> = {
  exchange: () => durableAgent.echo(payload),
  f2r: () => f2r.call(0, payload),
  core: () => fastAgent.echo(payload),
  f1r: () => f1r.call(0, payload),
};

interface Totals {
  activeMs: number;
  idleMs: number;
  wallMs: number;
  calls: number;
  timelines: Event[][];
}
const totals = Object.fromEntries(paths.map((p) => [p, { activeMs: 0, idleMs: 0, wallMs: 0, calls: 0, timelines: [] } as Totals])) as Record<PathName, Totals>;
try {
  for (let round = 0; round < rounds; round++) {
    for (const path of paths) {
      const loopBefore = performance.eventLoopUtilization();
      const wallBefore = performance.now();
      for (let i = 0; i < callsPerRound; i++) {
        events.length = 0;
        recording = true;
        const start = performance.now();
        await call[path]();
        const end = performance.now();
        recording = false;
        if (round === 0) continue;
        const timeline: Event[] = events.map(([at, what]) => [at - start, what]);
        timeline.push([end - start, "resolved"]);
        totals[path].timelines.push(timeline);
      }
      if (round === 0) continue;
      const loop = performance.eventLoopUtilization(loopBefore);
      const t = totals[path];
      t.activeMs += loop.active;
      t.idleMs += loop.idle;
      t.wallMs += performance.now() - wallBefore;
      t.calls += callsPerRound;
    }
  }
} finally {
  await f2r.close();
  await f1r.close();
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
};
const us = (ms: number): string => (ms * 1000).toFixed(0);
console.log(`Sequential calls, ${size} B, ${rounds - 1} rounds of ${callsPerRound} per path (after a warm-up round)`);
for (const path of paths) {
  const t = totals[path];
  const byShape = new Map<string, Event[][]>();
  for (const timeline of t.timelines) {
    const key = timeline.map(([, what]) => what).join("|");
    const same = byShape.get(key);
    if (same === undefined) byShape.set(key, [timeline]);
    else same.push(timeline);
  }
  const [key, common] = [...byShape.entries()].sort((a, b) => b[1].length - a[1].length)[0]!;
  console.log(
    `\n${path}: p50 ${us(median(t.timelines.map((tl) => tl[tl.length - 1]![0])))} µs; mean ${us(t.wallMs / t.calls)} µs per call, ` +
      `of it event loop active ${us(t.activeMs / t.calls)} µs and idle ${us(t.idleMs / t.calls)} µs`,
  );
  console.log(`  timeline of the most common sequence (${common.length} of ${t.timelines.length} calls), median µs from the call's start:`);
  let previous = 0;
  key.split("|").forEach((what, i) => {
    const at = median(common.map((tl) => tl[i]![0])) * 1000;
    console.log(`  ${at.toFixed(0).padStart(6)}  +${(at - previous).toFixed(0).padStart(4)}  ${what}`);
    previous = at;
  });
}

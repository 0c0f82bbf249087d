/**
 * Streams on NATS: the streaming conformance suite with both reply modes, a broker restart in
 * the middle of a stream, and streams from agents run by the worker-thread and host-pool
 * executors.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { AcademyError, HostPoolExecutor, Manager, NatsExchangeFactory, StreamInterruptedError } from "../../../src/index.ts";
import type { ExchangeFactory, NatsExchangeOptions, RequestMessage } from "../../../src/index.ts";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { encodeMessage } from "../../../src/protocol/codec.ts";
import { NatsHeader } from "../../../src/protocol/messages.ts";
import { WorkerThreadExecutor } from "../../../src/manager/worker-thread-executor.ts";
import { startTcpProxy } from "../../../src/testing/index.ts";
import { describeStreamingConformance } from "../../conformance/streaming-conformance.ts";
import { Streamer } from "../../fixtures/streaming-agents.ts";
import { CrashWorker } from "../../fixtures/crash-agents.ts";
import { spawnChildAgent } from "../../support/child-agent.ts";
import { spawnHost } from "../../support/host-process.ts";
import type { HostProcess } from "../../support/host-process.ts";
import { natsForFile, startTestNats } from "../../support/nats.ts";
import type { TestNats } from "../../support/nats.ts";

const shared = natsForFile();

const STREAMING_AGENTS = new URL("../../fixtures/streaming-agents.ts", import.meta.url);
const EXEC_ARGV = ["--import", new URL("../../fixtures/register-tsx.mjs", import.meta.url).href];

let serial = 0;


function factory(options: NatsExchangeOptions = {}, server: TestNats = shared.nats): NatsExchangeFactory {
  return new NatsExchangeFactory({ servers: server.url, connectionOptions: server.connectionOptions, prefix: `s${process.pid}_${++serial}`, ...options });
}

/** A new message with the same envelope (a new message id): what a server that lost its acks gives back. */
async function redeliver(f: ExchangeFactory, request: RequestMessage): Promise<void> {
  const ctx = await (f as NatsExchangeFactory).context();
  const headers = natsHeaders();
  headers.set(NatsHeader.MsgId, `redelivered:${request.tag}:${++serial}`);
  if (request.src !== undefined) headers.set(NatsHeader.Source, request.src);
  // Marked as a re-publication: a new sequence, as a retry after the duplicate window stores it.
  headers.set(NatsHeader.Resent, "1");
  await ctx.js.publish(ctx.layout.mailboxSubject(request.dest), encodeMessage(request), { headers });
}

describeStreamingConformance("NATS JetStream exchange", () => ({ newFactory: (options) => factory(options), redeliver }));
describeStreamingConformance("NATS JetStream exchange, replies over core NATS", () => ({
  newFactory: (options) => factory({ ...options, replies: "core" }),
  redeliver,
}));

describe("NATS streams across faults and executors", () => {
  for (const replies of ["mailbox", "core"] as const) {
    test(`a broker restart mid-stream ends in a complete ordered stream or a typed error (replies: ${replies})`, async () => {
      await using server = await startTestNats();
      await using manager = await Manager.fromExchangeFactory(factory({ replies }, server));
      const streamer = await manager.launch(Streamer);
      const total = 3000;
      const items: number[] = [];
      let restarted: Promise<void> | undefined;
      const outcome = await (async () => {
        for await (const item of streamer.invokeStream("count", [total], { window: 64, itemTimeoutMs: 60_000 })) {
          items.push(item as number);
          // The restart races with the items after the 500th; from the 520th on, the rest of the
          // stream (credits, frames) crosses the restarted server.
          if (items.length === 500) restarted = server.restart();
          if (items.length === 520) await restarted;
          if (items.length % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        }
        return "complete";
      })().catch((e: unknown) => e);
      await restarted;
      // Never a gap, a duplicate or a reordering: the items are 0, 1, 2, ... whatever the outcome.
      for (let i = 0; i < items.length; i++) if (items[i] !== i) expect.fail(`item ${i} is ${items[i]}`);
      if (outcome === "complete") expect(items.length).toBe(total);
      else expect(outcome).toBeInstanceOf(AcademyError);
      expect(items.length).toBeGreaterThanOrEqual(500);
      // And the agent serves streams after the restart.
      const after: unknown[] = [];
      for await (const item of streamer.stream("count", 3)) after.push(item);
      expect(after).toEqual([0, 1, 2]);
    });
  }

  test("the caller's and then the agent's connection dropped mid-stream: a complete ordered stream or a typed error", async () => {
    const port = Number(new URL(shared.nats.url).port);
    await using callerLink = await startTcpProxy({ targetPort: port });
    await using agentLink = await startTcpProxy({ targetPort: port });
    const prefix = `s${process.pid}_${++serial}`;
    const through = (link: { port: number }): NatsExchangeFactory =>
      new NatsExchangeFactory({
        servers: `nats://127.0.0.1:${link.port}`,
        ...(shared.nats.connectionOptions.user === undefined ? {} : { connectionOptions: { user: shared.nats.connectionOptions.user, pass: shared.nats.connectionOptions.pass } }),
        prefix,
      });
    await using agents = await Manager.fromExchangeFactory(through(agentLink));
    await using callers = await Manager.fromExchangeFactory(through(callerLink));
    const launched = await agents.launch(Streamer);
    const streamer = callers.getHandle(launched.agentId);
    const total = 2000;
    const items: number[] = [];
    const outage = (link: { cut(): void; restore(): void }): Promise<void> => {
      link.cut();
      return new Promise((resolve) => setTimeout(() => {
        link.restore();
        resolve();
      }, 1500));
    };
    const outcome = await (async () => {
      for await (const item of streamer.invokeStream("count", [total], { window: 32, itemTimeoutMs: 60_000 })) {
        items.push(item as number);
        // Each outage lasts while the consumer keeps reading what it has, then waits.
        if (items.length === 300) await outage(callerLink);
        if (items.length === 900) await outage(agentLink);
      }
      return "complete";
    })().catch((e: unknown) => e);
    for (let i = 0; i < items.length; i++) if (items[i] !== i) expect.fail(`item ${i} is ${items[i]}`);
    if (outcome === "complete") expect(items.length).toBe(total);
    else expect(outcome).toBeInstanceOf(AcademyError);
    expect(items.length).toBeGreaterThanOrEqual(900);
  });

  test("a stream whose agent process dies mid-stream is run again by the next one, and its caller ends with StreamInterruptedError", async () => {
    const prefix = `s${process.pid}_${++serial}`;
    await using manager = await Manager.fromExchangeFactory(factory({ prefix }));
    const registration = await manager.registerAgent(CrashWorker);
    const uid = registration.agentId.uid;
    const first = spawnChildAgent([shared.nats.url, prefix, uid, "hang"]);
    const second = { current: undefined as ReturnType<typeof spawnChildAgent> | undefined };
    try {
      const handle = manager.getHandle(registration.agentId);
      const items: unknown[] = [];
      const outcome = (async () => {
        for await (const item of handle.stream("ticks")) {
          items.push(item);
          if (items.length === 3) {
            await first.waitFor(/^TICKED 3$/);
            await first.kill();
            second.current = spawnChildAgent([shared.nats.url, prefix, uid, "serve"]);
          }
        }
      })().catch((e: unknown) => e);
      const error = await outcome;
      expect(items).toEqual([0, 1, 2]);
      // The request was delivered again (a new mailbox consumer counts deliveries from 1 again) and
      // run again: its frames carry a new run id, which the caller, holding items of the first
      // run, refuses rather than splice the two.
      expect(error).toBeInstanceOf(StreamInterruptedError);
      expect((error as StreamInterruptedError).received).toBe(3);
      await handle.shutdown();
    } finally {
      await first.kill();
      await second.current?.kill();
    }
  });

  test("a stream from an agent in a worker thread", async () => {
    const executor = new WorkerThreadExecutor({ modules: [STREAMING_AGENTS], execArgv: EXEC_ARGV });
    await using manager = await Manager.fromExchangeFactory(factory(), { executors: { workers: executor } });
    const streamer = await manager.launch(Streamer, { executor: "workers" });
    const items: unknown[] = [];
    for await (const item of streamer.stream("count", 2000)) items.push(item);
    expect(items).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    const failed = await (async () => {
      for await (const _ of streamer.stream("failAfter", 3));
    })().catch((e: unknown) => e);
    expect([(failed as Error).name, (failed as Error).message]).toEqual(["RangeError", "failed after 3 items"]);
    const taken: unknown[] = [];
    for await (const item of streamer.invokeStream("endless", [], { window: 4 })) {
      taken.push(item);
      if (taken.length === 5) break;
    }
    await expect.poll(async () => ((await streamer.record()) as { events: string[] }).events.at(-1), { timeout: 15_000 }).toBe("finally");
  });

  test("a stream from an agent on a runtime host (host-pool executor)", async () => {
    const prefix = `s${process.pid}_${++serial}`;
    const f = factory({ prefix });
    const hosts: HostProcess[] = [];
    try {
      await using manager = await Manager.fromExchangeFactory(f, { executors: { pool: new HostPoolExecutor({ pool: "streams" }) } });
      hosts.push(
        await spawnHost({ servers: shared.nats.url, prefix, pool: "streams", modules: [fileURLToPath(STREAMING_AGENTS)], heartbeatMs: 300, hostTtlMs: 1_500 }),
      );
      const streamer = await manager.launch(Streamer, { executor: "pool" });
      const items: unknown[] = [];
      for await (const item of streamer.invokeStream("count", [1000], { window: 32 })) items.push(item);
      expect(items).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      const taken: unknown[] = [];
      for await (const item of streamer.invokeStream("endless", [], { window: 4 })) {
        taken.push(item);
        if (taken.length === 5) break;
      }
      expect(taken).toEqual([0, 1, 2, 3, 4]);
      await expect.poll(async () => ((await streamer.record()) as { events: string[] }).events.at(-1), { timeout: 15_000 }).toBe("finally");
      await manager.shutdown(streamer);
    } finally {
      await Promise.all(hosts.map((h) => h.kill()));
    }
  });
});

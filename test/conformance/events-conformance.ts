/**
 * The events suite, run against every exchange (test/unit/local-events.test.ts,
 * test/integration/events/events-conformance.test.ts): subscriptions of agents (`each`, `shared`,
 * core queue groups), codecs, the event context, handler retries and dead letters, undecodable
 * and oversized events, publishing from agents. Each test declares its agent classes with
 * subjects and a stream of its own.
 */
import { describe, expect, test } from "vitest";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, DeadLetterKind, ErrorCode, Manager, action, subscribe } from "../../src/index.ts";
import type { EventContext, ExchangeFactory, Handle, PublishOptions } from "../../src/index.ts";
import { encodeValue } from "../../src/protocol/codec.ts";

/** How the suite reaches one exchange. */
export interface EventsTarget {
  newFactory(): ExchangeFactory;
  /** Whether the exchange has streams (durable subscriptions read them; NATS). */
  readonly streams: boolean;
  /** Make a stream of `subjects` (NATS); nothing where there are no streams. */
  createStream(name: string, subjects: string[]): Promise<void>;
  /** Publish as a foreign publisher does (plain nats.js on NATS; the exchange's bus in process). */
  publish(factory: ExchangeFactory, subject: string, data: Uint8Array, options?: { durable?: boolean; headers?: Record<string, string> }): Promise<void>;
}

const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

/** Poll `read` until `done` holds for its value, at most `timeoutMs`. */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) return value;
    await sleep(25);
  }
}

let serial = 0;

export function describeEventsConformance(name: string, target: () => EventsTarget): void {
  /** A stream and subject of the test's own. */
  async function channel(): Promise<{ stream: string; subject: string }> {
    const id = `${process.pid}_${++serial}_${Math.random().toString(36).slice(2, 8)}`;
    const stream = `EV_${id}`;
    const subject = `ev${id}`;
    await target().createStream(stream, [`${subject}.>`]);
    return { stream, subject };
  }

  async function withManager(fn: (manager: Manager, factory: ExchangeFactory) => Promise<void>): Promise<void> {
    const factory = target().newFactory();
    const manager = await Manager.fromExchangeFactory(factory);
    try {
      await fn(manager, factory);
    } finally {
      await manager.close().catch(() => undefined);
    }
  }

  describe(`${name}: events`, () => {
    test("each: every agent gets every event, in order, with its context", async () => {
      const { stream, subject } = await channel();
      const durable = target().streams;
      class Listener extends Agent {
        seen: Array<{ n: number; subject: string; sequence: number | undefined; deliveryCount: number; header: string | undefined }> = [];
        @subscribe(`${subject}.>`, { stream: durable ? stream : undefined, group: "each" })
        async onEvent(payload: { n: number }, ctx: EventContext) {
          this.seen.push({ n: payload.n, subject: ctx.subject, sequence: ctx.sequence, deliveryCount: ctx.deliveryCount, header: ctx.headers["x-test"] });
        }
        @action async events() {
          return this.seen;
        }
      }
      await withManager(async (manager, factory) => {
        const agents = [await manager.launch(Listener), await manager.launch(Listener)];
        await Promise.all(agents.map((a) => a.ping()));
        for (let n = 0; n < 50; n++) await target().publish(factory, `${subject}.a`, json({ n }), { durable, headers: { "x-test": "yes" } });
        for (const agent of agents) {
          const seen = await until(() => agent.events(), (s) => s.length >= 50);
          expect(seen.map((e) => e.n)).toEqual([...Array(50).keys()]);
          expect(seen[0]!.subject).toBe(`${subject}.a`);
          expect(seen[0]!.deliveryCount).toBe(1);
          expect(seen[0]!.header).toBe("yes");
          if (durable) expect(seen.map((e) => e.sequence)).toEqual([...Array(50).keys()].map((i) => i + 1));
        }
      });
    });

    test("shared: each event is handled by exactly one agent of the type", async () => {
      const { stream, subject } = await channel();
      const durable = target().streams;
      class Worker extends Agent {
        seen: number[] = [];
        @subscribe(`${subject}.*`, { stream: durable ? stream : undefined, group: "shared", prefetch: 1 })
        async onWork(payload: { n: number }) {
          this.seen.push(payload.n);
          await sleep(1);
        }
        @action async events() {
          return this.seen;
        }
      }
      await withManager(async (manager, factory) => {
        const workers = await Promise.all([1, 2, 3, 4].map(() => manager.launch(Worker)));
        await Promise.all(workers.map((w) => w.ping()));
        const total = 200;
        for (let n = 0; n < total; n++) await target().publish(factory, `${subject}.w`, json({ n }), { durable });
        const all = await until(
          async () => (await Promise.all(workers.map((w) => w.events()))),
          (lists) => lists.flat().length >= total,
        );
        const flat = all.flat();
        expect(flat.length).toBe(total);
        expect(new Set(flat).size).toBe(total);
        expect(all.filter((list) => list.length > 0).length).toBeGreaterThan(1);
      });
    });

    test("a core subscription with a queue group shares events; without one each agent gets them", async () => {
      const { subject } = await channel();
      class Telemetry extends Agent {
        queued = 0;
        plain = 0;
        @subscribe(`${subject}.t`, { queue: `${subject}-q` })
        async onQueued() {
          this.queued++;
        }
        @subscribe(`${subject}.t`)
        async onPlain() {
          this.plain++;
        }
        @action async counts() {
          return { queued: this.queued, plain: this.plain };
        }
      }
      await withManager(async (manager, factory) => {
        const agents = [await manager.launch(Telemetry), await manager.launch(Telemetry)];
        await Promise.all(agents.map((a) => a.ping()));
        for (let n = 0; n < 40; n++) await target().publish(factory, `${subject}.t`, json({ n }));
        const counts = await until(
          () => Promise.all(agents.map((a) => a.counts())),
          (c) => c.reduce((sum, x) => sum + x.queued, 0) >= 40 && c.every((x) => x.plain >= 40),
        );
        expect(counts.reduce((sum, x) => sum + x.queued, 0)).toBe(40);
        expect(counts.map((x) => x.plain)).toEqual([40, 40]);
      });
    });

    test("a throwing handler is retried with backoff, then dead-lettered with its error; the agent keeps serving", async () => {
      const { stream, subject } = await channel();
      const durable = target().streams;
      class Flaky extends Agent {
        attempts: Array<{ n: number; deliveryCount: number }> = [];
        handled: number[] = [];
        @subscribe(`${subject}.>`, { stream: durable ? stream : undefined, maxDeliveries: 3, backoffMs: 10 })
        async onEvent(payload: { n: number; fail?: boolean; failOnce?: boolean }, ctx: EventContext) {
          this.attempts.push({ n: payload.n, deliveryCount: ctx.deliveryCount });
          if (payload.fail === true || (payload.failOnce === true && ctx.deliveryCount === 1)) {
            const error = new Error(`cannot handle ${payload.n}`);
            error.name = "OrderRejected";
            throw error;
          }
          this.handled.push(payload.n);
        }
        @action async state() {
          return { attempts: this.attempts, handled: this.handled };
        }
      }
      await withManager(async (manager, factory) => {
        const agent = await manager.launch(Flaky);
        await agent.ping();
        await target().publish(factory, `${subject}.x`, json({ n: 1, fail: true }), { durable });
        await target().publish(factory, `${subject}.x`, json({ n: 2, failOnce: true }), { durable });
        await target().publish(factory, `${subject}.x`, json({ n: 3 }), { durable });
        const state = await until(() => agent.state(), (s) => s.handled.length >= 2);
        expect(state.attempts.filter((a) => a.n === 1).map((a) => a.deliveryCount)).toEqual([1, 2, 3]);
        expect(state.attempts.filter((a) => a.n === 2).map((a) => a.deliveryCount)).toEqual([1, 2]);
        expect(state.handled).toEqual([2, 3]);
        const store = await factory.deadLetters!();
        const letters = await until(() => store.list({ kind: DeadLetterKind.Event }), (l) => l.some((x) => x.agent === agent.agentId.uid));
        const mine = letters.filter((l) => l.agent === agent.agentId.uid);
        expect(mine).toHaveLength(1);
        expect(mine[0]!.reason).toBe("OrderRejected");
        expect(mine[0]!.error).toContain("cannot handle 1");
        expect(mine[0]!.handler).toBe("onEvent");
        expect(mine[0]!.originalSubject).toBe(`${subject}.x`);
        expect(JSON.parse(new TextDecoder().decode(mine[0]!.data))).toEqual({ n: 1, fail: true });
        expect((await store.replay(mine[0]!.id)).replayed).toBe(false);
        expect(await agent.ping()).toBeGreaterThanOrEqual(0);
      });
    });

    test("malformed, wrongly encoded and oversized events are dead-lettered; the agent keeps serving", async () => {
      const { stream, subject } = await channel();
      const durable = target().streams;
      class Strict extends Agent {
        handled: unknown[] = [];
        @subscribe(`${subject}.json`, { stream: durable ? stream : undefined, maxBytes: 1024 })
        async onJson(payload: unknown) {
          this.handled.push(payload);
        }
        @subscribe(`${subject}.cbor`, { stream: durable ? stream : undefined, codec: "cbor" })
        async onCbor(payload: unknown) {
          this.handled.push(payload);
        }
        @action async state() {
          return this.handled;
        }
        @action async add(a: number, b: number) {
          return a + b;
        }
      }
      await withManager(async (manager, factory) => {
        const agent = await manager.launch(Strict);
        await agent.ping();
        const bad: Array<[string, Uint8Array]> = [
          [`${subject}.json`, new TextEncoder().encode("{not json")],
          [`${subject}.json`, new Uint8Array([0xff, 0xfe, 0x00, 0x7b])],
          [`${subject}.json`, encodeValue({ cbor: "to a json handler" })],
          [`${subject}.json`, json({ big: "x".repeat(4096) })],
          [`${subject}.cbor`, new Uint8Array([0xd8, 0x1c, 0x00])],
          [`${subject}.cbor`, new Uint8Array([0x9f, 0x9f, 0x9f])],
        ];
        for (const [where, data] of bad) await target().publish(factory, where, data, { durable });
        await target().publish(factory, `${subject}.json`, json({ ok: 1 }), { durable });
        await target().publish(factory, `${subject}.cbor`, encodeValue({ ok: 2 }), { durable });
        const handled = await until(() => agent.state(), (h) => h.length >= 2);
        // Two subscriptions, two consumers: nothing orders one's deliveries against the other's.
        const byOk = (a: unknown, b: unknown) => (a as { ok: number }).ok - (b as { ok: number }).ok;
        expect([...handled].sort(byOk)).toEqual([{ ok: 1 }, { ok: 2 }]);
        expect(await agent.add(2, 3)).toBe(5);
        const store = await factory.deadLetters!();
        const letters = await until(
          async () => (await store.list({ kind: DeadLetterKind.Event })).filter((l) => l.agent === agent.agentId.uid),
          (l) => l.length >= bad.length,
        );
        expect(letters.map((l) => l.reason).sort()).toEqual([
          ErrorCode.MalformedMessage,
          ErrorCode.MalformedMessage,
          ErrorCode.MalformedMessage,
          ErrorCode.MalformedMessage,
          ErrorCode.MalformedMessage,
          ErrorCode.PayloadTooLarge,
        ]);
      });
    });

    test("agents publish events (core and durable, de-duplicated by message id) that other agents receive", async () => {
      const { stream, subject } = await channel();
      const durable = target().streams;
      class Publisher extends Agent {
        @action async emit(n: number, options: PublishOptions) {
          return this.agentContext.publish(`${subject}.out`, { n }, options);
        }
      }
      class Consumer extends Agent {
        seen: number[] = [];
        @subscribe(`${subject}.out`, { stream: durable ? stream : undefined })
        async onOut(payload: { n: number }) {
          this.seen.push(payload.n);
        }
        @action async events() {
          return this.seen;
        }
      }
      await withManager(async (manager) => {
        const consumer: Handle<Consumer> = await manager.launch(Consumer);
        await consumer.ping();
        const publisher = await manager.launch(Publisher);
        expect(await publisher.emit(1, {})).toBeUndefined();
        const first = await publisher.emit(2, { durable: true, msgId: `m-${subject}` });
        expect(first).toMatchObject({ duplicate: false });
        expect(first!.sequence).toBeGreaterThan(0);
        const again = await publisher.emit(2, { durable: true, msgId: `m-${subject}` });
        expect(again).toMatchObject({ duplicate: true, sequence: first!.sequence });
        const seen = await until(() => consumer.events(), (s) => s.length >= 2);
        await sleep(200);
        expect(await consumer.events()).toEqual(durable ? [1, 2] : [1, 2]);
        void seen;
      });
    });
  });
}

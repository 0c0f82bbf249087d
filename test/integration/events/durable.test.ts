/**
 * What only durable (JetStream) subscriptions do: start positions, resuming after the agent
 * stops without termination (events published meanwhile included, in order), a subscription to
 * a stream that does not exist failing the agent's startup with a typed error, and the dead
 * letters of events in `academy dlq`'s store.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { expect, test } from "vitest";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, DeadLetterKind, InvalidConfigError, Manager, NatsExchangeFactory, action, subscribe } from "../../../src/index.ts";
import type { EventContext } from "../../../src/index.ts";
import { runCli, runCliOk } from "../../support/host-process.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

let serial = 0;


function factory(): NatsExchangeFactory {
  return new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `dur${process.pid}_${++serial}` });
}

async function channel(): Promise<{ stream: string; subject: string }> {
  const id = `${process.pid}_${++serial}`;
  await (await jetstreamManager(shared.nc)).streams.add({ name: `D_${id}`, subjects: [`d${id}.>`] });
  return { stream: `D_${id}`, subject: `d${id}` };
}

async function publish(subject: string, from: number, to: number): Promise<void> {
  const js = jetstream(shared.nc);
  for (let n = from; n < to; n++) await js.publish(subject, new TextEncoder().encode(JSON.stringify({ n })));
}

async function until<T>(read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() > deadline) return v;
    await sleep(25);
  }
}

test("start positions: new, all, a sequence, a time", async () => {
  const { stream, subject } = await channel();
  await publish(`${subject}.x`, 0, 5);
  await sleep(20);
  const between = new Date();
  await sleep(20);
  await publish(`${subject}.x`, 5, 10);
  class Starts extends Agent {
    seen: Record<string, number[]> = { all: [], fromSeq: [], fromTime: [], fresh: [] };
    @subscribe(`${subject}.x`, { stream, start: "all" }) async all(p: { n: number }) {
      this.seen.all!.push(p.n);
    }
    @subscribe(`${subject}.x`, { stream, start: { sequence: 8 } }) async fromSeq(p: { n: number }) {
      this.seen.fromSeq!.push(p.n);
    }
    @subscribe(`${subject}.x`, { stream, start: { time: between } }) async fromTime(p: { n: number }) {
      this.seen.fromTime!.push(p.n);
    }
    @subscribe(`${subject}.x`, { stream }) async fresh(p: { n: number }) {
      this.seen.fresh!.push(p.n);
    }
    @action async state() {
      return this.seen;
    }
  }
  await using manager = await Manager.fromExchangeFactory(factory());
  const agent = await manager.launch(Starts);
  await agent.ping();
  await publish(`${subject}.x`, 10, 12);
  const seen = await until(() => agent.state(), (s) => s.all!.length >= 12 && s.fresh!.length >= 2);
  expect(seen.all).toEqual([...Array(12).keys()]);
  expect(seen.fromSeq).toEqual([7, 8, 9, 10, 11]);
  expect(seen.fromTime).toEqual([5, 6, 7, 8, 9, 10, 11]);
  expect(seen.fresh).toEqual([10, 11]);
});

test("an agent stopped without termination resumes where it left off, events published meanwhile included", async () => {
  const { stream, subject } = await channel();
  class Resumer extends Agent {
    seen: Array<{ n: number; seq: number | undefined }> = [];
    @subscribe(`${subject}.r`, { stream, start: "all" }) async on(p: { n: number }, ctx: EventContext) {
      this.seen.push({ n: p.n, seq: ctx.sequence });
    }
    @action async state() {
      return this.seen;
    }
  }
  const f = factory();
  const manager = await Manager.fromExchangeFactory(f);
  const registration = await manager.registerAgent(Resumer);
  const first = await manager.launch(Resumer, { registration });
  await publish(`${subject}.r`, 0, 20);
  expect((await until(() => first.state(), (s) => s.length >= 20)).map((e) => e.n)).toEqual([...Array(20).keys()]);
  await manager.shutdown(first, { terminate: false });
  await publish(`${subject}.r`, 20, 30);
  await manager.close();

  const again = await Manager.fromExchangeFactory(factory2(f));
  const second = await again.launch(Resumer, { registration });
  const seen = await until(() => second.state(), (s) => s.length >= 10);
  expect(seen.map((e) => e.n)).toEqual([...Array(10).keys()].map((i) => i + 20));
  await again.close();
});

/** A second factory on the same prefix (a new process would make one). */
function factory2(f: NatsExchangeFactory): NatsExchangeFactory {
  return new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: f.settings.prefix });
}

test("a durable subscription to a stream that does not exist fails the agent's startup with InvalidConfigError", async () => {
  class Lost extends Agent {
    @subscribe("nowhere.>", { stream: "NO_SUCH_STREAM" }) async on() {}
  }
  const manager = await Manager.fromExchangeFactory(factory());
  const lost = await manager.launch(Lost);
  const error = await manager.wait([lost], { raiseError: true }).catch((e: unknown) => e);
  await manager.close().catch(() => undefined);
  expect(error).toBeInstanceOf(InvalidConfigError);
  expect((error as Error).message).toContain("NO_SUCH_STREAM");
});

test("effectively once: a redelivered event whose handler completed is acknowledged without running again, for an agent's own and a shared subscription (once: false runs it again)", async () => {
  const { stream, subject } = await channel();
  class Once extends Agent {
    runs: Record<string, number[]> = { once: [], shared: [], twice: [] };
    @subscribe(`${subject}.o`, { stream, start: "all", ackWaitMs: 1_000 }) async once(p: { n: number }) {
      this.runs.once!.push(p.n);
    }
    @subscribe(`${subject}.o`, { stream, start: "all", ackWaitMs: 1_000, group: "shared" }) async shared(p: { n: number }) {
      this.runs.shared!.push(p.n);
    }
    @subscribe(`${subject}.o`, { stream, start: "all", ackWaitMs: 1_000, once: false }) async twice(p: { n: number }) {
      this.runs.twice!.push(p.n);
    }
    @action async state() {
      return { runs: this.runs, stats: (await this.agentStats()).subscriptions };
    }
  }
  const f = factory();
  // The first acknowledgement of every event is lost (as when a host dies right after the handler
  // completed): the server delivers each event again after the ack wait.
  const events = f.events.bind(f);
  f.events = async () => {
    const bus = await events();
    return {
      publish: bus.publish.bind(bus),
      subscribe: (owner, sub, deliver) => bus.subscribe(owner, sub, (event) => deliver(event.deliveryCount === 1 ? { ...event, ack: () => undefined } : event)),
    };
  };
  await using manager = await Manager.fromExchangeFactory(f);
  const agent = await manager.launch(Once);
  await publish(`${subject}.o`, 0, 5);
  const duplicates = (s: Awaited<ReturnType<typeof agent.state>>, handler: string) => s.stats?.find((x) => x.handler === handler)?.duplicates ?? 0;
  const state = await until(() => agent.state(), (s) => s.runs.twice!.length >= 10 && duplicates(s, "once") >= 5 && duplicates(s, "shared") >= 5);
  expect(state.runs.once).toEqual([0, 1, 2, 3, 4]);
  // A shared group records each event (any agent of the group may get it again).
  expect([...state.runs.shared!].sort()).toEqual([0, 1, 2, 3, 4]);
  expect(state.stats?.find((x) => x.handler === "shared")).toMatchObject({ handled: 5, duplicates: 5 });
  expect([...state.runs.twice!].sort()).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
  expect(state.stats?.find((x) => x.handler === "once")).toMatchObject({ handled: 5, duplicates: 5 });
});

test("academy dlq lists an event's dead letter with its handler, shows its text, and refuses to replay it", async () => {
  const { stream, subject } = await channel();
  class Rejecting extends Agent {
    @subscribe(`${subject}.bad`, { stream, start: "all", maxDeliveries: 1 }) async onBad(p: { n: number }) {
      throw new RangeError(`no ${p.n}`);
    }
  }
  const f = factory();
  await using manager = await Manager.fromExchangeFactory(f);
  const agent = await manager.launch(Rejecting);
  await publish(`${subject}.bad`, 7, 8);
  const base = ["--servers", shared.nats.url, "--prefix", f.settings.prefix, "--json"];
  const list = (): Array<Record<string, unknown>> => JSON.parse(runCliOk(["dlq", "list", "--kind", "event", ...base])) as Array<Record<string, unknown>>;
  const letters = await until(async () => list(), (l) => l.length > 0);
  expect(letters).toHaveLength(1);
  expect(letters[0]).toMatchObject({ kind: "event", agent: agent.agentId.uid, handler: "onBad", subject: `${subject}.bad`, reason: "RangeError", error: "no 7" });
  const shown = JSON.parse(runCliOk(["dlq", "show", String(letters[0]!.id), ...base])) as { body: { event: string }; headers: Record<string, string> };
  expect(JSON.parse(shown.body.event)).toEqual({ n: 7 });
  expect(shown.headers["Academy-Original-Stream"]).toBe(stream);
  const replay = runCli(["dlq", "replay", String(letters[0]!.id), ...base]);
  expect(replay.status).toBe(1);
  expect(JSON.parse(replay.stdout)[0]).toMatchObject({ replayed: false, refusal: "event" });
}, 60_000);

test("a subscription reads on through a restart of the server: nothing lost, in order", async () => {
  const { stream, subject } = await channel();
  class Survivor extends Agent {
    seen: number[] = [];
    @subscribe(`${subject}.s`, { stream, start: "all" }) async on(p: { n: number }) {
      this.seen.push(p.n);
    }
    @action async state() {
      return this.seen;
    }
  }
  await using manager = await Manager.fromExchangeFactory(factory());
  const agent = await manager.launch(Survivor);
  await publish(`${subject}.s`, 0, 50);
  await until(() => agent.state(), (s) => s.length >= 50);
  await shared.nats.restart();
  // The test's own publishing connection reconnects too.
  await until(async () => shared.nc.isClosed() || (await shared.nc.flush().then(() => true, () => false)), (ok) => ok);
  await publish(`${subject}.s`, 50, 100);
  const seen = await until(() => agent.state(), (s) => s.length >= 100);
  expect(seen).toEqual([...Array(100).keys()]);
}, 60_000);

test("an agent of a shared group shutting down slowly takes no more events: the others handle them, none bounces to a dead letter", async () => {
  const { stream, subject } = await channel();
  const handled: number[] = [];
  class Slow extends Agent {
    constructor(readonly slowShutdownMs: number) {
      super();
    }
    // A short ack wait: events a pull request of the stopping agent had already taken come back after it.
    @subscribe(`${subject}.g`, { stream, group: "shared", start: "all", maxDeliveries: 2, prefetch: 8, ackWaitMs: 2_000 }) async on(p: { n: number }) {
      handled.push(p.n);
    }
    override async agentOnShutdown() {
      await sleep(this.slowShutdownMs);
    }
  }
  const f = factory();
  await using manager = await Manager.fromExchangeFactory(f);
  const leaving = await manager.launch(Slow, { args: [2_000] });
  const staying = await manager.launch(Slow, { args: [0] });
  await Promise.all([leaving.ping(), staying.ping()]);
  const shutdown = manager.shutdown(leaving);
  await publish(`${subject}.g`, 0, 200);
  await shutdown;
  // Wait for 200 distinct events: a redelivered one, run again, would count twice in `handled`.
  await until(async () => new Set(handled).size, (n) => n >= 200);
  expect([...new Set(handled)].sort((a, b) => a - b)).toEqual([...Array(200).keys()]);
  expect((await (await f.deadLetters()).list({ kind: DeadLetterKind.Event })).length).toBe(0);
}, 60_000);

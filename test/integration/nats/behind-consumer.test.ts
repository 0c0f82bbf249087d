/**
 * A request the server keeps in a mailbox behind its consumer (the consumer past it without having
 * delivered it, as nats-server 2.9 can leave it after a leader change of an R3 stream) is delivered
 * after the next leader change: the reader finds it and makes its consumer again
 * (NATS-LAYOUT.md 5.2, "Messages behind the consumer"). The test puts a request there by hand
 * (`strand`). The same for a launch request behind its pool's consumer, which the placement sweep
 * must not take for one still waiting.
 */
import { createInbox } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from "vitest";
import { Manager, NatsExchangeFactory, natsLayout } from "../../../src/index.ts";
import type { NatsCluster } from "../../../src/testing/index.ts";
import { decodeValue, encodeMessage } from "../../../src/protocol/codec.ts";
import { fromEnvelope } from "../../../src/protocol/messages.ts";
import type { Message } from "../../../src/protocol/messages.ts";
import { NatsPoolBackend } from "../../../src/exchange/nats/nats-pool-backend.ts";
import { Recorder } from "../../fixtures/agents.ts";
import { eventually } from "../../support/edge.ts";
import { startTestNatsCluster } from "../../support/nats.ts";

let cluster: NatsCluster;
let nc: NatsConnection;
let serial = 0;

beforeAll(async () => {
  cluster = await startTestNatsCluster();
  nc = await connect({ servers: cluster.urls });
}, 60_000);

afterAll(async () => {
  await nc?.close();
  await cluster?.[Symbol.asyncDispose]();
});

/** The first reply on `inbox`. */
async function firstReply(inbox: string): Promise<Message> {
  for await (const m of nc.subscribe(inbox, { max: 1 })) return fromEnvelope(decodeValue(m.data));
  throw new Error("inbox closed");
}

/** Publish a `record` request for `uid` on `subject`; its reply. */
async function record(subject: string, uid: string, value: string): Promise<{ seq: number; reply: Promise<Message> }> {
  const inbox = createInbox();
  const reply = firstReply(inbox);
  await nc.flush();
  const request: Message = { type: "action-request", tag: `t-${value}`, dest: uid, replyTo: inbox, action: "record", args: [value] };
  const ack = await jetstream(nc).publish(subject, encodeMessage(request), { msgID: request.tag });
  return { seq: ack.seq, reply };
}

/**
 * Store two `record` requests for `uid` ("behind" and "kick") behind its consumer, which delivers a
 * third ("skipped") past them: the consumer is switched to another subject of the stream (2.9
 * updates a filter in place, but keeps waking the consumer on the old one: "kick" wakes it), and
 * switched back once it has delivered "skipped".
 */
async function strand(jsm: JetStreamManager, prefix: string, uid: string): Promise<Array<Promise<Message>>> {
  const layout = natsLayout(prefix);
  const stream = layout.mailboxStream;
  const name = layout.mailboxConsumer(uid);
  const subject = layout.mailboxSubject(uid);
  const elsewhere = `${prefix}.mbox.elsewhere`;
  await jsm.consumers.update(stream, name, { filter_subject: elsewhere });
  const behind = await record(subject, uid, "behind");
  const skipped = await record(elsewhere, uid, "skipped");
  const kick = await record(subject, uid, "kick");
  expect(await skipped.reply).toMatchObject({ type: "action-response", result: 2 });
  await jsm.consumers.update(stream, name, { filter_subject: subject });
  const info = await jsm.consumers.info(stream, name);
  expect(info.ack_floor.stream_seq).toBeGreaterThan(behind.seq);
  expect(info.num_ack_pending).toBe(0);
  expect((await jsm.streams.getMessage(stream, { seq: 1, next_by_subj: subject } as never))?.seq).toBe(behind.seq);
  expect(kick.seq).toBeGreaterThan(behind.seq);
  return [behind.reply, kick.reply];
}

/**
 * Every request of a mailbox's check (its first step: the first sequence of its subject), and
 * every listing of the mailboxes holding messages, seen by spies on the API subjects.
 */
function spyOnChecks(layout: ReturnType<typeof natsLayout>): { checks: string[]; listings: string[]; stop: () => void } {
  const checks: string[] = [];
  const listings: string[] = [];
  const json = (data: Uint8Array): Record<string, unknown> => (data.length === 0 ? {} : (JSON.parse(new TextDecoder().decode(data)) as Record<string, unknown>));
  const subs = [
    nc.subscribe(`$JS.API.STREAM.MSG.GET.${layout.mailboxStream}`, {
      callback: (_error, m) => {
        const body = json(m.data);
        if (typeof body.next_by_subj === "string") checks.push(body.next_by_subj);
      },
    }),
    nc.subscribe(`$JS.API.STREAM.INFO.${layout.mailboxStream}`, {
      callback: (_error, m) => {
        const body = json(m.data);
        if (typeof body.subjects_filter === "string") listings.push(body.subjects_filter);
      },
    }),
  ];
  return { checks, listings, stop: () => subs.forEach((sub) => sub.unsubscribe()) };
}

/** Step the mailbox stream's leader down. */
async function stepDownStream(layout: ReturnType<typeof natsLayout>): Promise<void> {
  await nc.flush();
  const answer = JSON.parse(new TextDecoder().decode((await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${layout.mailboxStream}`, undefined, { timeout: 10_000 })).data)) as { success?: boolean };
  expect(answer.success).toBe(true);
}

describe("a request behind its mailbox consumer", () => {
  test.each(["consumer", "stream"] as const)(
    "is delivered, once, after a leader change of the %s",
    async (which) => {
      const prefix = `bc${process.pid}_${++serial}`;
      const layout = natsLayout(prefix);
      await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: cluster.urls, prefix }));
      const handle = await manager.launch(new Recorder());
      const uid = handle.agentId.uid;
      expect(await handle.record("first")).toBe(1);
      const jsm = await jetstreamManager(nc);

      const stranded = Promise.all(await strand(jsm, prefix, uid));

      // Nothing delivers them on their own.
      const early = await Promise.race([stranded.then(() => "answered"), new Promise((resolve) => setTimeout(() => resolve("waiting"), 2_000))]);
      expect(early).toBe("waiting");

      const stepdown =
        which === "consumer"
          ? `$JS.API.CONSUMER.LEADER.STEPDOWN.${layout.mailboxStream}.${layout.mailboxConsumer(uid)}`
          : `$JS.API.STREAM.LEADER.STEPDOWN.${layout.mailboxStream}`;
      const answer = JSON.parse(new TextDecoder().decode((await nc.request(stepdown, undefined, { timeout: 10_000 })).data)) as { success?: boolean };
      expect(answer.success).toBe(true);

      // Checked 2 s after the change, confirmed 2 s later, then the consumer is made again.
      const responses = await Promise.race([
        stranded,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the requests behind the consumer were not delivered within 30 s of the leader change")), 30_000)),
      ]);
      expect(responses.map((r) => r.type)).toEqual(["action-response", "action-response"]);
      const log = (await handle.log()) as string[];
      expect(log.slice(0, 2)).toEqual(["first", "skipped"]);
      expect(log.slice(2).sort()).toEqual(["behind", "kick"]);
      // The mailbox is empty again, and its reader still serves.
      expect(await handle.record("after")).toBe(5);
      const left = async (): Promise<number> => (await jsm.streams.info(layout.mailboxStream, { subjects_filter: layout.mailboxSubject(uid) })).state.messages;
      await eventually(async () => (await left()) === 0, 10_000, "the mailbox to be empty");
    },
    90_000,
  );
  test("a consumer's creation is not taken for a leader change; a stream leader change is", async () => {
    const prefix = `bc${process.pid}_${++serial}`;
    const layout = natsLayout(prefix);
    const { checks, listings, stop } = spyOnChecks(layout);
    try {
      await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: cluster.urls, prefix }));
      const first = await manager.launch(new Recorder());
      const second = await manager.launch(new Recorder());
      expect(await first.record("a")).toBe(1);
      expect(await second.record("b")).toBe(1);
      // Each consumer's creation announced its leader; the checks would come 2 s after.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(checks).toEqual([]);
      // A reader that makes its consumer again (here: deleted by hand) hears that announcement.
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.delete(layout.mailboxStream, layout.mailboxConsumer(first.agentId.uid));
      await eventually(() => jsm.consumers.info(layout.mailboxStream, layout.mailboxConsumer(first.agentId.uid)), 10_000, "the consumer made again");
      expect(await first.record("a2")).toBe(2);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(checks).toEqual([]);

      await stepDownStream(layout);
      // A connection with a few mailboxes checks each of them.
      const subjects = [first, second].map((h) => layout.mailboxSubject(h.agentId.uid));
      await eventually(async () => subjects.every((subject) => checks.includes(subject)), 10_000, "both mailboxes checked");
      expect(listings).toEqual([]);
      expect(await first.record("c")).toBe(3);
    } finally {
      stop();
    }
  }, 60_000);

  test("a connection with many mailboxes lists those holding messages once, and checks only them", async () => {
    const prefix = `bc${process.pid}_${++serial}`;
    const layout = natsLayout(prefix);
    const { checks, listings, stop } = spyOnChecks(layout);
    try {
      await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: cluster.urls, prefix }));
      // More mailboxes on this connection (40 agents and the manager's) than a batch of checks.
      const handles = await Promise.all(Array.from({ length: 40 }, () => manager.launch(new Recorder())));
      await Promise.all(handles.map((h) => h.record("a")));
      const jsm = await jetstreamManager(nc);
      const stranded = Promise.all(await strand(jsm, prefix, handles[0]!.agentId.uid));
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      checks.length = 0;

      await stepDownStream(layout);
      // One listing per pass; of the 41 mailboxes only the one holding messages is read.
      const responses = await Promise.race([
        stranded,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the requests behind the consumer were not delivered within 30 s of the leader change")), 30_000)),
      ]);
      expect(responses.map((r) => r.type)).toEqual(["action-response", "action-response"]);
      expect(listings).toContain(layout.mailboxSubjects);
      expect(new Set(checks)).toEqual(new Set([layout.mailboxSubject(handles[0]!.agentId.uid)]));
    } finally {
      stop();
    }
  }, 90_000);
});

describe("a launch request behind its pool consumer", () => {
  test("does not count as waiting, so the placement sweep publishes it again", async () => {
    const prefix = `bc${process.pid}_${++serial}`;
    const layout = natsLayout(prefix);
    const factory = new NatsExchangeFactory({ servers: cluster.urls, prefix });
    onTestFinished(() => factory.close());
    const backend = await NatsPoolBackend.for(await factory.context());
    await backend.launchQueue("p");
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const consumer = layout.poolConsumer("p");
    expect(await backend.launchPending("p", "a")).toBe(false);
    const stored = await js.publish(layout.launchSubject("p", "a"), "launch a");
    expect(await backend.launchPending("p", "a")).toBe(true);
    // Behind the consumer: it is switched to another pool's subjects, delivers past the request
    // there, and is switched back.
    await jsm.consumers.update(layout.launchStream, consumer, { filter_subject: `${prefix}.launch.other.*` });
    await js.publish(`${prefix}.launch.other.b`, "launch b");
    const past = await (await jetstream(nc).consumers.get(layout.launchStream, consumer)).next({ expires: 5_000 });
    expect(past?.subject).toBe(`${prefix}.launch.other.b`);
    await past!.ackAck();
    await jsm.consumers.update(layout.launchStream, consumer, { filter_subject: `${prefix}.launch.p.*` });
    expect((await jsm.consumers.info(layout.launchStream, consumer)).ack_floor.stream_seq).toBeGreaterThan(stored.seq);
    expect(await backend.launchPending("p", "a")).toBe(false);
    // A request beyond the floor is waiting.
    await js.publish(layout.launchSubject("p", "c"), "launch c");
    expect(await backend.launchPending("p", "c")).toBe(true);
  }, 60_000);
});

/**
 * What only the NATS exchange promises: nothing is lost when an agent process or the server dies,
 * a re-sent request runs once, and bad bytes on a mailbox never stop an agent.
 */
import { headers as natsHeaders, createInbox } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { describe, expect, test } from "vitest";
import {
  DeliveryLimitError,
  IncompatibleProtocolError,
  MalformedMessageError,
  Manager,
  NatsExchangeFactory,
  natsLayout,
} from "../../../src/index.ts";
import type { NatsExchangeOptions } from "../../../src/index.ts";
import { decodeValue, encodeMessage, encodeValue } from "../../../src/protocol/codec.ts";
import { fromEnvelope } from "../../../src/protocol/messages.ts";
import type { ErrorResponse, Message } from "../../../src/protocol/messages.ts";
import { fromFailure } from "../../../src/protocol/failure.ts";
import { CrashWorker } from "../../fixtures/crash-agents.ts";
import { Counter, Recorder, Sleeper } from "../../fixtures/agents.ts";
import { deferred } from "../../../src/util/deferred.ts";
import { LAYOUT_READY_KEY, TYPE_CATALOG_KEY, decodeMembers, memberListKeys } from "../../../src/exchange/nats/type-members.ts";
import { MIRROR_SAFE_KEY } from "../../../src/exchange/nats/nats-registry.ts";
import { spawnChildAgent } from "../../support/child-agent.ts";
import { eventually } from "../../support/edge.ts";
import { natsForFile, startTestNats } from "../../support/nats.ts";

const shared = natsForFile();

let serial = 0;


function factoryOptions(extra: NatsExchangeOptions = {}): NatsExchangeOptions & { prefix: string } {
  return { servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `d${process.pid}_${++serial}`, ...extra };
}

/** Subscribe to a fresh inbox and return the first message decoded. */
async function firstReply(subject: string): Promise<() => Promise<Message>> {
  const sub = shared.nc.subscribe(subject, { max: 1 });
  await shared.nc.flush();
  return async () => {
    for await (const m of sub) return fromEnvelope(decodeValue(m.data));
    throw new Error("inbox closed");
  };
}

describe("at-least-once delivery on NATS", () => {
  test("a request survives its agent's process being killed mid-action", async () => {
    const options = factoryOptions();
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options));
    const registration = await manager.registerAgent(CrashWorker);
    const uid = registration.agentId.uid;
    const first = spawnChildAgent([shared.nats.url, options.prefix, uid, "hang"]);
    try {
      const handle = manager.getHandle(registration);
      const pending = handle.work(21);
      await first.waitFor(/^WORKING 21$/);
      await first.kill();
      const second = spawnChildAgent([shared.nats.url, options.prefix, uid, "serve"]);
      try {
        const started = Date.now();
        const result = await pending;
        expect(result.doubled).toBe(42);
        expect(result.pid).toBe(second.child.pid);
        // Redelivered as soon as the new process reads the mailbox, not after the 30 s ack wait.
        expect(Date.now() - started).toBeLessThan(15_000);
        await second.waitFor(/^WORKING 21$/);
        await handle.shutdown();
        expect(await second.exited).toBe(0);
      } finally {
        await second.kill();
      }
    } finally {
      await first.kill();
    }
  });

  test("a request published twice with the same id runs once", async () => {
    const options = factoryOptions();
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options));
    const recorder = new Recorder();
    const handle = await manager.launch(recorder);
    const layout = natsLayout(options.prefix);
    const inbox = createInbox();
    const reply = await firstReply(inbox);
    const request: Message = {
      type: "action-request",
      tag: "dup-request-1",
      dest: handle.agentId.uid,
      replyTo: inbox,
      action: "record",
      args: ["once"],
    };
    const js = jetstream(shared.nc);
    const first = await js.publish(layout.mailboxSubject(handle.agentId.uid), encodeMessage(request), { msgID: request.tag });
    const second = await js.publish(layout.mailboxSubject(handle.agentId.uid), encodeMessage(request), { msgID: request.tag });
    expect(first.duplicate).toBe(false);
    expect(second.duplicate).toBe(true);
    expect(second.seq).toBe(first.seq);
    const response = await reply();
    expect(response).toMatchObject({ type: "action-response", tag: "dup-request-1", result: 1 });
    expect(await handle.log()).toEqual(["once"]);
  });

  test("the server restarted mid-traffic (same store) loses nothing", async () => {
    await using server = await startTestNats();
    const factory = new NatsExchangeFactory({ servers: server.url, connectionOptions: server.connectionOptions, prefix: "restart" });
    await using manager = await Manager.fromExchangeFactory(factory);
    const recorder = new Recorder();
    const handle = await manager.launch(recorder);
    const sequential: number[] = [];
    let restarted = false;
    const restart = (async () => {
      while (sequential.length < 20) await new Promise((resolve) => setImmediate(resolve));
      await server.restart();
      restarted = true;
    })();
    for (let i = 0; i < 60; i++) sequential.push(await handle.record(i));
    await restart;
    expect(restarted).toBe(true);
    const concurrent = Array.from({ length: 100 }, (_, i) => handle.record(100 + i));
    await server.restart();
    await Promise.all(concurrent);
    const log = (await handle.log()) as number[];
    const expected = [...Array.from({ length: 60 }, (_, i) => i), ...Array.from({ length: 100 }, (_, i) => 100 + i)];
    expect([...log].sort((a, b) => a - b)).toEqual(expected);
  });
});

describe("bad input on a mailbox subject", () => {
  test("malformed and foreign bytes are answered or dead-lettered; the agent keeps serving", async () => {
    const options = factoryOptions();
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options));
    const handle = await manager.launch(Recorder);
    const layout = natsLayout(options.prefix);
    const subject = layout.mailboxSubject(handle.agentId.uid);
    const js = jetstream(shared.nc);

    // 1. Bytes that are not CBOR, with no reply address: dead-lettered.
    await js.publish(subject, new TextEncoder().encode("{not cbor"));
    // 2. Not CBOR, but the headers say where to answer: a MalformedMessageError comes back.
    const inbox = createInbox();
    const malformedReply = await firstReply(inbox);
    const h = natsHeaders();
    h.set("Academy-Reply-To", inbox);
    await js.publish(subject, new Uint8Array([0xff, 0x00, 0x13]), { msgID: "garbage-1", headers: h });
    const malformed = (await malformedReply()) as ErrorResponse;
    expect(malformed.type).toBe("error-response");
    expect(malformed.tag).toBe("garbage-1");
    expect(fromFailure(malformed.error)).toBeInstanceOf(MalformedMessageError);
    // 3. A newer protocol version: IncompatibleProtocolError to the envelope's replyTo.
    const inbox2 = createInbox();
    const versionReply = await firstReply(inbox2);
    await js.publish(subject, encodeValue({ v: 2, type: "action-request", tag: "future-1", dest: handle.agentId.uid, replyTo: inbox2 }));
    const incompatible = (await versionReply()) as ErrorResponse;
    expect(fromFailure(incompatible.error)).toBeInstanceOf(IncompatibleProtocolError);
    // 4. A valid CBOR map of an unknown message type, and an action request missing its action.
    const inbox3 = createInbox();
    const unknownReply = await firstReply(inbox3);
    await js.publish(subject, encodeValue({ v: 1, type: "teleport-request", tag: "odd-1", dest: handle.agentId.uid, replyTo: inbox3 }));
    expect(fromFailure(((await unknownReply()) as ErrorResponse).error)).toBeInstanceOf(MalformedMessageError);
    await js.publish(subject, encodeValue({ v: 1, type: "action-request", tag: "odd-2", dest: handle.agentId.uid }));

    // The agent still serves, and the unanswerable messages are on the dead-letter stream.
    expect(await handle.record("after")).toBe(1);
    const jsm = await jetstreamManager(shared.nc);
    // The rejections run beside the agent's later deliveries: odd-2's dead letter may still be on
    // its way when "after" is answered.
    await eventually(async () => (await jsm.streams.info(layout.deadLetterStream)).state.messages >= 5, 10_000, "the five dead letters");
    const dead = await jsm.streams.info(layout.deadLetterStream);
    expect(dead.state.messages).toBe(5);
    const first = await jsm.streams.getMessage(layout.deadLetterStream, { seq: dead.state.first_seq });
    expect(first?.header.get("Academy-Dead-Reason")).toBe("MALFORMED_MESSAGE");
    expect(first?.header.get("Academy-Original-Subject")).toBe(subject);
    expect(new TextDecoder().decode(first?.data)).toBe("{not cbor");
    // Nothing is left in the mailbox. The acknowledgements are sent without waiting for the server
    // (the last rejection's term after its dead letter, the request's ack after its response): they
    // can arrive after the answer, so wait for them.
    await eventually(async () => {
      const mailbox = await jsm.streams.info(layout.mailboxStream, { subjects_filter: subject });
      return (mailbox.state.subjects?.[subject] ?? 0) === 0;
    }, 10_000, "the mailbox empties");
  });

  test("hostile reply subjects and misaddressed requests are rejected, never followed", async () => {
    const options = factoryOptions();
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options));
    const handle = await manager.launch(Recorder);
    const other = await manager.registerAgent(Recorder);
    const layout = natsLayout(options.prefix);
    const subject = layout.mailboxSubject(handle.agentId.uid);
    const js = jetstream(shared.nc);
    const jsm = await jetstreamManager(shared.nc);
    const request = (tag: string, extra: Record<string, unknown>) =>
      encodeValue({ v: 1, type: "action-request", tag, dest: handle.agentId.uid, action: "record", args: [tag], ...extra });

    // The agent must never publish into the JetStream API, its own exchange's subjects, or wildcards.
    await js.publish(subject, request("h1", { replyTo: `$JS.API.STREAM.DELETE.${layout.mailboxStream}` }), { msgID: "h1" });
    await js.publish(subject, request("h2", { replyTo: layout.mailboxSubject(other.agentId.uid) }), { msgID: "h2" });
    await js.publish(subject, request("h3", { replyTo: "foo.*" }), { msgID: "h3" });
    // A request for another agent that landed in this mailbox is answered with an error, not run.
    const inbox = createInbox();
    const misaddressed = await firstReply(inbox);
    await js.publish(subject, encodeValue({ v: 1, type: "action-request", tag: "h4", dest: other.agentId.uid, replyTo: inbox, action: "record", args: ["h4"] }), { msgID: "h4" });
    expect(fromFailure(((await misaddressed()) as ErrorResponse).error)).toBeInstanceOf(MalformedMessageError);
    // Misaddressed and replying into another mailbox: the error reply must not go there either.
    await js.publish(subject, encodeValue({ v: 1, type: "action-request", tag: "h5", dest: other.agentId.uid, replyTo: layout.mailboxSubject(other.agentId.uid), action: "record", args: ["h5"] }), { msgID: "h5" });

    expect(await handle.record("fine")).toBe(1);
    expect(await handle.log()).toEqual(["fine"]);
    expect((await jsm.streams.info(layout.mailboxStream)).config.name).toBe(layout.mailboxStream);
    const otherSubject = layout.mailboxSubject(other.agentId.uid);
    const mailbox = await jsm.streams.info(layout.mailboxStream, { subjects_filter: otherSubject });
    expect(mailbox.state.subjects?.[otherSubject] ?? 0).toBe(0);
    // The rejections run beside the agent's later deliveries: h5's dead letter may still be on its
    // way when "fine" is answered.
    await eventually(async () => (await jsm.streams.info(layout.deadLetterStream)).state.messages >= 5, 10_000, "the five dead letters");
    const dead = await jsm.streams.info(layout.deadLetterStream);
    expect(dead.state.messages).toBe(5);
    const first = await jsm.streams.getMessage(layout.deadLetterStream, { seq: dead.state.first_seq });
    expect(first?.header.get("Academy-Original-Msg-Id")).toBe("h1");

    // Terminating a mailbox answers its stranded requests, but never into another mailbox.
    const stranded = await manager.registerAgent(Recorder);
    await js.publish(layout.mailboxSubject(stranded.agentId.uid), encodeValue({ v: 1, type: "action-request", tag: "h6", dest: stranded.agentId.uid, replyTo: otherSubject, action: "record", args: [] }), { msgID: "h6" });
    await manager.exchangeClient.terminate(stranded.agentId);
    const after = await jsm.streams.info(layout.mailboxStream, { subjects_filter: otherSubject });
    expect(after.state.subjects?.[otherSubject] ?? 0).toBe(0);
  });

  test("a response addressed to another mailbox never settles a call: it is dead-lettered", async () => {
    let tag: string | undefined;
    const sent = deferred<void>();
    const options = factoryOptions({
      interceptors: { caller: [{ outboundRequest: (input, next) => ((tag = input.tag), sent.resolve(), next(input)) }] },
    });
    const factory = new NatsExchangeFactory(options);
    await using manager = await Manager.fromExchangeFactory(factory);
    const sleeper = await manager.launch(Sleeper);
    await sleeper.quick();
    const client = await factory.createUserClient();
    const call = client.getHandle(sleeper.agentId).sleep(300);
    await sent.promise;
    const layout = natsLayout(options.prefix);
    // A forged answer to the pending call, put into the caller's mailbox but addressed elsewhere.
    const forged = { v: 1, type: "action-response", tag, dest: sleeper.agentId.uid, src: sleeper.agentId.uid, result: "forged" };
    await jetstream(shared.nc).publish(layout.mailboxSubject(client.clientId.uid), encodeValue(forged), { msgID: `forged:${tag}` });
    expect(await call).toBe("done");
    const jsm = await jetstreamManager(shared.nc);
    // The forged answer's rejection (its dead letter) runs beside the caller's later deliveries:
    // on a loaded machine the real answer can settle the call while it is still being stored.
    const dead = await eventually(
      () => jsm.streams.getMessage(layout.deadLetterStream, { last_by_subj: layout.deadLetterSubject(client.clientId.uid) }).then((m) => m ?? undefined),
      10_000,
      "the forged answer's dead letter",
    );
    expect(dead.header.get("Academy-Dead-Reason")).toBe("MALFORMED_MESSAGE");
    await client.close();
  });

  test("a mailbox consumer deleted by hand is made again, and the agent keeps answering", async () => {
    const options = factoryOptions();
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options));
    const counter = await manager.launch(Counter);
    expect(await counter.increment(1)).toBe(1);
    const layout = natsLayout(options.prefix);
    const jsm = await jetstreamManager(shared.nc);
    await jsm.consumers.delete(layout.mailboxStream, layout.mailboxConsumer(counter.agentId.uid));
    // Sent while the consumer is gone: it waits in the stream for the new consumer.
    expect(await counter.with({ timeoutMs: 10_000 }).increment(2)).toBe(3);
    const info = await jsm.consumers.info(layout.mailboxStream, layout.mailboxConsumer(counter.agentId.uid));
    expect(info.config.deliver_subject).toMatch(new RegExp(`^${options.prefix}\\.deliver\\.${counter.agentId.uid}\\.`));
  });

  test("terminating an agent leaves no type-index entries behind", async () => {
    const options = factoryOptions();
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options));
    const registration = await manager.registerAgent(Recorder);
    const { typesBucket, memberListsBucket } = natsLayout(options.prefix);
    const jsm = await jetstreamManager(shared.nc);
    const memberKeys = memberListKeys("Recorder").map((key) => `$KV.${memberListsBucket}.${key}`);
    const members = async (): Promise<string[]> => {
      const found: string[] = [];
      for (const subject of memberKeys) {
        const message = await jsm.streams.getMessage(`KV_${memberListsBucket}`, { last_by_subj: subject }).catch(() => null);
        if (message !== null) found.push(...(decodeMembers(message.data) ?? []).map((m) => m.uid));
      }
      return found;
    };
    const subjects = async (bucket: string): Promise<string[]> =>
      Object.keys((await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `$KV.${bucket}.>` })).state.subjects ?? {});
    expect(await members()).toEqual([registration.agentId.uid]);
    expect((await subjects(typesBucket)).filter((s) => s.endsWith(registration.agentId.uid))).toHaveLength(2);
    await manager.exchangeClient.terminate(registration.agentId);
    // What remains: in the types bucket, nothing (no per-uid entry; the member lists are not
    // there); in the member lists bucket, the layout marker, the catalog of types and the (now
    // empty) member list, with no member naming the agent.
    expect(await subjects(typesBucket)).toEqual([]);
    const left = await subjects(memberListsBucket);
    for (const subject of left) {
      expect([`$KV.${memberListsBucket}.${LAYOUT_READY_KEY}`, `$KV.${memberListsBucket}.${TYPE_CATALOG_KEY}`, `$KV.${memberListsBucket}.${MIRROR_SAFE_KEY}`, ...memberKeys]).toContain(subject);
    }
    expect(left.filter((s) => s.endsWith(registration.agentId.uid))).toEqual([]);
    expect(await members()).toEqual([]);
  });

  test("a request delivered more than maxDeliveries times is answered with DeliveryLimitError and dead-lettered", async () => {
    const options = factoryOptions({ maxDeliveries: 2 });
    const factory = new NatsExchangeFactory(options);
    await using manager = await Manager.fromExchangeFactory(factory);
    const registration = await manager.registerAgent(Recorder);
    // A reader that never manages to handle anything.
    const reader = await factory.createAgentClient(registration, (delivery) => delivery.nak());
    try {
      const error = await manager.getHandle(registration).action("record", 1).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeliveryLimitError);
      expect((error as DeliveryLimitError).deliveries).toBe(3);
      const jsm = await jetstreamManager(shared.nc);
      // The mailbox stores the dead letter before it answers (nats-mailbox.ts #rejectNow): it is
      // there by the time the caller has the error.
      const dead = await jsm.streams.info(natsLayout(options.prefix).deadLetterStream);
      expect(dead.state.messages).toBe(1);
      const stored = await jsm.streams.getMessage(natsLayout(options.prefix).deadLetterStream, { seq: dead.state.first_seq });
      expect(stored?.header.get("Academy-Dead-Reason")).toBe("DELIVERY_LIMIT");
    } finally {
      await reader.close();
    }
  });

  test("a rejected message whose dead letter cannot be stored is kept unanswered; once it can be, it is dead-lettered once, then answered", async () => {
    // The failure to store is logged: that is the event the test waits for.
    const storeFailed = deferred<void>();
    const logger = pino({ level: "error" }, {
      write: (line: string) => {
        if ((JSON.parse(line) as { msg?: string }).msg === "could not dead-letter a rejected message; leaving it in the mailbox") storeFailed.resolve();
      },
    });
    // The dead letter's publish gives up after 1 s; the kept message comes back 1 s after its nak.
    const options = factoryOptions({ logger, retryWindowMs: 1_000, ackWaitMs: 1_000 });
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options));
    const handle = await manager.launch(Recorder);
    const layout = natsLayout(options.prefix);
    const subject = layout.mailboxSubject(handle.agentId.uid);
    const jsm = await jetstreamManager(shared.nc);
    // An operator deleted the dead-letter stream: nothing captures <p>.dlq.<uid> any more.
    const { config } = await jsm.streams.info(layout.deadLetterStream);
    await jsm.streams.delete(layout.deadLetterStream);

    const inbox = createInbox();
    const answers: Message[] = [];
    const answered = deferred<void>();
    const sub = shared.nc.subscribe(inbox, {
      callback: (_, m) => {
        answers.push(fromEnvelope(decodeValue(m.data)));
        answered.resolve();
      },
    });
    await shared.nc.flush();
    const h = natsHeaders();
    h.set("Academy-Reply-To", inbox);
    const { seq } = await jetstream(shared.nc).publish(subject, new Uint8Array([0xff, 0x00, 0x13]), { msgID: "kept-1", headers: h });

    await storeFailed.promise;
    await shared.nc.flush();
    expect(answers).toEqual([]);
    const kept = await jsm.streams.info(layout.mailboxStream, { subjects_filter: subject });
    expect(kept.state.subjects?.[subject]).toBe(1);

    // Storing works again: the next delivery stores the dead letter, then answers.
    await jsm.streams.add(config);
    await answered.promise;
    const dead = await jsm.streams.info(layout.deadLetterStream);
    expect(dead.state.messages).toBe(1);
    const stored = await jsm.streams.getMessage(layout.deadLetterStream, { seq: dead.state.first_seq });
    expect(stored?.header.get("Academy-Dead-Reason")).toBe("MALFORMED_MESSAGE");
    expect(stored?.header.get("Academy-Original-Seq")).toBe(String(seq));
    // Its de-duplication key: a rejection repeated within the duplicate window is stored once.
    expect(stored?.header.get("Nats-Msg-Id")).toBe(`dl:${seq}`);
    expect(answers).toHaveLength(1);
    expect(answers[0]).toMatchObject({ type: "error-response", tag: "kept-1" });
    expect(fromFailure((answers[0] as ErrorResponse).error)).toBeInstanceOf(MalformedMessageError);
    // Then it leaves the mailbox (term, after the answer), answered once.
    await eventually(async () => {
      const info = await jsm.streams.info(layout.mailboxStream, { subjects_filter: subject });
      return (info.state.subjects?.[subject] ?? 0) === 0;
    }, 10_000, "the rejected message leaves the mailbox");
    await shared.nc.flush();
    expect(answers).toHaveLength(1);
    sub.unsubscribe();
  });
});

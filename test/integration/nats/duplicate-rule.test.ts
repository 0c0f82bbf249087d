/**
 * The rule that decides which deliveries read their result record (src/exchange/duplicate-rule.ts,
 * PROTOCOL.md 10.10), against a real nats-server: each way a duplicate reaches an agent, made
 * happen, with the action counted outside the agent. Each test fails when the rule that covers
 * its way is removed (the steady state reads no record, so nothing else would catch it).
 */
import { afterEach, describe, expect, test } from "vitest";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { Agent, AgentEngine, ExchangeUnavailableError, MessageType, NatsExchangeFactory, action } from "../../../src/index.ts";
import type { AgentInterceptor, AgentRegistration, ExchangeFactory, NatsExchangeOptions } from "../../../src/index.ts";
import { encodeMessage } from "../../../src/protocol/codec.ts";
import { NatsHeader } from "../../../src/protocol/messages.ts";
import type { ActionRequest } from "../../../src/protocol/messages.ts";
import { startTestNats } from "../../support/nats.ts";
import type { TestNats } from "../../support/nats.ts";

const executions = new Map<string, number>();

class DupProbe extends Agent {
  @action
  async work(key: string): Promise<string> {
    const n = (executions.get(key) ?? 0) + 1;
    executions.set(key, n);
    return `${key}:${n}`;
  }
}

let counter = 0;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function until(check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Captures requests and counts deliveries and responses per key (the action's argument). */
function observer() {
  const requests = new Map<string, ActionRequest>();
  const deliveries = new Map<string, number>();
  const responses = new Map<string, unknown[]>();
  /** Keys whose responses wait for `release` (the record is written meanwhile; the ack waits). */
  const held = new Set<string>();
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const interceptor: AgentInterceptor = {
    inboundRequest(input, next) {
      const request = next(input);
      if (request.type === MessageType.ActionRequest) {
        const key = String(request.args[0]);
        requests.set(key, request);
        deliveries.set(key, (deliveries.get(key) ?? 0) + 1);
      }
      return request;
    },
    async outboundResponse(input, next) {
      if (input.request.type !== MessageType.ActionRequest) return next(input);
      const key = String(input.request.args[0]);
      if (held.has(key)) await released;
      const body = input.response;
      responses.set(key, [...(responses.get(key) ?? []), body.type === MessageType.ActionResponse ? body.result : body.type]);
      await next(input);
    },
  };
  return { interceptor, requests, deliveries, responses, held, release: () => release() };
}

function engine(factory: ExchangeFactory, registration: AgentRegistration<DupProbe>) {
  const run = new AgentEngine(new DupProbe(), { exchangeFactory: factory, registration });
  const running = run.run();
  const stop = async () => {
    run.requestShutdown({ expected: true, terminate: false });
    await running;
  };
  cleanups.push(stop);
  return { stop };
}

describe("NATS: which deliveries read their result record", () => {
  let nats: TestNats;

  async function setUp(options: Partial<NatsExchangeOptions> = {}) {
    nats = await startTestNats();
    cleanups.push(() => nats[Symbol.asyncDispose]());
    const prefix = `dup${process.pid}_${++counter}`;
    const seen = observer();
    const make = (agent: readonly AgentInterceptor[] = [seen.interceptor]) => {
      const factory = new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix, interceptors: { agent }, ...options });
      cleanups.push(() => factory.close());
      return factory;
    };
    const factory = make();
    const user = await factory.createUserClient();
    cleanups.push(() => user.close());
    const registration = await user.registerAgent(DupProbe);
    return { factory, make, user, registration, uid: registration.agentId.uid, handle: user.getHandle(registration.agentId), ...seen };
  }

  test("rule 2: a reader taking the mailbox over reads the records of what the earlier reader left unacknowledged", { timeout: 60_000 }, async () => {
    const { factory, make, user, registration, handle, requests, held, release, responses } = await setUp();
    const key = `t${++counter}`;
    held.add(key);
    engine(factory, registration);
    // The first reader runs the action and stores its record; its response (and so its ack) waits.
    const call = handle.work(key);
    const store = (await factory.resultStore!())!;
    await until(async () => requests.has(key) && (await store.lookup(registration.agentId.uid, requests.get(key)!, user)) !== undefined);
    expect(executions.get(key)).toBe(1);
    // A second reader (another process, a restarted host) takes the mailbox over: the request,
    // never acknowledged, comes to it as a first delivery (delivery count 1, a new consumer).
    held.delete(key);
    engine(make(), registration);
    expect(await call).toBe(`${key}:1`);
    expect(executions.get(key)).toBe(1);
    release();
    await until(() => (responses.get(key)?.length ?? 0) === 2);
    expect(executions.get(key)).toBe(1);
    // Once caught up, the new reader runs new requests.
    const next = `t${++counter}`;
    expect(await handle.work(next)).toBe(`${next}:1`);
  });

  test("rule 3: a request published again after the duplicate window with Academy-Resent is answered from its record; without the mark it would run again", { timeout: 60_000 }, async () => {
    const { factory, make, registration, handle, requests, responses, uid } = await setUp({ duplicateWindowMs: 400 });
    let run = engine(factory, registration);
    const key = `r${++counter}`;
    expect(await handle.work(key)).toBe(`${key}:1`);
    const ctx = await factory.context();
    const republish = async (mark: boolean) => {
      const request = requests.get(key)!;
      const headers = natsHeaders();
      headers.set(NatsHeader.MsgId, request.tag);
      headers.set(NatsHeader.Source, request.src!);
      if (mark) headers.set(NatsHeader.Resent, "1");
      return ctx.js.publish(ctx.layout.mailboxSubject(uid), encodeMessage(request), { headers });
    };
    /** A fresh run (nothing in memory), caught up with its mailbox by one new call. */
    const freshCaughtUp = async () => {
      await run.stop();
      run = engine(make(), registration);
      const warm = `w${++counter}`;
      expect(await handle.work(warm)).toBe(`${warm}:1`);
    };
    await freshCaughtUp();
    // Past the stream's duplicate window the same message id is stored again (not a duplicate),
    // with a sequence above everything the reader has seen: only the mark tells it apart. The
    // server forgets ids on a timer of its own: publish until it stores one (one inside the window
    // is dropped as a duplicate, and nothing reaches the agent).
    await until(async () => !(await republish(true)).duplicate);
    await until(() => (responses.get(key)?.length ?? 0) === 2);
    expect(responses.get(key)).toEqual([`${key}:1`, `${key}:1`]);
    expect(executions.get(key)).toBe(1);
    // The same re-publication without the mark is, to a caught-up reader, a new request (what a
    // foreign caller that retries without the mark gets): the mark is what protects it.
    await freshCaughtUp();
    await until(async () => !(await republish(false)).duplicate);
    await until(() => (responses.get(key)?.length ?? 0) === 3);
    expect(executions.get(key)).toBe(2);
  });

  test("rule 3, the library's side: a publish retried after a failed first attempt carries Academy-Resent; a first attempt does not", { timeout: 60_000 }, async () => {
    const { factory, uid, user } = await setUp();
    const ctx = await factory.context();
    const stream = ctx.layout.mailboxStream;
    const subject = ctx.layout.mailboxSubject(uid);
    const request = (tag: string) => ({ v: 1, type: MessageType.ActionRequest, tag, dest: uid, src: user.clientId.uid, action: "work", args: [tag] }) as unknown as ActionRequest;
    const stored = async () => (await ctx.jsm.streams.getMessage(stream, { last_by_subj: subject }))!;
    await ctx.send(request(`first${++counter}`));
    expect((await stored()).header.get(NatsHeader.Resent)).toBe("");
    // No stream captures the subject: the first attempt fails (no responders) and is retried.
    const config = (await ctx.jsm.streams.info(stream)).config;
    await ctx.jsm.streams.delete(stream);
    const tag = `retried${++counter}`;
    // The stream comes back once the first attempt has failed: when the second one is published.
    let attempts = 0;
    const publish = ctx.nc.publish.bind(ctx.nc);
    ctx.nc.publish = (to, ...rest) => {
      if (to === subject) attempts++;
      publish(to, ...rest);
    };
    const sent = ctx.send(request(tag));
    await until(() => attempts >= 2);
    ctx.nc.publish = publish;
    await ctx.jsm.streams.add(config);
    await sent;
    const message = await stored();
    expect(message.header.get(NatsHeader.MsgId)).toBe(tag);
    expect(message.header.get(NatsHeader.Resent)).toBe("1");
  });

  test("rule 1: a request given back to the same reader with a delivery count of 1 (its consumer's state lost and made again) is answered from its record", { timeout: 60_000 }, async () => {
    const { factory, registration, handle, requests, deliveries, uid, user } = await setUp();
    const counts: number[] = [];
    let failed = false;
    const key = `k${++counter}`;
    const probe: AgentInterceptor = {
      inboundRequest(input, next) {
        if (input.request.type === MessageType.ActionRequest && input.request.args[0] === key) counts.push(input.deliveryCount);
        return next(input);
      },
      async outboundResponse(input, next) {
        if (!failed && input.request.type === MessageType.ActionRequest && input.request.args[0] === key) {
          failed = true;
          // The response cannot go out: the request is handed back (nak, redelivered in 1 s).
          throw new ExchangeUnavailableError("response publish failed (injected by the test)");
        }
        await next(input);
      },
    };
    const agentFactory = new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix: (await factory.context()).layout.prefix, interceptors: { agent: [probe, ...factory.interceptors.agent] } });
    cleanups.push(() => agentFactory.close());
    engine(agentFactory, registration);
    // Caught up, in sequence: the steady state, where no record is read.
    const warm = `w${++counter}`;
    expect(await handle.work(warm)).toBe(`${warm}:1`);
    const call = handle.work(key);
    const store = (await factory.resultStore!())!;
    await until(async () => failed && requests.has(key) && (await store.lookup(uid, requests.get(key)!, user)) !== undefined);
    // Before the nak's redelivery: the consumer is deleted and made again with the same delivery
    // subject, as a server that lost the consumer's state has it. The request, still in the
    // stream, comes to the same reader again as a first delivery (delivery count 1) with a
    // sequence it has seen: only rule 1 tells it apart.
    const ctx = await factory.context();
    const name = ctx.layout.mailboxConsumer(uid);
    const info = await ctx.jsm.consumers.info(ctx.layout.mailboxStream, name);
    await ctx.jsm.consumers.delete(ctx.layout.mailboxStream, name);
    await ctx.jsm.consumers.add(ctx.layout.mailboxStream, info.config);
    expect(await call).toBe(`${key}:1`);
    expect(counts).toEqual([1, 1]);
    expect(deliveries.get(key)).toBe(2);
    expect(executions.get(key)).toBe(1);
    const after = `k${++counter}`;
    expect(await handle.work(after)).toBe(`${after}:1`);
  });
});

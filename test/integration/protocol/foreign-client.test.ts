/**
 * A "foreign" client of academy-nats, written only from docs/PROTOCOL.md and docs/NATS-LAYOUT.md.
 *
 * The foreign side uses nothing but a NATS client (`@nats-io/transport-node`, core requests to the
 * JetStream API) and a generic CBOR library (`cbor-x`, configured as PROTOCOL.md section 4
 * describes the library's own configuration). It builds subjects, headers, envelopes and KV keys by
 * hand. The agent side is set up with the library's public API only.
 */

import { connect, createInbox, headers, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { Decoder, Encoder, Tag } from "cbor-x";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Agent, Manager, NatsExchangeFactory, action } from "../../../src/index.ts";
import { startTestNats } from "../../support/nats.ts";

// ---------------------------------------------------------------------------------------------
// CBOR, as PROTOCOL.md section 4 describes it. `variableMapSize` gives preferred serialization
// (section 11.1 shows the request "in preferred serialization"); the library's own 2-byte map
// lengths are accepted by every decoder (section 4.1).
// ---------------------------------------------------------------------------------------------

const cborOptions = { useRecords: false, mapsAsObjects: true, tagUint8Array: false } as const;
const encoder = new Encoder({ ...cborOptions, variableMapSize: true });
const decoder = new Decoder({ ...cborOptions });
const encode = (value: unknown): Uint8Array => encoder.encode(value);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Env = Record<string, any>;
const decode = (bytes: Uint8Array): Env => decoder.decode(bytes) as Env;

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const fromHex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ""), "hex"));
const uuid = (): string => globalThis.crypto.randomUUID();
const utf8 = new TextDecoder();
const bytesOf = (text: string): string => hex(new TextEncoder().encode(text));

// ---------------------------------------------------------------------------------------------
// Agents (the side under test), defined with the library's public API.
// ---------------------------------------------------------------------------------------------

/** Observations the in-process agents report to the test (they run in this process). */
const runs = new Map<string, number>();
const waiters = new Map<string, Array<() => void>>();
function noteRun(key: string): void {
  runs.set(key, (runs.get(key) ?? 0) + 1);
  for (const wake of waiters.get(key) ?? []) wake();
  waiters.delete(key);
}
function ranOnce(key: string): Promise<void> {
  if ((runs.get(key) ?? 0) > 0) return Promise.resolve();
  return within(new Promise((resolve) => waiters.set(key, [...(waiters.get(key) ?? []), resolve])), `a run of ${key}`);
}

/** Bounds a wait: rejects after `ms` (never used to synchronise, only to fail instead of hanging). */
function within<T>(promise: Promise<T>, label: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The section 11 agent, verbatim. */
class Counter extends Agent {
  count = 0;
  @action async increment(by = 1): Promise<number> {
    this.count += by;
    return this.count;
  }
  @action async get(): Promise<number> {
    return this.count;
  }
}

class SubCounter extends Counter {
  static override agentType = "my.SubCounter";
}

class Other extends Agent {
  @action async hello(): Promise<string> {
    return "hi";
  }
}

/** Streams (section 15). */
class Stepper extends Agent {
  @action async *count(n: number): AsyncGenerator<number, string> {
    for (let i = 0; i < n; i++) yield i;
    return `counted ${n}`;
  }
  @action async *forever(): AsyncGenerator<number> {
    for (let i = 0; ; i++) yield i;
  }
  @action async plain(): Promise<number> {
    return 1;
  }
}

class QuotaError extends Error {
  override name = "QuotaError";
  code = "E_QUOTA";
  limit = 3;
}

class NumericCodeError extends Error {
  override name = "NumericCodeError";
  code = 42;
}

let releaseHang: () => void = () => {};
let hangStarted: Promise<void> = Promise.resolve();
let markHangStarted: () => void = () => {};
function armHang(): void {
  hangStarted = new Promise((resolve) => (markHangStarted = resolve));
}

class Toolbox extends Agent {
  @action async echo(value: unknown): Promise<unknown> {
    return value;
  }
  @action async add(a: number, b: number): Promise<number> {
    return a + b;
  }
  @action async argCount(...args: unknown[]): Promise<number> {
    return args.length;
  }
  @action async reverse(bytes: Uint8Array): Promise<Uint8Array> {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`not bytes: ${typeof bytes}`);
    return Uint8Array.from(bytes).reverse();
  }
  @action async profile(): Promise<unknown> {
    return { name: "Ada", age: 36, tags: ["x", "y"], nested: { ok: true, none: null }, big: 2 ** 40, frac: 1.5 };
  }
  @action async nothing(): Promise<void> {}
  @action async whoami(): Promise<unknown> {
    return this.agentId;
  }
  @action async idInfo(id: { uid: string; name?: string }): Promise<unknown> {
    return { uid: id.uid, name: id.name ?? null, text: String(id) };
  }
  @action async jsMap(): Promise<Map<unknown, unknown>> {
    return new Map<unknown, unknown>([[1, "one"], ["k", [2]]]);
  }
  @action async mark(key: string): Promise<number> {
    noteRun(key);
    return runs.get(key) ?? 0;
  }
  @action async runsOf(key: string): Promise<number> {
    return runs.get(key) ?? 0;
  }
  @action async fail(): Promise<never> {
    throw new QuotaError("quota exceeded", { cause: new TypeError("inner cause") });
  }
  @action async failString(): Promise<never> {
    throw "just a string";
  }
  @action async failNumericCode(): Promise<never> {
    throw new NumericCodeError("numeric code");
  }
  @action async failAggregate(): Promise<never> {
    throw new AggregateError([new RangeError("r1"), new Error("e2")], "several");
  }
  @action async hang(): Promise<string> {
    markHangStarted();
    await new Promise<void>((resolve) => (releaseHang = resolve));
    return "released";
  }
}

// ---------------------------------------------------------------------------------------------
// The foreign client: subjects, headers, PubAcks, inboxes, registry reads. Built from the docs.
// ---------------------------------------------------------------------------------------------

const mailboxSubject = (prefix: string, uid: string): string => `${prefix}.mbox.${uid}`;

/** PROTOCOL.md 8.1: `Nats-Msg-Id: <tag>`, `Academy-Tag: <tag>`, `Academy-Reply-To: <replyTo>`. */
function requestHeaders(tag: string, replyTo?: string, msgId: string = tag): MsgHdrs {
  const h = headers();
  h.set("Nats-Msg-Id", msgId);
  h.set("Academy-Tag", tag);
  if (replyTo !== undefined) h.set("Academy-Reply-To", replyTo);
  return h;
}

interface PubAck {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code: number; err_code?: number; description: string };
}

/** PROTOCOL.md 6.2: a core NATS request to the mailbox subject; the reply is the PubAck JSON. */
async function publish(nc: NatsConnection, subject: string, payload: Uint8Array, h: MsgHdrs): Promise<PubAck> {
  const reply = await nc.request(subject, payload, { headers: h, timeout: 5_000 });
  return JSON.parse(utf8.decode(reply.data)) as PubAck;
}

interface Received {
  raw: Uint8Array;
  env: Env | undefined;
  headers: MsgHdrs | undefined;
}

/** A private core subscription; responses are matched by tag only (PROTOCOL.md 2, step 5). */
class Inbox {
  readonly subject: string;
  readonly received: Received[] = [];
  readonly #sub: Subscription;
  #wake: Array<() => void> = [];

  constructor(nc: NatsConnection, subject: string = createInbox()) {
    this.subject = subject;
    this.#sub = nc.subscribe(subject, {
      callback: (_err, m) => {
        let env: Env | undefined;
        try {
          env = decode(m.data);
        } catch {
          env = undefined;
        }
        this.received.push({ raw: m.data, env, headers: m.headers });
        const wake = this.#wake;
        this.#wake = [];
        for (const w of wake) w();
      },
    });
  }

  /** Every message received so far whose decoded tag is `tag`. */
  withTag(tag: string): Received[] {
    return this.received.filter((r) => r.env !== undefined && typeof r.env === "object" && r.env.tag === tag);
  }

  /** Resolves at the next arrival, or after `ms` (a bounded wait, not a synchronisation sleep). */
  arrival(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(1, ms));
      this.#wake.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The first message whose decoded `tag` equals `tag`; messages with other tags are ignored. */
  async response(tag: string, timeoutMs = 10_000): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.withTag(tag)[0];
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response with tag ${tag} on ${this.subject} within ${timeoutMs} ms`);
      await this.arrival(left);
    }
  }

  unsubscribe(): void {
    this.#sub.unsubscribe();
  }
}

interface CallResult {
  tag: string;
  ack: PubAck;
  response: Received;
  env: Env;
}

/** The quick path (PROTOCOL.md section 2) for any request type. */
async function send(
  nc: NatsConnection,
  prefix: string,
  uid: string,
  inbox: Inbox,
  body: Env,
  tag: string = uuid(),
): Promise<CallResult> {
  const envelope = { v: 1, tag, dest: uid, replyTo: inbox.subject, ...body };
  const ack = await publish(nc, mailboxSubject(prefix, uid), encode(envelope), requestHeaders(tag, inbox.subject));
  expect(ack.error).toBeUndefined();
  expect(ack.stream).toBe(`${prefix}_mailboxes`);
  const response = await inbox.response(tag);
  expect(response.env).toBeDefined();
  return { tag, ack, response, env: response.env! };
}

function call(nc: NatsConnection, prefix: string, uid: string, inbox: Inbox, name: string, args?: unknown[]): Promise<CallResult> {
  return send(nc, prefix, uid, inbox, { type: "action-request", action: name, ...(args === undefined ? {} : { args }) });
}

async function result(nc: NatsConnection, prefix: string, uid: string, inbox: Inbox, name: string, args?: unknown[]): Promise<unknown> {
  const { env } = await call(nc, prefix, uid, inbox, name, args);
  if (env.type !== "action-response") throw new Error(`${name}: ${JSON.stringify(env.error)}`);
  return env.result;
}

/**
 * PROTOCOL.md section 9, "without a KV-capable client": direct get of the last value of
 * `$KV.<bucket>.<key>` on stream `KV_<bucket>`. `undefined` = no entry or a delete/purge marker.
 */
async function kvGet(nc: NatsConnection, bucket: string, key: string): Promise<Uint8Array | undefined> {
  const m = await nc.request(`$JS.API.DIRECT.GET.KV_${bucket}.$KV.${bucket}.${key}`, new Uint8Array(0), { timeout: 5_000 });
  if (m.headers?.hasError) {
    expect(m.headers.code).toBe(404);
    return undefined;
  }
  const op = m.headers?.get("KV-Operation");
  if (op === "DEL" || op === "PURGE") return undefined;
  return m.data;
}

/** PROTOCOL.md section 9, the other raw form: `STREAM.MSG.GET` with `last_by_subj`. */
async function kvGetViaMsgGet(nc: NatsConnection, bucket: string, key: string): Promise<Uint8Array | undefined> {
  const m = await nc.request(
    `$JS.API.STREAM.MSG.GET.KV_${bucket}`,
    new TextEncoder().encode(JSON.stringify({ last_by_subj: `$KV.${bucket}.${key}` })),
    { timeout: 5_000 },
  );
  const reply = JSON.parse(utf8.decode(m.data)) as { message?: { data?: string }; error?: { code: number } };
  if (reply.error) return undefined;
  return Uint8Array.from(Buffer.from(reply.message?.data ?? "", "base64"));
}

type Status = "missing" | "active" | "terminated";

/** PROTOCOL.md section 9, "Status". */
async function statusOf(nc: NatsConnection, prefix: string, uid: string): Promise<{ status: Status; record?: Env }> {
  const value = await kvGet(nc, `${prefix}_registry`, uid);
  if (value === undefined) return { status: "missing" };
  const record = decode(value);
  return { status: record.status as Status, record };
}

/** PROTOCOL.md section 9, "By type": `<token>.<uid>` keys, token per the `=XX` escaping rule. */
function typeToken(typeName: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(typeName)) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(ch) ? ch : `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * List the keys `<token>.*` of `<prefix>_types` without a KV client: `STREAM.INFO` with a
 * `subjects_filter` on `KV_<prefix>_types` lists the subjects that hold a message; each value is
 * read with a direct get. Returns uid → `[concrete type, display name?]`.
 */
async function discover(nc: NatsConnection, prefix: string, typeName: string): Promise<Map<string, unknown[]>> {
  const bucket = `${prefix}_types`;
  const filter = `$KV.${bucket}.${typeToken(typeName)}.*`;
  const m = await nc.request(
    `$JS.API.STREAM.INFO.KV_${bucket}`,
    new TextEncoder().encode(JSON.stringify({ subjects_filter: filter })),
    { timeout: 5_000 },
  );
  const info = JSON.parse(utf8.decode(m.data)) as { state?: { subjects?: Record<string, number> }; error?: unknown };
  expect(info.error).toBeUndefined();
  const found = new Map<string, unknown[]>();
  for (const subject of Object.keys(info.state?.subjects ?? {})) {
    const key = subject.slice(`$KV.${bucket}.`.length);
    const value = await kvGet(nc, bucket, key);
    if (value === undefined) continue;
    found.set(key.slice(key.lastIndexOf(".") + 1), decode(value) as unknown[]);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Fixture: one nats-server for the file, a fresh prefix (deployment) per test.
// ---------------------------------------------------------------------------------------------

let nats: Awaited<ReturnType<typeof startTestNats>>;
beforeAll(async () => {
  nats = await startTestNats();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

let prefixCounter = 0;
interface Deployment extends AsyncDisposable {
  prefix: string;
  manager: Manager;
  /** The foreign client's own connection. */
  nc: NatsConnection;
}

async function deployment(): Promise<Deployment> {
  const prefix = `fc${++prefixCounter}_${uuid().slice(0, 8)}`;
  const factory = new NatsExchangeFactory({ servers: nats.url, prefix });
  const manager = await Manager.fromExchangeFactory(factory);
  const nc = await connect({ servers: nats.url });
  return {
    prefix,
    manager,
    nc,
    async [Symbol.asyncDispose]() {
      releaseHang();
      await nc.close();
      await manager.close();
      await factory.close();
    },
  };
}

/** Launch, then find the uid from the foreign side through the type index (section 9). */
async function launchAndFind(
  d: Deployment,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  cls: any,
  typeName: string,
  name?: string,
): Promise<string> {
  const handle = await d.manager.launch(cls, name === undefined ? {} : { name });
  const found = await discover(d.nc, d.prefix, typeName);
  const uid = [...found.entries()].find(([, value]) => value[0] === typeName)?.[0];
  expect(uid, `${typeName} in ${d.prefix}_types`).toBeDefined();
  // Cross-check with the library's own view of the id (public API).
  expect(uid).toBe((handle as unknown as { agentId: { uid: string } }).agentId.uid);
  expect((await statusOf(d.nc, d.prefix, uid!)).status).toBe("active");
  return uid!;
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

describe("a foreign client with only NATS and CBOR", () => {
  test("1. calls actions with replyTo: plain values, byte strings, maps", async () => {
    await using d = await deployment();
    const { nc, prefix } = d;
    const uid = await launchAndFind(d, Toolbox, "Toolbox");
    const inbox = new Inbox(nc);

    // A complete round trip, checking the response envelope (PROTOCOL.md 3.1, 7 "Response envelopes").
    const r = await call(nc, prefix, uid, inbox, "add", [2, 3]);
    expect(r.ack.seq).toBeGreaterThan(0);
    expect(r.ack.duplicate).toBeUndefined();
    expect(r.env).toEqual({ v: 1, type: "action-response", tag: r.tag, src: uid, replyTo: inbox.subject, result: 5 });
    expect("dest" in r.env).toBe(false); // absent in a response to replyTo (3.1)
    // ...even when the request also names a src: replyTo wins, and the response has no dest.
    const withSrc = await send(nc, prefix, uid, inbox, { type: "action-request", action: "add", args: [1, 1], src: "nobody" });
    expect(withSrc.env.result).toBe(2);
    expect("dest" in withSrc.env).toBe(false);
    // Responses to replyTo carry no headers (6.3); maps are written with a 2-byte length (4.1).
    expect(r.response.headers).toBeUndefined();
    expect(hex(r.response.raw.subarray(0, 3))).toBe("b90006");

    // Plain values.
    for (const value of ["héllo ✓", "", 0, -1, 255, 65_536, -(2 ** 31), 1.25, true, false, null, [1, "a", [null]]]) {
      expect(await result(nc, prefix, uid, inbox, "echo", [value])).toEqual(value);
    }
    // args absent or null means [] (3.2).
    expect(await result(nc, prefix, uid, inbox, "argCount")).toBe(0);
    const nullArgsTag = uuid();
    const nullArgs = await send(nc, prefix, uid, inbox, { type: "action-request", action: "argCount", args: null }, nullArgsTag);
    expect(nullArgs.env.result).toBe(0);
    expect(await result(nc, prefix, uid, inbox, "argCount", [1, 2, 3])).toBe(3);

    // Byte strings: sent as major type 2 without a tag, returned as major type 2 without a tag (4.2).
    const bytes = Uint8Array.from([1, 2, 3, 255]);
    expect(hex(encode(bytes))).toBe("44010203ff");
    const rev = await call(nc, prefix, uid, inbox, "reverse", [bytes]);
    expect(rev.env.type).toBe("action-response");
    expect(rev.env.result).toBeInstanceOf(Uint8Array);
    expect([...(rev.env.result as Uint8Array)]).toEqual([255, 3, 2, 1]);
    expect(hex(rev.response.raw)).toContain(bytesOf("result") + "44ff030201");
    expect(hex(rev.response.raw)).not.toContain("d840");
    // A byte string in tag 64 (cbor-x's default for Uint8Array) is read as Uint8Array too (4.2).
    const tagged = new Encoder({ useRecords: false }).encode(bytes);
    expect(hex(tagged)).toBe("d84044010203ff");
    const t64 = uuid();
    const raw64 = new Encoder({ useRecords: false }).encode({ v: 1, type: "action-request", tag: t64, dest: uid, replyTo: inbox.subject, action: "reverse", args: [bytes] });
    expect(hex(raw64)).toContain("d840440102");
    const ack64 = await publish(nc, mailboxSubject(prefix, uid), raw64, requestHeaders(t64, inbox.subject));
    expect(ack64.error).toBeUndefined();
    const res64 = (await inbox.response(t64)).env!;
    expect(res64.type).toBe("action-response");
    expect([...(res64.result as Uint8Array)]).toEqual([255, 3, 2, 1]);

    // A map (a JavaScript object): a plain CBOR map; large integers arrive as float64 (4.1).
    const prof = await call(nc, prefix, uid, inbox, "profile", []);
    expect(prof.env.result).toEqual({ name: "Ada", age: 36, tags: ["x", "y"], nested: { ok: true, none: null }, big: 2 ** 40, frac: 1.5 });
    expect(hex(prof.response.raw)).toContain(bytesOf("big") + "fb4270000000000000");
    // A map sent by the caller arrives as a plain object and comes back as a map.
    expect(await result(nc, prefix, uid, inbox, "echo", [{ a: 1, b: { c: [true] } }])).toEqual({ a: 1, b: { c: [true] } });

    // A JavaScript Map travels as tag 259 (4.2).
    const jm = await call(nc, prefix, uid, inbox, "jsMap", []);
    expect(hex(jm.response.raw)).toContain(bytesOf("result") + "d90103");
    expect(jm.env.result).toBeInstanceOf(Map);
    expect([...(jm.env.result as Map<unknown, unknown>).entries()]).toEqual([[1, "one"], ["k", [2]]]);

    // Date → tag 1 around a float64; Set → tag 258; bigint → always an 8-byte integer (4.2).
    const date = await call(nc, prefix, uid, inbox, "echo", [new Date(1_700_000_000_123)]);
    expect(hex(date.response.raw)).toContain(bytesOf("result") + "c1fb");
    expect((date.env.result as Date).getTime()).toBe(1_700_000_000_123);
    const set = await call(nc, prefix, uid, inbox, "echo", [new Set(["a"])]);
    expect(hex(set.response.raw)).toContain(bytesOf("result") + "d9010281" + bytesOf("a").replace(/^/, "61"));
    const big = await call(nc, prefix, uid, inbox, "echo", [5n]);
    expect(hex(big.response.raw)).toContain(bytesOf("result") + "1b0000000000000005");
    expect(big.env.result).toBe(5n);

    // An action that returns nothing: the key is written, as CBOR undefined 0xf7 (3.2).
    const nothing = await call(nc, prefix, uid, inbox, "nothing", []);
    expect(nothing.env.type).toBe("action-response");
    expect("result" in nothing.env).toBe(true);
    expect(nothing.env.result).toBeUndefined();
    expect(hex(nothing.response.raw).endsWith(bytesOf("result") + "f7")).toBe(true);

    // Keys the receiver does not know are ignored (3.1).
    const extra = await send(nc, prefix, uid, inbox, { type: "action-request", action: "add", args: [1, 1], futureKey: { x: 1 } });
    expect(extra.env.result).toBe(2);

    // Reading rules (4.2): a non-text map key arrives as text; indefinite lengths and half floats
    // are accepted. The envelope below is hand-written: an indefinite-length map, an
    // indefinite-length args array holding {1: "a"} and the half float 1.5 (f9 3e00).
    const indefTag = uuid();
    const indef = Buffer.concat([
      fromHex("bf"),
      encode("v"), encode(1),
      encode("type"), encode("action-request"),
      encode("tag"), encode(indefTag),
      encode("dest"), encode(uid),
      encode("replyTo"), encode(inbox.subject),
      encode("action"), encode("echo"),
      encode("args"), fromHex("9f a2 01 6161 02 f93e00 ff"),
      fromHex("ff"),
    ]);
    const indefAck = await publish(nc, mailboxSubject(prefix, uid), indef, requestHeaders(indefTag, inbox.subject));
    expect(indefAck.error).toBeUndefined();
    expect((await inbox.response(indefTag)).env).toMatchObject({ type: "action-response", result: { "1": "a", "2": 1.5 } });

    // Id tags (4.3): an AgentId result is tag 44032 [uid, name?]; tag 44032 as an argument
    // arrives as an AgentId; bad tag content makes the message MALFORMED_MESSAGE.
    const who = await call(nc, prefix, uid, inbox, "whoami", []);
    expect(hex(who.response.raw)).toContain(bytesOf("result") + "d9ac0081" + "7824" + bytesOf(uid));
    // cbor-x extensions are process-global and the library (running in this process) registers
    // its own for 44032-44034, so this decoder may hand back an AgentId instead of a Tag.
    const whoUid = who.env.result instanceof Tag ? (who.env.result.value as string[])[0] : (who.env.result as { uid: string }).uid;
    expect(whoUid).toBe(uid);
    const idArg = await call(nc, prefix, uid, inbox, "idInfo", [new Tag(["some-uid", "some-name"], 44032)]);
    expect(hex(encode(new Tag(["u"], 44032)))).toBe("d9ac00816175");
    expect(idArg.env.result).toEqual({ uid: "some-uid", name: "some-name", text: "AgentId<some-name>" });
    const badId = await call(nc, prefix, uid, inbox, "idInfo", [new Tag([42], 44032)]);
    expect(badId.env.error).toMatchObject({ code: "MALFORMED_MESSAGE" });

    // replyTo takes precedence over src (3.1): a src that names no mailbox does not matter.
    const both = await send(nc, prefix, uid, inbox, { type: "action-request", action: "add", args: [3, 4], src: "no-such-mailbox" });
    expect(both.env).toMatchObject({ type: "action-response", result: 7, src: uid, replyTo: inbox.subject });

    // Responses are matched by tag only: several requests in flight on one inbox.
    const tags = [uuid(), uuid(), uuid()];
    await Promise.all(
      tags.map((tag, i) =>
        publish(
          nc,
          mailboxSubject(prefix, uid),
          encode({ v: 1, type: "action-request", tag, dest: uid, replyTo: inbox.subject, action: "add", args: [i, 100] }),
          requestHeaders(tag, inbox.subject),
        ),
      ),
    );
    for (const [i, tag] of [...tags.entries()].reverse()) {
      expect((await inbox.response(tag)).env!.result).toBe(100 + i);
    }
    inbox.unsubscribe();
  });

  test("2. an action that throws: the failure map", async () => {
    await using d = await deployment();
    const { nc, prefix } = d;
    const uid = await launchAndFind(d, Toolbox, "Toolbox");
    const inbox = new Inbox(nc);

    const r = await call(nc, prefix, uid, inbox, "fail", []);
    expect(r.env.type).toBe("error-response");
    expect(r.env.tag).toBe(r.tag);
    expect(r.env.src).toBe(uid);
    expect("result" in r.env).toBe(false);
    const e = r.env.error as Env;
    expect(e.type).toBe("QuotaError");
    expect(e.message).toBe("quota exceeded");
    expect(e.code).toBe("E_QUOTA");
    // "An action's own exceptions travel with their own type, their code if it is a string, and no data."
    expect(e.data).toBeUndefined();
    expect(typeof e.stack).toBe("string");
    expect(e.stack).toContain("quota exceeded");
    expect(e.cause).toMatchObject({ type: "TypeError", message: "inner cause" });

    // A thrown non-Error: {type: "Error", message: String(value)}.
    const s = await call(nc, prefix, uid, inbox, "failString", []);
    expect(s.env.type).toBe("error-response");
    expect(s.env.error).toEqual({ type: "Error", message: "just a string" });

    // A non-string code is not a `code`.
    const n = await call(nc, prefix, uid, inbox, "failNumericCode", []);
    expect(n.env.error).toMatchObject({ type: "NumericCodeError", message: "numeric code" });
    expect("code" in n.env.error).toBe(false);

    // AggregateError: members in `errors`.
    const a = await call(nc, prefix, uid, inbox, "failAggregate", []);
    expect(a.env.error).toMatchObject({ type: "AggregateError", message: "several" });
    expect(a.env.error.errors).toHaveLength(2);
    expect(a.env.error.errors[0]).toMatchObject({ type: "RangeError", message: "r1" });
    expect(a.env.error.errors[1]).toMatchObject({ type: "Error", message: "e2" });
    inbox.unsubscribe();
  });

  test("3. unknown action, ping, cancel", async () => {
    await using d = await deployment();
    const { nc, prefix } = d;
    const uid = await launchAndFind(d, Toolbox, "Toolbox", "tools");
    const inbox = new Inbox(nc);

    // Unknown action (5.2): UNKNOWN_ACTION, UnknownActionError, data {action, agentId}.
    const u = await call(nc, prefix, uid, inbox, "nope", []);
    expect(u.env.type).toBe("error-response");
    expect(u.env.error).toMatchObject({
      type: "UnknownActionError",
      code: "UNKNOWN_ACTION",
      message: "Agent AgentId<tools> has no action 'nope'",
      data: { action: "nope", agentId: uid },
    });

    // Ping: success-response with no further keys (3.2).
    const p = await send(nc, prefix, uid, inbox, { type: "ping-request" });
    expect(p.env).toEqual({ v: 1, type: "success-response", tag: p.tag, src: uid, replyTo: inbox.subject });

    // Cancel of a finished action: ACTION_INVALID_STATE, answered under the cancel's tag.
    const done = await call(nc, prefix, uid, inbox, "add", [1, 1]);
    expect(done.env.result).toBe(2);
    const c1 = await send(nc, prefix, uid, inbox, { type: "cancel-request", target: done.tag });
    expect(c1.env.type).toBe("error-response");
    expect(c1.env.tag).toBe(c1.tag);
    expect(c1.env.error).toMatchObject({ type: "ActionInvalidStateError", code: "ACTION_INVALID_STATE" });
    // 5.2 says `data` has a `tag`; it is the *target's* tag.
    expect(c1.env.error.data).toEqual({ tag: done.tag });

    // Cancel of a tag the agent never saw: the same.
    const c2 = await send(nc, prefix, uid, inbox, { type: "cancel-request", target: uuid() });
    expect(c2.env.error.code).toBe("ACTION_INVALID_STATE");

    // Cancel of a running action: two responses (3.2).
    armHang();
    const hangTag = uuid();
    const hangAck = await publish(
      nc,
      mailboxSubject(prefix, uid),
      encode({ v: 1, type: "action-request", tag: hangTag, dest: uid, replyTo: inbox.subject, action: "hang", args: [] }),
      requestHeaders(hangTag, inbox.subject),
    );
    expect(hangAck.error).toBeUndefined();
    await within(hangStarted, "the hang action to start");
    const c3 = await send(nc, prefix, uid, inbox, { type: "cancel-request", target: hangTag });
    expect(c3.env).toEqual({ v: 1, type: "success-response", tag: c3.tag, src: uid, replyTo: inbox.subject });
    const cancelled = (await inbox.response(hangTag)).env!;
    expect(cancelled.type).toBe("error-response");
    expect(cancelled.error).toMatchObject({ type: "ActionCancelledError", code: "ACTION_CANCELLED", data: { agentId: uid, tag: hangTag } });
    releaseHang();
    // A queued-then-cancelled action still gets exactly one answer; the agent keeps serving.
    expect(await result(nc, prefix, uid, inbox, "add", [2, 2])).toBe(4);
    expect(inbox.withTag(hangTag)).toHaveLength(1);
    inbox.unsubscribe();
  });

  test("4. registry and type index: find by type, subclasses, status, termination", async () => {
    await using d = await deployment();
    const { nc, prefix } = d;
    const counterHandle = await d.manager.launch(Counter);
    const subHandle = await d.manager.launch(SubCounter, { name: "sub-1" });
    const otherHandle = await d.manager.launch(Other);
    const ids = (h: unknown): string => (h as { agentId: { uid: string } }).agentId.uid;

    expect(typeToken("Counter")).toBe("Counter");
    expect(typeToken("my.SubCounter")).toBe("my=2ESubCounter");
    expect(typeToken("a=b")).toBe("a=3Db");

    // Base type: finds the subclass agent too; values say the concrete type (and the name).
    const counters = await discover(nc, prefix, "Counter");
    expect(new Map(counters)).toEqual(
      new Map([
        [ids(counterHandle), ["Counter"]],
        [ids(subHandle), ["my.SubCounter", "sub-1"]],
      ]),
    );
    // Exact type: filter on the first element.
    expect([...counters].filter(([, v]) => v[0] === "Counter").map(([k]) => k)).toEqual([ids(counterHandle)]);
    expect([...(await discover(nc, prefix, "my.SubCounter")).keys()]).toEqual([ids(subHandle)]);
    expect(new Set((await discover(nc, prefix, "Agent")).keys())).toEqual(
      new Set([ids(counterHandle), ids(subHandle), ids(otherHandle)]),
    );

    // Registry records (NATS-LAYOUT.md 6.1), read both raw ways PROTOCOL.md section 9 gives.
    const subUid = ids(subHandle);
    const rec = await statusOf(nc, prefix, subUid);
    expect(rec.status).toBe("active");
    expect(rec.record).toMatchObject({
      v: 1,
      role: "agent",
      uid: subUid,
      name: "sub-1",
      type: "my.SubCounter",
      chain: ["my.SubCounter", "Counter", "Agent"],
      status: "active",
    });
    expect(typeof rec.record!.registeredAt).toBe("number");
    const viaMsgGet = await kvGetViaMsgGet(nc, `${prefix}_registry`, subUid);
    expect(decode(viaMsgGet!)).toEqual(rec.record);
    const counterRec = (await statusOf(nc, prefix, ids(counterHandle))).record!;
    expect(counterRec.name ?? undefined).toBeUndefined(); // `undefined`, `null` and absent alike
    // An unknown uid is missing.
    expect((await statusOf(nc, prefix, uuid())).status).toBe("missing");
    expect(await kvGetViaMsgGet(nc, `${prefix}_registry`, uuid())).toBeUndefined();

    // The subclass agent answers the base class's actions.
    const inbox = new Inbox(nc);
    expect(await result(nc, prefix, subUid, inbox, "increment", [5])).toBe(5);

    // shutdown-request with terminate: true → success-response, then the record turns terminated
    // and the type index entries go. Observed on the KV subject itself (core subscription).
    const kvSub = new Inbox(nc, `$KV.${prefix}_registry.${subUid}`);
    const sd = await send(nc, prefix, subUid, inbox, { type: "shutdown-request", terminate: true });
    expect(sd.env).toEqual({ v: 1, type: "success-response", tag: sd.tag, src: subUid, replyTo: inbox.subject });
    await waitFor(kvSub, (env) => env.status === "terminated");
    const after = await statusOf(nc, prefix, subUid);
    expect(after.status).toBe("terminated");
    expect(typeof after.record!.terminatedAt).toBe("number");
    expect([...(await discover(nc, prefix, "Counter")).keys()]).toEqual([ids(counterHandle)]);
    expect((await discover(nc, prefix, "my.SubCounter")).size).toBe(0);
    kvSub.unsubscribe();

    // A request waiting in a stopped agent's mailbox is answered MAILBOX_TERMINATED when the
    // mailbox is terminated (10.4, 10.5, 10.8).
    const counterUid = ids(counterHandle);
    const stop = await send(nc, prefix, counterUid, inbox, { type: "shutdown-request", terminate: false });
    expect(stop.env.type).toBe("success-response");
    await within(d.manager.wait([counterHandle as never]), "the agent to stop");
    expect((await statusOf(nc, prefix, counterUid)).status).toBe("active");
    const queuedTag = uuid();
    const queuedAck = await publish(
      nc,
      mailboxSubject(prefix, counterUid),
      encode({ v: 1, type: "action-request", tag: queuedTag, dest: counterUid, replyTo: inbox.subject, action: "increment", args: [1] }),
      requestHeaders(queuedTag, inbox.subject),
    );
    expect(queuedAck.error).toBeUndefined();
    await d.manager.exchangeClient.terminate((counterHandle as unknown as { agentId: never }).agentId);
    const term = (await inbox.response(queuedTag)).env!;
    expect(term.type).toBe("error-response");
    expect(term.error).toMatchObject({ type: "AgentTerminatedError", code: "MAILBOX_TERMINATED", data: { entityId: counterUid } });
    expect((await statusOf(nc, prefix, counterUid)).status).toBe("terminated");
    inbox.unsubscribe();
  });

  test("5. de-duplication: one execution per request", async () => {
    await using d = await deployment();
    const { nc, prefix } = d;
    const uid = await launchAndFind(d, Toolbox, "Toolbox");
    const inbox = new Inbox(nc);
    const key = `dedup-${prefix}`;
    const tag = uuid();
    const bytes = encode({ v: 1, type: "action-request", tag, dest: uid, replyTo: inbox.subject, action: "mark", args: [key] });

    // By the stream: the same Nats-Msg-Id twice → stored once, PubAck says duplicate.
    const first = await publish(nc, mailboxSubject(prefix, uid), bytes, requestHeaders(tag, inbox.subject));
    const second = await publish(nc, mailboxSubject(prefix, uid), bytes, requestHeaders(tag, inbox.subject));
    expect(first.duplicate).toBeUndefined();
    expect(second).toEqual({ stream: `${prefix}_mailboxes`, seq: first.seq, duplicate: true });
    expect((await inbox.response(tag)).env!.result).toBe(1);

    // By the running agent: the same tag under another Nats-Msg-Id is stored, but not run or
    // answered again (10.2). A later request on the same mailbox is the barrier.
    const third = await publish(nc, mailboxSubject(prefix, uid), bytes, requestHeaders(tag, inbox.subject, `${tag}-again`));
    expect(third.duplicate).toBeUndefined();
    expect(third.seq).toBeGreaterThan(first.seq!);
    expect(await result(nc, prefix, uid, inbox, "runsOf", [key])).toBe(1);
    expect(runs.get(key)).toBe(1);
    expect(inbox.withTag(tag)).toHaveLength(1);
    inbox.unsubscribe();
  });

  test("6. malformed input, another protocol version, fire-and-forget", async () => {
    await using d = await deployment();
    const { nc, prefix } = d;
    const uid = await launchAndFind(d, Toolbox, "Toolbox");
    const inbox = new Inbox(nc);
    const subject = mailboxSubject(prefix, uid);

    // Dead letters (NATS-LAYOUT.md 7) are observed with a core subscription on the DLQ subject.
    const dlq = new Inbox(nc, `${prefix}.dlq.${uid}`);

    // Garbage bytes with the reply headers: MALFORMED_MESSAGE at the Academy-Tag (10.7).
    const gTag = uuid();
    const garbage = Uint8Array.from([0xff, 0x00, 0x13, 0x37]);
    const gAck = await publish(nc, subject, garbage, requestHeaders(gTag, inbox.subject));
    expect(gAck.error).toBeUndefined();
    const g = (await inbox.response(gTag)).env!;
    expect(g).toMatchObject({ v: 1, type: "error-response", tag: gTag, replyTo: inbox.subject });
    expect(g.error).toMatchObject({ type: "MalformedMessageError", code: "MALFORMED_MESSAGE" });
    const dead = await nextRaw(dlq);
    expect([...dead.raw]).toEqual([...garbage]);
    expect(dead.headers?.get("Academy-Dead-Reason")).toBe("MALFORMED_MESSAGE");
    expect(dead.headers?.get("Nats-Msg-Id")).toBe(`dl:${gAck.seq}`);
    expect(dead.headers?.get("Academy-Original-Subject")).toBe(subject);
    expect(dead.headers?.get("Academy-Original-Seq")).toBe(String(gAck.seq));
    expect(dead.headers?.get("Academy-Original-Tag")).toBe(gTag);
    expect(dead.headers?.get("Academy-Original-Msg-Id")).toBe(gTag);
    expect(dead.headers?.get("Academy-Original-Reply-To")).toBe(inbox.subject);

    // Without Academy-Tag, the tag comes from Nats-Msg-Id.
    const g2Tag = uuid();
    const h2 = headers();
    h2.set("Nats-Msg-Id", g2Tag);
    h2.set("Academy-Reply-To", inbox.subject);
    await publish(nc, subject, Uint8Array.from([0x1c]), h2);
    expect((await inbox.response(g2Tag)).env!.error.code).toBe("MALFORMED_MESSAGE");
    const dead2 = await nextRaw(dlq);
    expect(dead2.headers?.get("Academy-Original-Msg-Id")).toBe(g2Tag);
    expect(dead2.headers?.has("Academy-Original-Tag")).toBe(false);

    // A future protocol version: INCOMPATIBLE_PROTOCOL, data {version, supported: 1} (12).
    const v2 = uuid();
    await publish(
      nc,
      subject,
      encode({ v: 2, type: "action-request", tag: v2, dest: uid, replyTo: inbox.subject, action: "add", args: [1, 2], extra: "x" }),
      requestHeaders(v2, inbox.subject),
    );
    const inc = (await inbox.response(v2)).env!;
    expect(inc).toMatchObject({ v: 1, type: "error-response", tag: v2 });
    expect(inc.error).toMatchObject({
      type: "IncompatibleProtocolError",
      code: "INCOMPATIBLE_PROTOCOL",
      data: { version: 2, supported: 1 },
    });
    const deadV2 = await nextRaw(dlq);
    expect(deadV2.headers?.get("Academy-Dead-Reason")).toBe("INCOMPATIBLE_PROTOCOL");
    expect(deadV2.headers?.get("Academy-Original-Tag")).toBe(v2);

    // `v` missing → MALFORMED_MESSAGE, answered from the payload's own tag/replyTo (no headers).
    const noV = uuid();
    const hNoV = headers();
    hNoV.set("Nats-Msg-Id", noV);
    await publish(nc, subject, encode({ type: "action-request", tag: noV, dest: uid, replyTo: inbox.subject, action: "add", args: [1, 2] }), hNoV);
    expect((await inbox.response(noV)).env!.error.code).toBe("MALFORMED_MESSAGE");
    await nextRaw(dlq);

    // Interop (4.2): `v` with an 8-byte argument is not a number to the receiver.
    const v8 = uuid();
    const rest = encode({ type: "action-request", tag: v8, dest: uid, replyTo: inbox.subject, action: "add", args: [1, 2] });
    expect(rest[0]).toBe(0xa6);
    const v8Bytes = Uint8Array.from([0xa7, 0x61, 0x76, 0x1b, 0, 0, 0, 0, 0, 0, 0, 1, ...rest.subarray(1)]);
    await publish(nc, subject, v8Bytes, requestHeaders(v8, inbox.subject));
    expect((await inbox.response(v8)).env!.error.code).toBe("MALFORMED_MESSAGE");
    await nextRaw(dlq);

    // Interop (4.2): an envelope wrapped in tag 259 (a Map) is MALFORMED_MESSAGE.
    const asMap = uuid();
    const mapBytes = new Encoder({ useRecords: false }).encode(
      new Map<string, unknown>([["v", 1], ["type", "action-request"], ["tag", asMap], ["dest", uid], ["replyTo", inbox.subject], ["action", "add"], ["args", [1, 2]]]),
    );
    expect(hex(mapBytes.subarray(0, 3))).toBe("d90103");
    await publish(nc, subject, mapBytes, requestHeaders(asMap, inbox.subject));
    expect((await inbox.response(asMap)).env!.error.code).toBe("MALFORMED_MESSAGE");
    await nextRaw(dlq);

    // `dest` naming another mailbox: not run, MALFORMED_MESSAGE (3.1).
    const key = `misaddressed-${prefix}`;
    const wrongDest = uuid();
    await publish(
      nc,
      subject,
      encode({ v: 1, type: "action-request", tag: wrongDest, dest: uuid(), replyTo: inbox.subject, action: "mark", args: [key] }),
      requestHeaders(wrongDest, inbox.subject),
    );
    expect((await inbox.response(wrongDest)).env!.error).toMatchObject({
      type: "MalformedMessageError",
      code: "MALFORMED_MESSAGE",
      data: { subject }, // 5.2: `subject` "when known"
    });
    await nextRaw(dlq);

    // A replyTo under `<prefix>.` is rejected and not answered there (3.1, 10.7).
    const evil = new Inbox(nc, `${prefix}.evil`);
    const underPrefix = uuid();
    await publish(
      nc,
      subject,
      encode({ v: 1, type: "action-request", tag: underPrefix, dest: uid, replyTo: `${prefix}.evil`, action: "mark", args: [key] }),
      requestHeaders(underPrefix, `${prefix}.evil`),
    );
    const deadEvil = await nextRaw(dlq);
    expect(deadEvil.headers?.get("Academy-Original-Tag")).toBe(underPrefix);
    expect(deadEvil.headers?.get("Academy-Dead-Reason")).toBe("MALFORMED_MESSAGE");
    await nc.flush();
    expect(evil.received).toHaveLength(0);
    evil.unsubscribe();

    // Fire-and-forget: no src, no replyTo, no reply header → executed, not answered.
    const ffKey = `ff-${prefix}`;
    const ffTag = uuid();
    const ffHeaders = headers();
    ffHeaders.set("Nats-Msg-Id", ffTag);
    ffHeaders.set("Academy-Tag", ffTag);
    const ffAck = await publish(nc, subject, encode({ v: 1, type: "action-request", tag: ffTag, dest: uid, action: "mark", args: [ffKey] }), ffHeaders);
    expect(ffAck.error).toBeUndefined();
    await ranOnce(ffKey);
    expect(await result(nc, prefix, uid, inbox, "runsOf", [ffKey])).toBe(1);
    // The misaddressed and under-prefix requests never ran.
    expect(runs.get(key)).toBeUndefined();
    // The agent keeps serving.
    expect(await result(nc, prefix, uid, inbox, "add", [40, 2])).toBe(42);
    dlq.unsubscribe();
    inbox.unsubscribe();
  });

  test("6b. a request to a user mailbox is INVALID_CLIENT", async () => {
    await using d = await deployment();
    const { nc, prefix } = d;
    await launchAndFind(d, Other, "Other"); // makes sure the manager's user client is registered
    // Find a user record: list the registry subjects, read each record.
    const m = await nc.request(
      `$JS.API.STREAM.INFO.KV_${prefix}_registry`,
      new TextEncoder().encode(JSON.stringify({ subjects_filter: `$KV.${prefix}_registry.*` })),
      { timeout: 5_000 },
    );
    const subjects = Object.keys((JSON.parse(utf8.decode(m.data)) as { state: { subjects: Record<string, number> } }).state.subjects);
    let userUid: string | undefined;
    for (const s of subjects) {
      const uid = s.slice(`$KV.${prefix}_registry.`.length);
      const { record } = await statusOf(nc, prefix, uid);
      if (record?.role === "user" && record.status === "active") userUid = uid;
    }
    expect(userUid).toBeDefined();
    const inbox = new Inbox(nc);
    const r = await call(nc, prefix, userUid!, inbox, "anything", []);
    expect(r.env.type).toBe("error-response");
    expect(r.env.error).toMatchObject({ type: "InvalidClientError", code: "INVALID_CLIENT" });
    inbox.unsubscribe();
  });

  test("8. a stream (section 15): window, frames in order, credits, end; cancel; the wrong kind", async () => {
    await using d = await deployment();
    const { nc, prefix } = d;
    const uid = await launchAndFind(d, Stepper, "Stepper");
    const inbox = new Inbox(nc);
    const items = (tag: string): unknown[] =>
      inbox
        .withTag(tag)
        .map((r) => r.env!)
        .filter((env) => env.type === "stream-items")
        .sort((a, b) => a.seq - b.seq)
        .flatMap((env) => env.items as unknown[]);
    const until = async (label: string, check: () => boolean): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
        await inbox.arrival(deadline - Date.now());
      }
    };
    const credit = async (target: string, value: number): Promise<void> => {
      const tag = `${target}.c${value}`;
      const ack = await publish(
        nc,
        mailboxSubject(prefix, uid),
        encode({ v: 1, type: "stream-credit", tag, dest: uid, target, credit: value }),
        requestHeaders(tag),
      );
      expect(ack.error).toBeUndefined();
    };

    // 15.2: `stream: 3` allows three items before any credit.
    const tag = uuid();
    const ack = await publish(
      nc,
      mailboxSubject(prefix, uid),
      encode({ v: 1, type: "action-request", tag, dest: uid, replyTo: inbox.subject, action: "count", args: [8], stream: 3 }),
      requestHeaders(tag, inbox.subject),
    );
    expect(ack.error).toBeUndefined();
    await until("three items", () => items(tag).length === 3);
    // The agent waits for credit: nothing more within a bounded look.
    await inbox.arrival(300);
    expect(items(tag)).toEqual([0, 1, 2]);
    const frames = inbox.withTag(tag).map((r) => r.env!);
    const run = frames[0]!.run as string;
    expect(typeof run).toBe("string");
    for (const frame of frames) expect(frame).toMatchObject({ v: 1, type: "stream-items", tag, src: uid, replyTo: inbox.subject, run });
    // A credit of 5 (taken 2 + window 3): two more.
    await credit(tag, 5);
    await until("five items", () => items(tag).length === 5);
    await credit(tag, 100);
    await until("the end", () => inbox.withTag(tag).some((r) => r.env?.type === "stream-end"));
    expect(items(tag)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const end = inbox.withTag(tag).find((r) => r.env?.type === "stream-end")!.env!;
    expect(end).toEqual({ v: 1, type: "stream-end", tag, src: uid, replyTo: inbox.subject, run, count: 8, result: "counted 8" });
    // Sequence numbers are consecutive from 0 across frames.
    let next = 0;
    for (const frame of inbox.withTag(tag).map((r) => r.env!).filter((e) => e.type === "stream-items").sort((a, b) => a.seq - b.seq)) {
      expect(frame.seq).toBe(next);
      next += (frame.items as unknown[]).length;
    }

    // 15.3: a cancel ends the stream with stream-end ACTION_CANCELLED after the items sent.
    const endless = uuid();
    await publish(
      nc,
      mailboxSubject(prefix, uid),
      encode({ v: 1, type: "action-request", tag: endless, dest: uid, replyTo: inbox.subject, action: "forever", stream: 4 }),
      requestHeaders(endless, inbox.subject),
    );
    await until("four items", () => items(endless).length === 4);
    const cancel = await send(nc, prefix, uid, inbox, { type: "cancel-request", target: endless });
    expect(cancel.env.type).toBe("success-response");
    await until("the cancelled end", () => inbox.withTag(endless).some((r) => r.env?.type === "stream-end"));
    const cancelled = inbox.withTag(endless).find((r) => r.env?.type === "stream-end")!.env!;
    expect(cancelled).toMatchObject({ count: 4, error: { type: "ActionCancelledError", code: "ACTION_CANCELLED" } });

    // 15.2: the wrong kind either way is ACTION_KIND, in one error-response.
    const wrong = await send(nc, prefix, uid, inbox, { type: "action-request", action: "plain", stream: 2 });
    expect(wrong.env).toMatchObject({ type: "error-response", error: { type: "ActionKindError", code: "ACTION_KIND", data: { action: "plain", streaming: false } } });
    const unary = await call(nc, prefix, uid, inbox, "count", [1]);
    expect(unary.env).toMatchObject({ type: "error-response", error: { code: "ACTION_KIND", data: { streaming: true } } });
    // 15.1: a window that is not a positive integer is MALFORMED_MESSAGE.
    const bad = await send(nc, prefix, uid, inbox, { type: "action-request", action: "count", args: [1], stream: 0 });
    expect(bad.env.error.code).toBe("MALFORMED_MESSAGE");
    inbox.unsubscribe();
  });

  test("7. the worked example of section 11", async () => {
    await using d = await deployment();
    const { nc, prefix } = d;
    const exampleUid = "9b2f6c1e-4d3a-4f7e-8a51-0c6d2e9f3b47";
    const tag = "0f8e2a4c-7b1d-4e69-9c35-a2d4f6b8e013";
    const inboxSubject = "_INBOX.3kQzT8bNvW2hRj5LmXcP1a";
    const request = (dest: string): Env => ({
      v: 1,
      type: "action-request",
      tag,
      dest,
      replyTo: inboxSubject,
      action: "increment",
      args: [2],
    });

    // 11.1: the 172 bytes, copied from the document.
    const documented = fromHex(`
      a7
      6176 01
      6474797065
      6e616374696f6e2d72657175657374
      63746167
      7824 30663865326134632d376231642d346536392d396333352d613264346636623865303133
      6464657374
      7824 39623266366331652d346433612d346637652d386135312d306336643265396633623437
      677265706c79546f
      781d 5f494e424f582e336b517a5438624e76573268526a354c6d5863503161
      66616374696f6e
      69696e6372656d656e74
      6461726773
      8102`);
    expect(documented.length).toBe(172);
    expect(hex(encode(request(exampleUid)))).toBe(hex(documented));
    expect(decode(documented)).toEqual(request(exampleUid));

    // The live agent: Counter exactly as in section 11 (its uid is chosen by the library).
    const uid = await launchAndFind(d, Counter, "Counter", "counter-1");
    const inbox = new Inbox(nc, inboxSubject);
    const live = encode(request(uid));
    expect(live.length).toBe(172);
    const h = headers();
    h.set("Nats-Msg-Id", tag);
    h.set("Academy-Tag", tag);
    h.set("Academy-Reply-To", inboxSubject);
    const ack = await publish(nc, `${prefix}.mbox.${uid}`, live, h);
    expect(ack).toEqual({ stream: `${prefix}_mailboxes`, seq: 1 });
    const again = await publish(nc, `${prefix}.mbox.${uid}`, live, h);
    expect(again).toEqual({ stream: `${prefix}_mailboxes`, seq: 1, duplicate: true });

    // 11.2: the response.
    const response = await inbox.response(tag);
    expect(response.headers).toBeUndefined();
    expect(response.raw.length).toBe(158);
    expect(hex(response.raw.subarray(0, 3))).toBe("b90006");
    expect(response.env).toEqual({ v: 1, type: "action-response", tag, src: uid, replyTo: inboxSubject, result: 2 });
    expect(Object.keys(response.env!)).toEqual(["v", "type", "tag", "src", "replyTo", "result"]);
    // The same bytes as the document's diagnostic notation, with the live uid in place of the example's.
    const expected = Buffer.concat([
      fromHex("b90006"),
      fromHex("6176 01"),
      fromHex("6474797065 6f"), Buffer.from("action-response"),
      fromHex("63746167 7824"), Buffer.from(tag),
      fromHex("63737263 7824"), Buffer.from(uid),
      fromHex("677265706c79546f 781d"), Buffer.from(inboxSubject),
      fromHex("66726573756c74 02"),
    ]);
    expect(hex(response.raw)).toBe(hex(expected));

    // The unknown-action variant (another tag: the first one has been answered, 10.2).
    const nopeTag = uuid();
    const nope = encode({ ...request(uid), tag: nopeTag, action: "nope" });
    const nh = headers();
    nh.set("Nats-Msg-Id", nopeTag);
    nh.set("Academy-Tag", nopeTag);
    nh.set("Academy-Reply-To", inboxSubject);
    expect((await publish(nc, `${prefix}.mbox.${uid}`, nope, nh)).error).toBeUndefined();
    const err = await inbox.response(nopeTag);
    expect(hex(err.raw.subarray(0, 3))).toBe("b90006");
    expect(Object.keys(err.env!)).toEqual(["v", "type", "tag", "src", "replyTo", "error"]);
    expect(err.env).toMatchObject({ v: 1, type: "error-response", tag: nopeTag, src: uid, replyTo: inboxSubject });
    expect(Object.keys(err.env!.error)).toEqual(["type", "message", "code", "stack", "data"]);
    expect(err.env!.error).toMatchObject({
      type: "UnknownActionError",
      message: "Agent AgentId<counter-1> has no action 'nope'",
      code: "UNKNOWN_ACTION",
      data: { action: "nope", agentId: uid },
    });
    expect(err.env!.error.stack.startsWith("UnknownActionError: Agent AgentId<counter-1> has no action 'nope'\n    at ")).toBe(true);
    // `{_1 ...}` for the nested maps too.
    expect(hex(err.raw)).toContain(bytesOf("error") + "b90005");
    expect(hex(err.raw)).toContain(bytesOf("data") + "b90002");
    inbox.unsubscribe();
  });
});

/** Waits for a message on `inbox` whose decoded envelope satisfies `predicate`. */
async function waitFor(inbox: Inbox, predicate: (env: Env) => boolean, timeoutMs = 10_000): Promise<Env> {
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  for (;;) {
    for (; seen < inbox.received.length; seen++) {
      const env = inbox.received[seen]!.env;
      if (env && predicate(env)) return env;
    }
    if (Date.now() > deadline) throw new Error(`timed out on ${inbox.subject}`);
    await nextArrival(inbox, deadline - Date.now(), seen);
  }
}

const dlqSeen = new WeakMap<Inbox, number>();
/** The next not-yet-consumed raw message on `inbox` (used for the dead-letter subject). */
async function nextRaw(inbox: Inbox, timeoutMs = 10_000): Promise<Received> {
  const index = dlqSeen.get(inbox) ?? 0;
  const deadline = Date.now() + timeoutMs;
  while (inbox.received.length <= index) {
    if (Date.now() > deadline) throw new Error(`nothing more on ${inbox.subject}`);
    await nextArrival(inbox, deadline - Date.now(), index);
  }
  dlqSeen.set(inbox, index + 1);
  return inbox.received[index]!;
}

/** Resolves when `inbox` has more than `count` messages, or after `ms`. */
function nextArrival(inbox: Inbox, ms: number, count: number): Promise<void> {
  if (inbox.received.length > count) return Promise.resolve();
  return inbox.arrival(ms);
}

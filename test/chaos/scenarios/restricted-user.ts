/**
 * Restricted user: every kind of NATS user of an exchange runs with exactly the permissions
 * `natsPermissions` gives its role (the tables of docs/NATS-LAYOUT.md section 11), each with an inbox
 * prefix of its own, on a server with authorization. An agent process (which provisions the
 * exchange), a runtime host, a launcher (a manager on a host pool that also lists hosts and agents),
 * a library caller (calling in both reply modes, with its registry watch forced to reset, which
 * deletes the watch's consumer), a foreign caller answered at its `replyTo` (PROTOCOL.md 8.1) and a
 * foreign caller with a mailbox of its own (8.2) do their work: none of them may cause a single
 * permission violation. Meanwhile a restricted user, allowed to call one agent by `replyTo` and
 * nothing else, tries to publish into other mailboxes, read the registry and the type index, read
 * other clients' responses (subscriptions and a consumer of its own on a mailbox) and delete or purge
 * streams and consumers: every attempt must be refused and change nothing.
 *
 * Reported: the legitimate calls (answered, each run once by the execution ledger, the longest
 * stall), the attacks made and refused, and what the restricted user could still do (call its agent,
 * and claim another client's mailbox as its `src`, which NATS cannot prevent: docs/SECURITY.md).
 */
import { connect } from "@nats-io/transport-node";
import { createInbox, headers as natsHeaders } from "@nats-io/nats-core";
import type { Msg, NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, HostPoolExecutor, Manager, NatsExchangeFactory, NatsRole, action, natsLayout } from "../../../src/index.ts";
import type { ActionContext, NatsExchangeOptions } from "../../../src/index.ts";
import { decodeValue, encodeValue } from "../../../src/protocol/codec.ts";
import { TYPE_CATALOG_KEY, decodeCatalog, decodeMembers, memberListKey } from "../../../src/exchange/nats/type-members.ts";
import { RuntimeHost, listAgentRows, listHostRows } from "../../../runtime/index.ts";
import { startSecureNats } from "../../support/secure-nats.ts";
import type { SecureNats } from "../../support/secure-nats.ts";
import { readLedger, recordExecution, tally } from "../ledger.ts";
import type { ChaosContext, ChaosResult, ChaosScenario } from "../scenario.ts";

const PREFIX = "sec";
const POOL = "secpool";
const MAX_STALL_MS = 5_000;

let ledger = "";

/** The agent everyone calls: records each call, and says who its caller claimed to be. */
export class Guarded extends Agent {
  @action({ context: true })
  async hit(id: string, ctx: ActionContext): Promise<{ id: string; source: string | undefined }> {
    recordExecution(ledger, id);
    return { id, source: ctx.source };
  }
}

/** Another agent, which the restricted user may not reach. */
export class Private extends Agent {
  @action async secret(): Promise<string> {
    return "secret";
  }
}

const layout = natsLayout(PREFIX);

/** Bounds a wait (only to fail instead of hanging). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Call tracking shared by every legitimate caller: answers, the ledger ids, the longest stall. */
class Calls {
  readonly ids: string[] = [];
  answered = 0;
  failed = 0;
  readonly failures: string[] = [];
  maxStallMs = 0;

  /** Make one call; calls are made one at a time, so the longest stall is the slowest call. */
  async make(what: string, call: (id: string) => Promise<{ id: string } | undefined>): Promise<void> {
    const id = `${what}:${randomUUID()}`;
    const started = Date.now();
    this.ids.push(id);
    try {
      const answer = await call(id);
      if (answer?.id === id) this.answered++;
      else this.failures.push(`${what}: wrong answer ${JSON.stringify(answer)}`);
    } catch (error) {
      this.failed++;
      this.failures.push(`${what}: ${(error as Error).name}: ${(error as Error).message}`);
    }
    this.maxStallMs = Math.max(this.maxStallMs, Date.now() - started);
  }
}

function options(nats: SecureNats, user: string, extra: NatsExchangeOptions = {}): NatsExchangeOptions {
  const { servers, user: name, pass, inboxPrefix } = nats.users[user]!.connectionOptions;
  return { servers, connectionOptions: { user: name, pass, inboxPrefix }, prefix: PREFIX, retryWindowMs: 5_000, ...extra };
}

/** A foreign call answered at `replyTo` (PROTOCOL.md 8.1), on a raw connection. */
async function foreignCall(nc: NatsConnection, inboxPrefix: string, dest: string, id: string, extra: Record<string, unknown> = {}): Promise<{ id: string; source: string | undefined }> {
  const tag = randomUUID();
  const replyTo = createInbox(inboxPrefix);
  const sub = nc.subscribe(replyTo, { max: 1 });
  const headers = natsHeaders();
  headers.set("Nats-Msg-Id", tag);
  headers.set("Academy-Tag", tag);
  headers.set("Academy-Reply-To", replyTo);
  await jetstream(nc).publish(layout.mailboxSubject(dest), encodeValue({ v: 1, type: "action-request", tag, dest, replyTo, action: "hit", args: [id], ...extra }), { headers, msgID: tag });
  for await (const m of sub) {
    const response = decodeValue(m.data) as { type: string; result?: { id: string; source: string | undefined }; error?: unknown };
    if (response.type !== "action-response") throw new Error(`error response: ${JSON.stringify(response.error)}`);
    return response.result!;
  }
  throw new Error("reply subscription closed");
}

/** An attempt the restricted user must not be able to make: true if NATS refused it. */
async function refused(attempt: () => Promise<unknown>): Promise<boolean> {
  try {
    await within(attempt(), 5_000, "an attempt");
    return false;
  } catch (error) {
    return /Permissions Violation|permission/i.test(`${(error as Error).message} ${String((error as { cause?: Error }).cause?.message ?? "")}`);
  }
}

async function run(ctx: ChaosContext): Promise<ChaosResult> {
  const dir = mkdtempSync(join(tmpdir(), "academy-restricted-"));
  ledger = join(dir, "ledger");
  const rounds = ctx.short ? 5 : 20;
  const nats = await startSecureNats({
    agent: { role: NatsRole.Agent, prefix: PREFIX, provision: true, replySubjects: ["_INBOX.>"] },
    host: { role: NatsRole.Host, prefix: PREFIX, provision: true, pools: [POOL] },
    launcher: { role: NatsRole.Launcher, prefix: PREFIX, pools: [POOL] },
    caller: { role: NatsRole.Caller, prefix: PREFIX },
    foreign: { role: NatsRole.ForeignCaller, prefix: PREFIX },
    fmailbox: { role: NatsRole.ForeignMailbox, prefix: PREFIX },
    // Until it is given one agent below, the restricted user may do nothing but use its inbox.
    mallory: { permissions: { publish: { allow: [] }, subscribe: { allow: ["_INBOX.mallory.>"] } } },
  });
  const calls = new Calls();
  const problems: string[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  try {
    // The agent process provisions the exchange and runs the agents; the host provisions the pools.
    const agentFactory = new NatsExchangeFactory(options(nats, "agent"));
    closers.push(() => agentFactory.close());
    const manager = await Manager.fromExchangeFactory(agentFactory);
    closers.push(() => manager.close());
    const guarded = await manager.launch(Guarded);
    const privateAgent = await manager.launch(Private);
    const host = await RuntimeHost.start({ pool: POOL, classes: [Guarded], exchange: options(nats, "host"), heartbeatMs: 500, hostTtlMs: 2_000 });
    closers.push(() => host.drain());

    // The restricted user may call the one agent it was given: its mailbox, by replyTo, nothing else.
    await nats.reload({
      mallory: { role: NatsRole.ForeignCaller, prefix: PREFIX, mailboxes: [guarded.agentId.uid], registry: false },
    });
    const mallory = await connect(nats.users["mallory"]!.connectionOptions);
    closers.push(() => mallory.close());
    const stolen: Msg[] = [];

    // The library caller (the victim), in both reply modes.
    const callerFactories = await Promise.all(
      (["core", "mailbox"] as const).map(async (replies) => {
        const factory = new NatsExchangeFactory(options(nats, "caller", { replies }));
        closers.push(() => factory.close());
        const client = await factory.createUserClient();
        return { replies, factory, client };
      }),
    );
    const victim = callerFactories[0]!.client;
    // Both callers' views watch the registry from here on: every watch the check below counts is
    // one that was deleted and must be made again (a view started later would make a new consumer
    // that passes for a remade one).
    for (const { client } of callerFactories) await client.discover(Guarded);

    // An operator deletes the consumers of the callers' registry watches; they are made again when
    // the watches miss their heartbeats (about 90 s after the deletion here), and the old consumer
    // is deleted first (nats.js deletes it whether or not it exists). Waited for at the end.
    const admin = await connect(nats.users["admin"]!.connectionOptions);
    closers.push(() => admin.close());
    const adminJsm = await jetstreamManager(admin);
    const watchers = async (): Promise<string[]> => {
      const found: string[] = [];
      for await (const c of adminJsm.consumers.list(`KV_${layout.registryBucket}`)) {
        // A consumer deleted while the list is made comes back as null.
        if ((c as typeof c | null)?.config.deliver_subject?.startsWith("_INBOX.caller.") === true) found.push(c.name);
      }
      return found;
    };
    // The callers' views start their watches in the background: wait until both consumers exist.
    let before = await watchers();
    for (const deadline = Date.now() + 15_000; before.length < callerFactories.length && Date.now() < deadline; before = await watchers()) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const name of before) await adminJsm.consumers.delete(`KV_${layout.registryBucket}`, name);
    let after: string[] = [];
    const watchReset = (async () => {
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        after = await watchers();
        if (before.length >= callerFactories.length && after.length >= before.length && !after.some((name) => before.includes(name))) return true;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      return false;
    })();

    // The restricted user listens wherever other clients' answers could pass.
    let refusedAttempts = 0;
    let attempts = 0;
    const attack = async (what: string, attempt: () => Promise<unknown>): Promise<void> => {
      attempts++;
      if (await refused(attempt)) refusedAttempts++;
      else ctx.log(`NOT REFUSED: ${what}`);
    };
    for (const subject of ["_INBOX.>", "_INBOX.caller.>", `${PREFIX}.deliver.>`, ">", `${PREFIX}.mbox.*`]) {
      await attack(`subscribe ${subject}`, async () => {
        const sub = mallory.subscribe(subject, {
          callback: (error, m) => {
            if (error === null) stolen.push(m);
          },
        });
        await mallory.flush();
        // nats.js reports a refused subscription by closing it with the server's error.
        await within(sub.closed.then((error) => { if (error instanceof Error) throw error; }), 2_000, "the subscription to be refused");
      });
    }

    // Legitimate work, with the restricted user's attacks in between.
    const js = jetstream(mallory);
    const jsm = await jetstreamManager(mallory);
    for (let round = 0; round < rounds; round++) {
      for (const { replies, client } of callerFactories) {
        await calls.make(`caller-${replies}`, (id) => client.getHandle(guarded.agentId).with({ timeoutMs: 10_000 }).hit(id));
      }
      await calls.make("restricted", (id) => within(foreignCall(mallory, "_INBOX.mallory", guarded.agentId.uid, id), 10_000, "a restricted call"));
      if (round === 0) {
        // Publishing into another mailbox: the victim's, another agent's, a new one.
        for (const uid of [victim.clientId.uid, privateAgent.agentId.uid, randomUUID()]) {
          await attack(`publish into ${uid}`, () =>
            js.publish(layout.mailboxSubject(uid), encodeValue({ v: 1, type: "action-response", tag: randomUUID(), dest: uid, result: "forged" })),
          );
        }
        // Reading the registry and the type index.
        const registryStream = `KV_${layout.registryBucket}`;
        await attack("direct get of a record", () => mallory.request(`$JS.API.DIRECT.GET.${registryStream}.$KV.${layout.registryBucket}.${victim.clientId.uid}`, undefined, { timeout: 2_000 }));
        await attack("leader get of a record", () => jsm.streams.getMessage(registryStream, { last_by_subj: `$KV.${layout.registryBucket}.${victim.clientId.uid}` }));
        await attack("watch the registry", async () => {
          const kv = await new Kvm(js).open(layout.registryBucket);
          return kv.watch({ key: ">" });
        });
        await attack("list the type index", () => jsm.streams.info(`KV_${layout.typesBucket}`, { subjects_filter: `$KV.${layout.typesBucket}.>` }));
        await attack("read the type catalog", () => jsm.streams.getMessage(`KV_${layout.memberListsBucket}`, { last_by_subj: `$KV.${layout.memberListsBucket}.${TYPE_CATALOG_KEY}` }));
        await attack("direct get of a member list", () =>
          mallory.request(`$JS.API.DIRECT.GET.KV_${layout.memberListsBucket}.$KV.${layout.memberListsBucket}.${memberListKey("Guarded", guarded.agentId.uid)}`, undefined, { timeout: 2_000 }),
        );
        await attack("write a member list", () => js.publish(`$KV.${layout.memberListsBucket}.${memberListKey("Guarded", guarded.agentId.uid)}`, new Uint8Array([0x80])));
        // Reading another client's responses with a consumer of its own on the victim's mailbox.
        await attack("a consumer on the victim's mailbox", () =>
          jsm.consumers.add(layout.mailboxStream, { name: "mallory", filter_subject: layout.mailboxSubject(victim.clientId.uid), deliver_subject: "_INBOX.mallory.x", ack_policy: "explicit" as never }),
        );
        // Deleting and purging streams and consumers.
        for (const stream of [layout.mailboxStream, registryStream, `KV_${layout.typesBucket}`, `KV_${layout.memberListsBucket}`, layout.deadLetterStream, layout.launchStream]) {
          await attack(`delete ${stream}`, () => jsm.streams.delete(stream));
        }
        await attack("purge the mailboxes", () => jsm.streams.purge(layout.mailboxStream));
        // What it may publish, it may garble: the agent dead-letters it and goes on serving.
        mallory.publish(layout.mailboxSubject(guarded.agentId.uid), new Uint8Array([0xff, 0x00, 0x13]));
        await mallory.flush();
        await attack("delete an agent's mailbox consumer", () => jsm.consumers.delete(layout.mailboxStream, layout.mailboxConsumer(guarded.agentId.uid)));
      }
    }

    // What NATS cannot prevent: the restricted user claims the victim's mailbox as its src. The
    // agent sees the claim; its answer goes to replyTo, and a response steered into the victim's
    // mailbox (no replyTo) is ignored there: it answers no call of the victim's.
    const spoofed = await within(foreignCall(mallory, "_INBOX.mallory", guarded.agentId.uid, "spoof", { src: victim.clientId.uid }), 10_000, "a spoofed call");
    const spoofedSeen = spoofed.source === victim.clientId.uid;
    const steerTag = randomUUID();
    await js.publish(
      layout.mailboxSubject(guarded.agentId.uid),
      encodeValue({ v: 1, type: "action-request", tag: steerTag, dest: guarded.agentId.uid, src: victim.clientId.uid, action: "hit", args: ["steered"] }),
      { msgID: steerTag },
    );
    await calls.make("caller-after-steer", (id) => victim.getHandle(guarded.agentId).with({ timeoutMs: 10_000 }).hit(id));

    // The library caller's registry watch resets: an operator deletes its consumer, the watch
    // notices the missing heartbeats (two of 30 s) and makes a new one, deleting the old first.
    const watchesReset = await watchReset;
    // The reset watch still serves: a registration by another process is seen by discover.
    const late = await manager.launch(Guarded);
    const seen = (await victim.discover(Guarded)).some((id) => id.uid === late.agentId.uid);
    await calls.make("caller-after-reset", (id) => victim.getHandle(late.agentId).with({ timeoutMs: 10_000 }).hit(id));

    // An operator deletes the agent's mailbox consumer: its reader hears the advisory, looks the
    // consumer up, reads the mailbox's status and makes the consumer again.
    await adminJsm.consumers.delete(layout.mailboxStream, layout.mailboxConsumer(guarded.agentId.uid));
    await calls.make("caller-after-consumer-loss", (id) => victim.getHandle(guarded.agentId).with({ timeoutMs: 10_000 }).hit(id));

    // The launcher: a manager placing an agent on the pool, listing hosts and agents.
    const launcherFactory = new NatsExchangeFactory(options(nats, "launcher"));
    closers.push(() => launcherFactory.close());
    const launcher = await Manager.fromExchangeFactory(launcherFactory, { executors: { [POOL]: new HostPoolExecutor({ pool: POOL }) } });
    const pooled = await launcher.launch(Guarded, { executor: POOL });
    for (let i = 0; i < rounds; i++) await calls.make("pool", (id) => pooled.with({ timeoutMs: 20_000 }).hit(id));
    const backend = await launcherFactory.poolBackend();
    const hostRows = await listHostRows(backend, { pool: POOL });
    const agentRows = await listAgentRows(backend, { pool: POOL });
    await launcher.shutdown(pooled, { blocking: true });
    await launcher.close();

    // The foreign caller (8.1): status and discovery by raw JetStream requests, calls by replyTo.
    const foreign = await connect(nats.users["foreign"]!.connectionOptions);
    closers.push(() => foreign.close());
    const status = await foreign.request(`$JS.API.DIRECT.GET.KV_${layout.registryBucket}.$KV.${layout.registryBucket}.${guarded.agentId.uid}`, undefined, { timeout: 5_000 });
    const foreignStatus = (decodeValue(status.data) as { status: string }).status;
    const typesInfo = await foreign.request(`$JS.API.STREAM.INFO.KV_${layout.typesBucket}`, JSON.stringify({ subjects_filter: `$KV.${layout.typesBucket}.Guarded.*` }), { timeout: 5_000 });
    const foreignFound = Object.keys((JSON.parse(new TextDecoder().decode(typesInfo.data)) as { state: { subjects?: Record<string, number> } }).state.subjects ?? {}).length;
    // And the member lists (PROTOCOL.md 9): the catalog, then the shard of an agent, by direct gets.
    const catalog = await foreign.request(`$JS.API.DIRECT.GET.KV_${layout.memberListsBucket}.$KV.${layout.memberListsBucket}.${TYPE_CATALOG_KEY}`, undefined, { timeout: 5_000 });
    const shard = await foreign.request(`$JS.API.DIRECT.GET.KV_${layout.memberListsBucket}.$KV.${layout.memberListsBucket}.${memberListKey("Guarded", guarded.agentId.uid)}`, undefined, { timeout: 5_000 });
    const foreignListed = (decodeCatalog(catalog.data)?.has("Guarded") ?? false) && (decodeMembers(shard.data) ?? []).some((m) => m.uid === guarded.agentId.uid);
    for (let i = 0; i < rounds; i++) await calls.make("foreign", (id) => within(foreignCall(foreign, "_INBOX.foreign", guarded.agentId.uid, id), 10_000, "a foreign call"));

    // The foreign caller with a mailbox of its own (8.2).
    const fm = await connect(nats.users["fmailbox"]!.connectionOptions);
    closers.push(() => fm.close());
    const fmJs = jetstream(fm);
    const fmJsm = await jetstreamManager(fm);
    const registry = await new Kvm(fmJs).open(layout.registryBucket, { allow_direct: false });
    const uid = randomUUID();
    await registry.create(uid, encodeValue({ v: 1, role: "user", uid, status: "active", registeredAt: Date.now() }));
    const deliver = `_INBOX.fmailbox.mbox.${uid}`;
    const responses = new Map<string, { id: string }>();
    const waiting = new Map<string, (value: { id: string }) => void>();
    fm.subscribe(deliver, {
      callback: (_, m) => {
        const response = decodeValue(m.data) as { tag: string; result: { id: string } };
        m.respond(new TextEncoder().encode("+ACK"));
        responses.set(response.tag, response.result);
        waiting.get(response.tag)?.(response.result);
      },
    });
    await fm.flush();
    await fmJsm.consumers.add(layout.mailboxStream, {
      durable_name: layout.mailboxConsumer(uid),
      filter_subject: layout.mailboxSubject(uid),
      deliver_subject: deliver,
      ack_policy: "explicit" as never,
      deliver_policy: "all" as never,
    });
    for (let i = 0; i < rounds; i++) {
      await calls.make("foreign-mailbox", async (id) => {
        const tag = randomUUID();
        const answer = new Promise<{ id: string }>((resolve) => waiting.set(tag, resolve));
        const headers = natsHeaders();
        headers.set("Academy-Src", uid);
        await fmJs.publish(layout.mailboxSubject(guarded.agentId.uid), encodeValue({ v: 1, type: "action-request", tag, dest: guarded.agentId.uid, src: uid, action: "hit", args: [id] }), { msgID: tag, headers });
        return within(answer, 10_000, "a response in the foreign mailbox");
      });
    }
    // Termination, as 8.2 step 5 says: the record marked terminated, the consumer deleted, the subject purged.
    const record = (await registry.get(uid))!;
    await registry.update(uid, encodeValue({ ...(decodeValue(record.value) as object), status: "terminated", terminatedAt: Date.now() }), record.revision);
    await fmJsm.consumers.delete(layout.mailboxStream, layout.mailboxConsumer(uid));
    await fmJsm.streams.purge(layout.mailboxStream, { filter: layout.mailboxSubject(uid) });

    // The server stalls (SIGSTOP) long enough for the clients' KV watches to miss two heartbeats
    // (30 s apart): each watch then deletes its consumer and makes a new one (nats.js's reset), the
    // step that needs CONSUMER.DELETE on the bucket's stream. Not in --short (it takes 95 s).
    let stalledWatchesReset = "skipped (--short)";
    if (!ctx.short) {
      const watching = await watchers();
      ctx.log("stopping the server for 95 s so that the KV watches miss their heartbeats");
      process.kill(nats.server.pid!, "SIGSTOP");
      await new Promise((resolve) => setTimeout(resolve, 95_000));
      process.kill(nats.server.pid!, "SIGCONT");
      // Reset: every old consumer gone (deleted by its watch), as many new ones.
      const reset = (now: string[]): boolean => !now.some((name) => watching.includes(name)) && now.length >= watching.length;
      let now = await watchers();
      for (let i = 0; i < 150 && !reset(now); i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        now = await watchers();
      }
      stalledWatchesReset = `${watching.length} watches, ${now.filter((name) => !watching.includes(name)).length} consumers made anew`;
      if (!reset(now)) problems.push(`the caller's watches did not reset after the stall (${stalledWatchesReset})`);
      await calls.make("caller-after-stall", (id) => victim.getHandle(guarded.agentId).with({ timeoutMs: 10_000 }).hit(id));
    }

    // Close everything legitimate, then count.
    for (const { client } of callerFactories) await client.close();
    await manager.close();
    await host.drain();
    // The rejection's dead letter is stored beside the agent's later work: wait for it (up to 10 s).
    const deadLetterStored = (): Promise<boolean> =>
      adminJsm.streams.getMessage(layout.deadLetterStream, { last_by_subj: layout.deadLetterSubject(guarded.agentId.uid) }).then(
        (m) => m !== null,
        () => false,
      );
    let deadLettered = await deadLetterStored();
    for (const deadline = Date.now() + 10_000; !deadLettered && Date.now() < deadline; deadLettered = await deadLetterStored()) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (!deadLettered) problems.push("the restricted user's malformed request was not dead-lettered");
    const violations = await nats.violations();
    const legitimate = violations.filter((v) => v.user !== "mallory");
    const streamsLeft = await Promise.all(
      [layout.mailboxStream, `KV_${layout.registryBucket}`, `KV_${layout.typesBucket}`, `KV_${layout.memberListsBucket}`, layout.deadLetterStream, layout.launchStream].map((s) =>
        adminJsm.streams.info(s).then(() => true, () => false),
      ),
    );

    const counts = readLedger(ledger);
    const { executedTwice, neverExecuted } = tally(counts, calls.ids);
    if (legitimate.length > 0) problems.push(`permission violations of legitimate users: ${JSON.stringify(legitimate)}`);
    if (refusedAttempts !== attempts) problems.push(`${attempts - refusedAttempts} of ${attempts} attacks were not refused`);
    if (stolen.length > 0) problems.push(`the restricted user received ${stolen.length} messages meant for others: ${stolen.slice(0, 5).map((m) => m.subject).join(", ")}`);
    if (calls.failed > 0 || calls.answered !== calls.ids.length) problems.push(`${calls.ids.length - calls.answered} calls not answered: ${calls.failures.slice(0, 3).join("; ")}`);
    if (!watchesReset) problems.push(`the caller's registry watches were not made again (${before.length} deleted, ${after.length} now)`);
    if (!seen) problems.push("discover after the watch reset missed a new agent");
    if (streamsLeft.includes(false)) problems.push("a stream is gone");
    if (foreignStatus !== "active" || foreignFound < 1) problems.push(`the foreign caller read status ${foreignStatus} and found ${foreignFound} agents`);
    if (!foreignListed) problems.push("the foreign caller did not find the agent in the member lists");
    if (hostRows.length !== 1 || agentRows.length < 1) problems.push(`the launcher listed ${hostRows.length} hosts and ${agentRows.length} agents`);
    const result: ChaosResult = {
      calls: calls.ids.length,
      answered: calls.answered,
      failed: calls.failed,
      executedTwice,
      neverExecuted,
      maxStallMs: calls.maxStallMs,
      details: {
        roles: "agent, host, launcher, caller (core and mailbox replies), foreign caller, foreign mailbox",
        legitimateViolations: legitimate.length,
        attacks: attempts,
        attacksRefused: refusedAttempts,
        restrictedViolationsLogged: violations.length - legitimate.length,
        messagesStolen: stolen.length,
        spoofedSrcSeenByAgent: spoofedSeen,
        watchConsumersRemade: `${before.length} deleted, ${after.length} made again`,
        watchesAfterStall: stalledWatchesReset,
      },
    };
    if (problems.length > 0) throw new Error(`restricted user: ${problems.join("; ")}; ${JSON.stringify(result)}`);
    return result;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await nats[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  }
}

const scenario: ChaosScenario = {
  id: "restricted-user",
  title: "every role on exactly its documented NATS permissions, and a restricted user's attacks refused",
  maxStallMs: MAX_STALL_MS,
  run,
};
export default scenario;

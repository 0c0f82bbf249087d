/**
 * Poison decode: every input class that is slow to decode (bench/decoder.ts's catalogue: the
 * bignum of issue 11, colliding Sets and Maps, shared-value and packed-value bombs, record
 * definitions, deep nesting, dense tags...), built at the payload limit, sent as whole messages
 * and as the argument of a well-formed request into an agent's and a pool agent's mailbox, into a
 * pool's launch queue and into every KV bucket (registry, type index, its member lists, hosts,
 * placements, results),
 * while 4 callers call a healthy agent continuously and a runtime host serves the pool, all in this
 * process. Fails when a call is lost or run twice, a call waits over 1 s, the process's event loop
 * is blocked over 1 s, a poisoned mailbox message is not dead-lettered, a fresh process's discover
 * (which reads the poisoned member lists) does not return exactly the live agents, or the host no
 * longer launches afterwards. `--short` sends each class to one place in turn instead of all.
 */
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { HostPoolExecutor, Manager, NatsExchangeFactory, natsLayout } from "../../../src/index.ts";
import { startNatsServer } from "../../../src/testing/index.ts";
import { RuntimeHost } from "../../../runtime/index.ts";
import { INPUT_CLASSES, array, map, text, uint } from "../../support/cbor-inputs.ts";
import { memberListKey, memberListKeys } from "../../../src/exchange/nats/type-members.ts";
import { CallLoad, ChaosProbe, until, useLedger } from "../call-load.ts";
import { readLedger, tally } from "../ledger.ts";
import type { ChaosContext, ChaosResult, ChaosScenario } from "../scenario.ts";

const POOL = "poison";
const MAX_STALL_MS = 1_000;
/** Room left under the payload limit for the subject, headers and (for envelopes) the routing. */
const MARGIN = 2_048;

/** A well-formed action request whose one argument is `poison` (CBOR written by hand). */
function envelope(dest: string, poison: Uint8Array): Uint8Array {
  return map([
    [text("v"), uint(1)],
    [text("type"), text("action-request")],
    [text("tag"), text(randomUUID())],
    [text("dest"), text(dest)],
    [text("replyTo"), text(`_INBOX.poison.${randomUUID()}`)],
    [text("action"), text("hit")],
    [text("args"), array([poison])],
  ]);
}

async function run(ctx: ChaosContext): Promise<ChaosResult> {
  const dir = mkdtempSync(join(tmpdir(), "academy-poison-"));
  const ledger = join(dir, "ledger");
  useLedger(ledger);
  await using server = await startNatsServer();
  const prefix = `pd${process.pid}_${Date.now() % 100_000}`;
  const layout = natsLayout(prefix);
  const options = { servers: server.url, prefix };
  const agentFactory = new NatsExchangeFactory(options);
  const callerFactories = Array.from({ length: 4 }, () => new NatsExchangeFactory(options));
  const nc = await connect({ servers: server.url });
  const limit = nc.info!.max_payload;
  const manager = await Manager.fromExchangeFactory(agentFactory, { executors: { [POOL]: new HostPoolExecutor({ pool: POOL }) } });
  const host = await RuntimeHost.start({ pool: POOL, classes: [ChaosProbe], exchange: options, heartbeatMs: 500, hostTtlMs: 2_000 });
  try {
    const healthy = await manager.launch(ChaosProbe);
    const pooled = await manager.launch(ChaosProbe, { executor: POOL });
    await pooled.with({ timeoutMs: 20_000 }).hit("warm-up-pool");
    const callers = await Promise.all(callerFactories.map((f) => f.createUserClient()));
    for (const caller of callers) await caller.getHandle(healthy.agentId).hit(`warm-up-${caller.clientId.uid}`);

    const classes = INPUT_CLASSES.filter((c) => c.verdict === "refused");
    // The type's member lists that a cold discover reads, except the shards of the live agents
    // (poison there would drop them: whoever may write the bucket may do that).
    const liveShards = new Set([healthy, pooled].map((h) => memberListKey("ChaosProbe", h.agentId.uid)));
    const poisonedShards = memberListKeys("ChaosProbe").filter((key) => !liveShards.has(key));
    const size = limit - MARGIN;
    const targets: Array<{ what: string; subject: () => string; wrap?: string }> = [
      { what: "agent mailbox", subject: () => layout.mailboxSubject(healthy.agentId.uid) },
      { what: "agent mailbox, as an argument", subject: () => layout.mailboxSubject(healthy.agentId.uid), wrap: healthy.agentId.uid },
      { what: "pool agent mailbox, as an argument", subject: () => layout.mailboxSubject(pooled.agentId.uid), wrap: pooled.agentId.uid },
      { what: "launch queue", subject: () => layout.launchSubject(POOL, randomUUID()) },
      { what: "registry", subject: () => `$KV.${layout.registryBucket}.${randomUUID()}` },
      { what: "type index", subject: () => `$KV.${layout.typesBucket}.ChaosProbe.${randomUUID()}` },
      { what: "member lists", subject: () => `$KV.${layout.memberListsBucket}.${poisonedShards[Math.floor(Math.random() * poisonedShards.length)]!}` },
      { what: "hosts", subject: () => `$KV.${layout.hostsBucket}.poison-${randomUUID()}` },
      { what: "placements", subject: () => `$KV.${layout.placementsBucket}.${POOL}.${randomUUID()}` },
      { what: "results", subject: () => `$KV.${layout.resultsBucket}.${healthy.agentId.uid}.${randomUUID()}` },
    ];

    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    // The healthy agent, called continuously (batches of 40 calls, one in flight per caller) until
    // the poison has been handled; `load` adds the batches up.
    const load = { ids: [] as string[], answered: 0, failed: 0, failures: [] as string[], maxStallMs: 0 };
    let stop = false;
    const calling = (async () => {
      while (!stop) {
        const batch = new CallLoad(callers.map((caller) => [caller.getHandle(healthy.agentId)]), { total: 40, inFlight: 1, timeoutMs: 30_000 });
        await batch.run();
        load.ids.push(...batch.ids);
        load.answered += batch.answered;
        load.failed += batch.failed;
        load.failures.push(...batch.failures);
        load.maxStallMs = Math.max(load.maxStallMs, batch.maxStallMs);
      }
    })();

    const sent = new Map<string, number>();
    let mailboxPoison = 0;
    const startedAt = Date.now();
    let i = 0;
    for (const input of classes) {
      const bytes = input.build(size);
      const chosen = ctx.short ? [targets[i++ % targets.length]!] : targets;
      for (const target of chosen) {
        const data = target.wrap === undefined ? bytes : envelope(target.wrap, bytes.subarray(0, Math.min(bytes.byteLength, size - 256)));
        if (data.byteLength > limit - 256) continue;
        nc.publish(target.subject(), data);
        await nc.flush();
        sent.set(target.what, (sent.get(target.what) ?? 0) + 1);
        if (target.what.includes("mailbox")) mailboxPoison++;
      }
    }
    const publishedMs = Date.now() - startedAt;
    ctx.log(`published ${[...sent.values()].reduce((a, b) => a + b, 0)} poisoned messages of ~${Math.round(size / 1024)} KiB in ${publishedMs} ms`);

    // Every poisoned mailbox message ends dead-lettered.
    const jsm = await jetstreamManager(nc);
    const count = async (stream: string, subject: string): Promise<number> => {
      const info = await jsm.streams.info(stream, { subjects_filter: subject });
      return Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
    };
    await until(async () => (await count(layout.deadLetterStream, `${prefix}.dlq.*`)) >= mailboxPoison, 120_000, "the poisoned mailbox messages to be dead-lettered");
    const handledMs = Date.now() - startedAt;
    // A fresh process discovers while the loop is watched: its cold path decodes the poisoned lists.
    const fresh = new NatsExchangeFactory(options);
    const discovered = (await (await fresh.createUserClient()).discover(ChaosProbe)).map((id) => id.uid).sort();
    await fresh.close();
    const live = [healthy.agentId.uid, pooled.agentId.uid].sort();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    stop = true;
    await calling;
    delay.disable();
    const maxLoopDelayMs = delay.max / 1e6;

    const later = await manager.launch(ChaosProbe, { executor: POOL });
    const laterAnswer = await later.with({ timeoutMs: 20_000 }).hit("after-poison");
    // Messages still on their way (the last responses) settle within moments; poison would stay.
    let leftInMailboxes = 0;
    let leftSubjects = "";
    await until(
      async () => {
        const info = await jsm.streams.info(layout.mailboxStream, { subjects_filter: `${prefix}.mbox.*` });
        const left = Object.entries(info.state.subjects ?? {}).filter(([, n]) => n > 0);
        leftInMailboxes = left.reduce((sum, [, n]) => sum + n, 0);
        leftSubjects = left.map(([subject, n]) => `${subject}: ${n}`).join(", ");
        return leftInMailboxes === 0;
      },
      15_000,
      "the mailboxes to empty",
    ).catch(() => undefined);
    for (const caller of callers) await caller.close();
    await manager.shutdown(later, { blocking: true });
    await manager.shutdown(pooled, { blocking: true });
    await manager.close();
    await host.drain();

    const { executedTwice, neverExecuted } = tally(readLedger(ledger), load.ids);
    const problems: string[] = [];
    if (load.failed > 0) problems.push(`${load.failed} calls failed (${load.failures.slice(0, 3).join("; ")})`);
    if (laterAnswer !== "after-poison") problems.push("the host did not run a new agent afterwards");
    if (JSON.stringify(discovered) !== JSON.stringify(live)) problems.push(`a fresh discover returned ${discovered.length} agents, ${live.length} live`);
    if (leftInMailboxes !== 0) problems.push(`${leftInMailboxes} messages left in mailboxes (${leftSubjects}; the healthy agent ${healthy.agentId.uid}, the pool agent ${pooled.agentId.uid})`);
    if (maxLoopDelayMs > MAX_STALL_MS * ctx.stallFactor) problems.push(`the event loop was blocked for ${Math.round(maxLoopDelayMs)} ms`);
    const result: ChaosResult = {
      calls: load.ids.length,
      answered: load.answered,
      failed: load.failed,
      executedTwice,
      neverExecuted,
      maxStallMs: load.maxStallMs,
      details: {
        classes: classes.length,
        payloadBytes: size,
        sent: [...sent].map(([k, n]) => `${k}: ${n}`).join(", "),
        publishedMs,
        handledMs,
        maxEventLoopDelayMs: Math.round(maxLoopDelayMs),
        deadLetters: await count(layout.deadLetterStream, `${prefix}.dlq.>`),
      },
    };
    if (problems.length > 0) throw new Error(`poison decode: ${problems.join("; ")}; ${JSON.stringify(result)}`);
    return result;
  } finally {
    await manager.close().catch(() => undefined);
    await host.drain().catch(() => undefined);
    await nc.close();
    for (const f of callerFactories) await f.close().catch(() => undefined);
    await agentFactory.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

const scenario: ChaosScenario = {
  id: "poison-decode",
  title: "slow-to-decode inputs at the payload limit into mailboxes, a launch queue and every KV bucket while a healthy agent is called",
  maxStallMs: MAX_STALL_MS,
  run,
};
export default scenario;

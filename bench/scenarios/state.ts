/**
 * Scenario: durable state and reminders (docs/STATE.md).
 *
 * A. What a state save costs per action: the same increment on an agent without state and on one
 *    whose durable state is saved at the end of every call (one compare-and-set KV write before
 *    the response), next to a bare KV put and a bare KV compare-and-set update of a record of the
 *    same size, on the same server, interleaved round by round.
 * B. Reminders at scale: N agents (1,000; 200 with --quick), each with a one-shot reminder due at
 *    a time spread over the same second, fired by one scheduler (the manager's); how long after
 *    the start of that second the last fire reached its agent, and each fire's lateness.
 */
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Manager, MisfirePolicy, NatsExchangeFactory, ReminderScheduler } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { newReminder } from "../../src/state/reminder-record.ts";
import { BenchPlainCounter, BenchReminded, BenchStatefulCounter, reminderArrivals } from "../agents.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { ms, ratio, sleep, summarize, time } from "../lib/stats.ts";

export default async function state(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick, server } = ctx;

  // --- A. the cost of a save per action ---
  await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("state") }));
  const plain: Handle<BenchPlainCounter> = await manager.launch(BenchPlainCounter);
  const stateful: Handle<BenchStatefulCounter> = await manager.launch(BenchStatefulCounter);
  const nc = await connect({ servers: server.url, noAsyncTraces: true });
  const kv = await new Kvm(jetstream(nc)).create(`${ctx.prefix("statekv")}_bare`, { history: 1 });
  // Warm the stateful agent until its record holds a full window of remembered requests, then
  // write bare records of the same size.
  for (let i = 0; i < 300; i++) await stateful.increment();
  const stored = await (await manager.exchangeFactory.stateStore!()).get(stateful.agentId.uid);
  const record = new Uint8Array(stored!.bytes.byteLength).fill(7);
  let revision = await kv.put("cas", record);
  const samples = { plain: [] as number[], stateful: [] as number[], kvPut: [] as number[], kvUpdate: [] as number[] };
  const rounds = quick ? 5 : 20;
  const perRound = quick ? 100 : 250;
  try {
    for (let i = 0; i < 300; i++) {
      await plain.increment();
      await stateful.increment();
      await kv.put("put", record);
      revision = await kv.update("cas", record, revision);
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < perRound; i++) await time(samples.kvPut, () => kv.put("put", record));
      for (let i = 0; i < perRound; i++) await time(samples.kvUpdate, async () => (revision = await kv.update("cas", record, revision)));
      for (let i = 0; i < perRound; i++) await time(samples.plain, () => plain.increment());
      for (let i = 0; i < perRound; i++) await time(samples.stateful, () => stateful.increment());
    }
  } finally {
    await nc.close();
  }
  const a = {
    recordBytes: record.byteLength,
    plain: summarize(samples.plain),
    stateful: summarize(samples.stateful),
    kvPut: summarize(samples.kvPut),
    kvUpdate: summarize(samples.kvUpdate),
  };
  const saveCostMs = a.stateful.p50Ms - a.plain.p50Ms;
  ctx.log(`state: plain p50 ${ms(a.plain.p50Ms)} ms, stateful ${ms(a.stateful.p50Ms)} ms, KV update ${ms(a.kvUpdate.p50Ms)} ms`);

  // --- B. N reminders due in the same second ---
  const count = quick ? 200 : 1_000;
  const factory = new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("reminders") });
  // The manager fires no reminders here: one scheduler of the benchmark's own does, to be watched.
  await using reminding = await Manager.fromExchangeFactory(factory, { reminders: false });
  const launchedAt = performance.now();
  const agents: Array<Handle<BenchReminded>> = [];
  for (let i = 0; i < count; i += 100) {
    agents.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => reminding.launch(BenchReminded)))));
  }
  await Promise.all(agents.map((agent) => agent.ping()));
  ctx.log(`reminders: ${count} agents running after ${ms(performance.now() - launchedAt)} ms`);
  const store = await factory.reminderStore();
  await using scheduler = await ReminderScheduler.start(store);
  // The second: starts 3 s after the reminders are written, each reminder at its own millisecond of it.
  const second = Math.ceil((Date.now() + 3_000) / 1000) * 1000;
  reminderArrivals.clear();
  for (let i = 0; i < count; i += 100) {
    await Promise.all(
      agents.slice(i, i + 100).map((agent, j) =>
        store.put(newReminder(agent.agentId.uid, "due", { action: "onReminder", at: second + Math.floor(((i + j) * 1000) / count), misfire: MisfirePolicy.FireOnce }, Date.now())),
      ),
    );
  }
  const deadline = second + 30_000;
  let allPublishedAt: number | undefined;
  while (reminderArrivals.size < count && Date.now() < deadline) {
    if (allPublishedAt === undefined && scheduler.fired >= count) allPublishedAt = Date.now();
    await sleep(5);
  }
  allPublishedAt ??= Date.now();
  const arrivals = [...reminderArrivals.values()];
  const lastMs = Math.max(...arrivals.map((r) => r.arrivedAt)) - second;
  const lateness = summarize(arrivals.map((r) => r.arrivedAt - r.dueAt));
  const publishedMs = allPublishedAt - second;
  const b = { agents: count, fired: arrivals.length, lastArrivalAfterSecondStartMs: lastMs, allPublishedAfterSecondStartMs: publishedMs, latenessMs: lateness };
  ctx.log(`reminders: ${arrivals.length}/${count} fired; the last ${ms(lastMs)} ms after the second began`);

  return {
    id: "state",
    title: `9. State and reminders: A. an increment without and with a durable-state save, vs bare KV writes (ms); B. ${count} one-shot reminders due in one second`,
    headers: ["measure", "p50", "p99", "mean", "vs plain p50"],
    rows: [
      ["increment, no state", ms(a.plain.p50Ms), ms(a.plain.p99Ms), ms(a.plain.meanMs), ratio(1)],
      ["increment, state saved", ms(a.stateful.p50Ms), ms(a.stateful.p99Ms), ms(a.stateful.meanMs), ratio(a.stateful.p50Ms / a.plain.p50Ms)],
      [`bare KV put (${a.recordBytes} B)`, ms(a.kvPut.p50Ms), ms(a.kvPut.p99Ms), ms(a.kvPut.meanMs), "-"],
      [`bare KV update, CAS (${a.recordBytes} B)`, ms(a.kvUpdate.p50Ms), ms(a.kvUpdate.p99Ms), ms(a.kvUpdate.meanMs), "-"],
      [`reminders: lateness of each of ${count}`, ms(lateness.p50Ms), ms(lateness.p99Ms), ms(lateness.meanMs), "-"],
      [`reminders: all published after the second began`, ms(publishedMs), "-", "-", "-"],
      [`reminders: last fire after the second began`, ms(lastMs), "-", "-", "-"],
    ],
    figures: { save: { ...a, saveCostP50Ms: saveCostMs, saveCostOverKvUpdate: saveCostMs / a.kvUpdate.p50Ms }, reminders: b },
    targets: [
      { name: `${count} reminders due in one second all fire`, goal: "within 2 s", measured: `${arrivals.length}/${count}, last at ${(lastMs / 1000).toFixed(2)} s`, met: arrivals.length === count && lastMs <= 2_000 },
    ],
    notes: [
      `A save costs ${ms(saveCostMs)} ms per action at p50 (stateful minus plain), against ${ms(a.kvUpdate.p50Ms)} ms for the bare compare-and-set update it performs: ${ratio(saveCostMs / a.kvUpdate.p50Ms)}.`,
      `The state record carries the value and the requests applied within the duplicate window with their responses (at most dedupeMax, 256 by default): ${a.recordBytes} B here; the bare writes use records of that size.`,
      "B: one scheduler (started by the benchmark; the manager's is off) publishes each reminder's request (Nats-Msg-Id per due time) and moves the reminder on by compare-and-set, 256 at a time (a due time over 60 s old is read again first).",
    ],
  };
}

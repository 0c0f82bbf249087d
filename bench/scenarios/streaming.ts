/**
 * Scenario: streaming results. Items per second of 64 B items streamed through a handle (NATS
 * exchange, frames through the caller's mailbox; also in process), against bare NATS core
 * publishes of the same items from one connection to a subscriber on another, in the same run,
 * rounds interleaved. And time to first item of a stream against the round trip of an ordinary
 * action, sequential, interleaved.
 */
import { connect } from "@nats-io/transport-node";
import { LocalExchangeFactory, Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { BenchEcho, BenchStreamer } from "../agents.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { ms, ratio, summarize } from "../lib/stats.ts";

const ITEM_BYTES = 64;
const WINDOWS = [256, 1024, 4096];

/** Read a stream to its end; returns the items per second. */
async function streamRate(handle: Handle<BenchStreamer>, n: number, window: number): Promise<number> {
  const start = performance.now();
  let count = 0;
  for await (const _ of handle.invokeStream("items", [n, ITEM_BYTES], { window })) count++;
  if (count !== n) throw new Error(`streamed ${count} items of ${n}`);
  return n / ((performance.now() - start) / 1000);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export default async function streaming(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick, server } = ctx;
  const n = quick ? 20_000 : 100_000;
  const rounds = quick ? 3 : 5;
  await using nats = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: server.url, prefix: ctx.prefix("stream") }));
  await using local = await Manager.fromExchangeFactory(new LocalExchangeFactory());
  const streamer = await nats.launch(BenchStreamer);
  const localStreamer = await local.launch(BenchStreamer);
  const echo = await nats.launch(BenchEcho);

  // Bare NATS: one connection publishes the items, another receives them.
  const publisher = await connect({ servers: server.url, noAsyncTraces: true });
  const subscriber = await connect({ servers: server.url });
  const subject = "bench.stream.items";
  let received = 0;
  let done: (() => void) | undefined;
  let expected = 0;
  subscriber.subscribe(subject, {
    callback: () => {
      if (++received === expected) done?.();
    },
  });
  await subscriber.flush();
  const payload = new Uint8Array(ITEM_BYTES).fill(7);
  const bareRate = async (): Promise<number> => {
    received = 0;
    expected = n;
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      publisher.publish(subject, payload);
      // Let the socket drain now and then, as any sender of 100,000 messages must.
      if ((i & 1023) === 1023) await publisher.flush();
    }
    await all;
    return n / ((performance.now() - start) / 1000);
  };

  const rates: Record<string, number[]> = { bare: [], inProcess: [] };
  for (const window of WINDOWS) rates[`w${window}`] = [];
  const firstItem: number[] = [];
  const roundTrip: number[] = [];
  const small = new Uint8Array(ITEM_BYTES).fill(7);
  try {
    // Warm every path.
    await bareRate();
    for (const window of WINDOWS) await streamRate(streamer, Math.min(n, 20_000), window);
    await streamRate(localStreamer, Math.min(n, 20_000), 1024);
    for (let i = 0; i < 200; i++) await echo.echo(small);
    for (let round = 0; round < rounds; round++) {
      rates.bare!.push(await bareRate());
      for (const window of WINDOWS) rates[`w${window}`]!.push(await streamRate(streamer, n, window));
      rates.inProcess!.push(await streamRate(localStreamer, n, 1024));
      ctx.log(`streaming round ${round + 1}: bare ${Math.round(rates.bare!.at(-1)!)}/s, window 1024 ${Math.round(rates.w1024!.at(-1)!)}/s`);
    }
    const samples = quick ? 100 : 300;
    for (let i = 0; i < samples; i++) {
      const start = performance.now();
      const iterator = streamer.invokeStream("items", [1, ITEM_BYTES]);
      await iterator.next();
      firstItem.push(performance.now() - start);
      await iterator.next();
      const t = performance.now();
      await echo.echo(small);
      roundTrip.push(performance.now() - t);
    }
  } finally {
    await publisher.close();
    await subscriber.close();
  }

  const bare = median(rates.bare!);
  const figures = {
    itemBytes: ITEM_BYTES,
    itemsPerRound: n,
    rounds,
    itemsPerSecond: Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, { median: median(v), all: v }])),
    ratioToBare: Object.fromEntries(WINDOWS.map((w) => [`w${w}`, median(rates[`w${w}`]!) / bare])),
    /** Each round's stream rate over the same round's bare rate: the median of those. */
    ratioToBarePerRound: Object.fromEntries(
      [...WINDOWS.map((w) => `w${w}`), "inProcess"].map((k) => [k, median(rates[k]!.map((rate, i) => rate / rates.bare![i]!))]),
    ),
    timeToFirstItem: summarize(firstItem),
    actionRoundTrip: summarize(roundTrip),
  };
  const ttfi = figures.timeToFirstItem;
  const rt = figures.actionRoundTrip;
  const defaultRatio = figures.ratioToBare.w1024!;
  const wideRatio = figures.ratioToBare.w4096!;
  const per = (v: number): string => `${Math.round(v).toLocaleString("en-US")}/s`;
  return {
    id: "streaming",
    title: `11. Streaming: ${ITEM_BYTES} B items per second through a handle (NATS, frames through the caller's mailbox) vs bare NATS core publishes; time to first item vs action round trip`,
    headers: ["path", "items/s (median)", "vs bare", "vs bare, per round", "p50 ms", "p99 ms"],
    rows: [
      ["bare NATS publish -> subscriber", per(bare), "1.00x", "1.00x", "", ""],
      ...WINDOWS.map((w) => [
        `stream, window ${w}${w === 1024 ? " (default)" : ""}`,
        per(median(rates[`w${w}`]!)),
        ratio(median(rates[`w${w}`]!) / bare),
        ratio(figures.ratioToBarePerRound[`w${w}`]!),
        "",
        "",
      ]),
      ["stream in process, window 1024", per(median(rates.inProcess!)), ratio(median(rates.inProcess!) / bare), ratio(figures.ratioToBarePerRound.inProcess!), "", ""],
      ["time to first item (stream of 1)", "", "", "", ms(ttfi.p50Ms), ms(ttfi.p99Ms)],
      ["action round trip (64 B echo)", "", "", "", ms(rt.p50Ms), ms(rt.p99Ms)],
    ],
    figures,
    targets: [
      { name: "streamed 64 B items/s vs bare NATS publishes (default window 1024)", goal: ">= 0.5x", measured: ratio(defaultRatio), met: defaultRatio >= 0.5 },
      { name: "the same with window 4096", goal: ">= 0.5x", measured: ratio(wideRatio), met: wideRatio >= 0.5 },
    ],
    notes: [
      `${n.toLocaleString("en-US")} items per round, ${rounds} rounds, paths interleaved round by round; the median round is shown, and the median of each round's ratio to that round's bare rate.`,
      "Bare NATS: one connection publishes (flushing every 1,024), another subscribes; timed from the first publish to the last item received. Nothing is stored.",
      "A stream: the agent pulls its generator under the caller's credit and sends the items yielded while a frame is on its way together in the next frame (one JetStream publish per frame).",
      `Time to first item ${ms(ttfi.p50Ms)} ms p50 against ${ms(rt.p50Ms)} ms for an action round trip: the request, then the first frame, each stored once.`,
    ],
  };
}

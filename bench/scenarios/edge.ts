/**
 * Scenario 7, edge sites: a hub (site `cloud`, domain `hub`) and a leaf site (`s1`, its own
 * domain) behind an uplink proxy, both on this machine. Measures the round trip of an action from
 * the cloud to an agent at the site over the leaf link (outbox, mirror, relay, and the same way
 * back) next to a round trip inside the site and inside the cloud, and the catch-up after an
 * outage: the time from the uplink's return until every one of N calls queued during the outage
 * is answered. Starts its own servers (the run's server is not a hub).
 */
import { Manager, NatsExchangeFactory } from "../../src/index.ts";
import type { Handle } from "../../src/index.ts";
import { startNatsLeafTopology } from "../../src/testing/index.ts";
import { BenchEcho } from "../agents.ts";
import type { BenchContext, ScenarioResult } from "../lib/report.ts";
import { ms, ratio, summarize, time } from "../lib/stats.ts";
import type { Summary } from "../lib/stats.ts";

const DENY = ["cloud.>", "s1.>"];

export default async function edge(ctx: BenchContext): Promise<ScenarioResult> {
  const { quick } = ctx;
  await using topology = await startNatsLeafTopology({ sites: [{ name: "s1", denyImports: DENY, denyExports: DENY }] });
  const site = topology.site("s1");
  const cloudFactory = new NatsExchangeFactory({ servers: topology.hub.url, prefix: "cloud", domain: "hub", sites: [{ name: "s1", domain: "s1" }] });
  await using cloud = await Manager.fromExchangeFactory(cloudFactory);
  const siteFactory = new NatsExchangeFactory({ servers: site.server.url, prefix: "s1", domain: "s1", sites: [{ name: "cloud", domain: "hub" }] });
  await using s1 = await Manager.fromExchangeFactory(siteFactory);
  for (const deadline = Date.now() + 15_000; ; ) {
    try {
      await cloudFactory.linkSite("s1");
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  const atSite = await s1.launch(BenchEcho);
  const atCloud = await cloud.launch(BenchEcho);
  const paths: Array<[string, Handle<BenchEcho>]> = [
    ["cloud to site", cloud.exchangeClient.getHandle(atSite.agentId)],
    ["inside the site", s1.exchangeClient.getHandle(atSite.agentId)],
    ["inside the cloud", cloud.exchangeClient.getHandle(atCloud.agentId)],
  ];
  const payload = new Uint8Array(64).fill(7);
  const rounds = quick ? 3 : 10;
  const perRound = quick ? 50 : 200;
  const samples = new Map<string, number[]>(paths.map(([name]) => [name, []]));
  for (let i = 0; i < (quick ? 50 : 200); i++) for (const [, handle] of paths) await handle.echo(payload);
  for (let round = 0; round < rounds; round++) {
    for (const [name, handle] of paths) for (let i = 0; i < perRound; i++) await time(samples.get(name)!, () => handle.echo(payload));
  }
  const summaries = new Map<string, Summary>([...samples].map(([name, s]) => [name, summarize(s)]));
  const crossing = summaries.get("cloud to site")!;
  const inSite = summaries.get("inside the site")!;
  ctx.log(`edge round trip: cloud to site p50 ${ms(crossing.p50Ms)} ms, inside the site ${ms(inSite.p50Ms)} ms`);

  const toSite = cloud.exchangeClient.getHandle(atSite.agentId);
  const catchUps: Array<{ calls: number; outageMs: number; catchUpMs: number }> = [];
  for (const calls of quick ? [1000] : [1000, 5000]) {
    site.cut();
    await site.waitForLinkDown();
    const outageStart = Date.now();
    const pending = Array.from({ length: calls }, () => toSite.echo(payload));
    // Let the calls reach the outbox (they are stored, not answered).
    await new Promise((resolve) => setTimeout(resolve, quick ? 1000 : 3000));
    const restored = Date.now();
    site.restore();
    await Promise.all(pending);
    const catchUpMs = Date.now() - restored;
    catchUps.push({ calls, outageMs: restored - outageStart, catchUpMs });
    ctx.log(`edge catch-up: ${calls} calls answered ${catchUpMs} ms after the uplink returned`);
  }
  await cloud.shutdown(atCloud, { blocking: true });
  await s1.shutdown(atSite, { blocking: true });

  const first = catchUps[0]!;
  const crossingRatio = crossing.p50Ms / inSite.p50Ms;
  return {
    id: "edge",
    title: "7. Edge sites (ms): action round trip (64 B) over a leaf link vs inside one site, and catch-up after an outage",
    headers: ["measure", "p50 / time", "p99", "samples"],
    rows: [
      ...[...summaries].map(([name, s]) => [`round trip ${name}`, ms(s.p50Ms), ms(s.p99Ms), String(s.samples)]),
      ...catchUps.map((c) => [`catch-up of ${c.calls} calls after a ${(c.outageMs / 1000).toFixed(1)} s outage`, ms(c.catchUpMs), "-", String(c.calls)]),
    ],
    figures: { roundTrip: Object.fromEntries(summaries), crossingRatio, catchUps },
    targets: [
      { name: "catch-up of 1,000 calls queued during an outage", goal: "<= 10 s", measured: `${(first.catchUpMs / 1000).toFixed(1)} s`, met: first.catchUpMs <= 10_000 },
    ],
    notes: [
      `cloud to site / inside the site, p50: ${ratio(crossingRatio)}. A call to another site is stored in the caller's outbox, mirrored by the site, relayed into the agent's mailbox; the answer takes the same three steps back.`,
      "Catch-up counts from the uplink's return: the leaf reconnects (about 1-2 s: its reconnect interval), the mirrors resume, the relays store the calls one at a time, the agent answers, the answers cross back.",
      "Both servers run on this machine, so the link adds no network latency: on a real uplink add its round trip to each crossing.",
    ],
  };
}

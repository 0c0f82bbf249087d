/**
 * Host kill: two runtime hosts (`academy host` in child processes) serve a pool; 4 agents are
 * launched on the first, answer 40 quick calls there, then get 3 long calls each (4 s; `--short`:
 * 2 s). While the long actions run, the first host gets `kill -9`. The second host reaps it after
 * its ttl (2 s), starts the agents, and the requests come back to them: each long call must be
 * answered exactly once, by the second host, and no quick call may run again. Fails on a call lost,
 * run twice or answered by the killed host, or a stall over 30 s.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HostPoolExecutor, Manager, NatsExchangeFactory } from "../../../src/index.ts";
import type { Handle } from "../../../src/index.ts";
import { startNatsServer } from "../../../src/testing/index.ts";
import { spawnHost } from "../../support/host-process.ts";
import type { HostProcess } from "../../support/host-process.ts";
import type { LongProbe } from "../host-agents.ts";
import { until } from "../call-load.ts";
import { readLedger, tally } from "../ledger.ts";
import type { ChaosContext, ChaosResult, ChaosScenario } from "../scenario.ts";

const POOL = "hostkill";
const MODULE = fileURLToPath(new URL("../host-agents.ts", import.meta.url));
const AGENTS = 4;
const LONG_PER_AGENT = 3;
const QUICK_CALLS = 40;

async function run(ctx: ChaosContext): Promise<ChaosResult> {
  const longMs = ctx.short ? 2_000 : 4_000;
  const dir = mkdtempSync(join(tmpdir(), "academy-host-kill-"));
  const ledger = join(dir, "ledger");
  process.env["CHAOS_LEDGER"] = ledger;
  await using server = await startNatsServer();
  const prefix = `hk${process.pid}_${Date.now() % 100_000}`;
  const hostOptions = { servers: server.url, pool: POOL, prefix, modules: [MODULE], heartbeatMs: 500, hostTtlMs: 2_000, capacity: 16 };
  const hosts: HostProcess[] = [];
  const factory = new NatsExchangeFactory({ servers: server.url, prefix });
  const manager = await Manager.fromExchangeFactory(factory, { executors: { [POOL]: new HostPoolExecutor({ pool: POOL }) } });
  try {
    const first = await spawnHost({ ...hostOptions, name: "first" });
    hosts.push(first);
    const { LongProbe: probeClass } = (await import("../host-agents.ts")) as { LongProbe: typeof LongProbe };
    const agents: Array<Handle<LongProbe>> = [];
    for (let i = 0; i < AGENTS; i++) agents.push(await manager.launch(probeClass, { executor: POOL }));
    const firstPid = first.child.pid!;
    const second = await spawnHost({ ...hostOptions, name: "second" });
    hosts.push(second);
    const secondPid = second.child.pid!;

    const ids: string[] = [];
    let answered = 0;
    let failed = 0;
    const failures: string[] = [];
    let byKilledHost = 0;
    let lastCompletion = Date.now();
    let maxStallMs = 0;
    let outstanding = 0;
    const call = async (agent: Handle<LongProbe>, ms: number): Promise<void> => {
      const id = randomUUID();
      ids.push(id);
      if (outstanding++ === 0) lastCompletion = Date.now();
      try {
        const answer = await agent.with({ timeoutMs: 90_000 }).long(id, ms);
        if (answer.id !== id) throw new Error(`wrong answer ${answer.id} for ${id}`);
        if (ms > 0 && answer.pid === firstPid) byKilledHost++;
        answered++;
      } catch (error) {
        failed++;
        failures.push(`${(error as Error).name}: ${(error as Error).message}`);
      } finally {
        outstanding--;
        maxStallMs = Math.max(maxStallMs, Date.now() - lastCompletion);
        lastCompletion = Date.now();
      }
    };
    const stallTimer = setInterval(() => {
      if (outstanding > 0) maxStallMs = Math.max(maxStallMs, Date.now() - lastCompletion);
    }, 50);

    // Quick calls, all answered on the first host (the agents run there).
    await Promise.all(Array.from({ length: QUICK_CALLS }, (_, i) => call(agents[i % AGENTS]!, 0)));
    // Long calls; kill the first host once every agent has started one.
    const long = Promise.all(agents.flatMap((agent) => Array.from({ length: LONG_PER_AGENT }, () => call(agent, longMs))));
    let firstStartSeenAt: number | undefined;
    await until(
      () => {
        const startedBy = new Set(first.lines.filter((l) => l.startsWith("LONG-START ")).map((l) => l.split(" ")[1]));
        if (startedBy.size > 0) firstStartSeenAt ??= Date.now();
        return startedBy.size >= AGENTS;
      },
      30_000,
      "the long actions to start",
    );
    const started = first.lines.filter((l) => l.startsWith("LONG-START ")).length;
    // Kill in the middle of the earliest long action, half of it after it was seen to start (at once
    // if that is past): timed from the last agent's start instead, an action that began over half
    // its length before the last one (a loaded machine spreads them) would end on the first host
    // before the kill, answered there, and fail the run.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, firstStartSeenAt! + longMs / 2 - Date.now())));
    const killedAt = Date.now();
    await first.kill();
    ctx.log(`killed the first host (pid ${firstPid}) with ${started} long actions started on it`);
    await long;
    const failoverMs = Date.now() - killedAt;
    clearInterval(stallTimer);
    const onSecond = second.lines.filter((l) => l.startsWith("LONG-START ")).length;
    ctx.log(`${answered} answered, ${failed} failed; ${onSecond} long actions started on the second host; ${failoverMs} ms after the kill`);

    for (const agent of agents) await manager.shutdown(agent, { blocking: true });
    await manager.close();
    const { executedTwice, neverExecuted } = tally(readLedger(ledger), ids);
    if (failed > 0) ctx.log(`failures: ${failures.slice(0, 5).join("; ")}`);
    if (byKilledHost > 0) throw new Error(`${byKilledHost} long calls answered by the killed host`);
    return {
      calls: ids.length,
      answered,
      failed,
      executedTwice,
      neverExecuted,
      maxStallMs,
      details: { agents: AGENTS, quickCalls: QUICK_CALLS, longCalls: AGENTS * LONG_PER_AGENT, longMs, startedOnKilledHost: started, startedOnSecondHost: onSecond, answeredAfterKillMs: failoverMs, secondHostPid: secondPid },
    };
  } finally {
    await manager.close().catch(() => undefined);
    for (const host of hosts) await host.kill().catch(() => undefined);
    await factory.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

const scenario: ChaosScenario = {
  id: "host-kill",
  title: "kill -9 of a runtime host in the middle of long actions: redelivered and answered once by another host",
  maxStallMs: 30_000,
  run,
};
export default scenario;

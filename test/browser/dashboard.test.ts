/**
 * Issue 15, the dashboard, in a real headless browser: `academy dashboard` (a child process) over
 * two `academy host` processes; Chromium (the system's, driven by playwright-core) opens the page
 * once and it must follow, without a reload: an agent launched shows its row within 2 s, a host
 * killed leaves the hosts table, a dead letter is listed, actions per second move. User data is
 * shown as text, never as markup. Skipped, saying why, only where no Chromium can be found.
 *
 * With ACADEMY_DASHBOARD_SCREENSHOT=<path.png>, a second test runs a small deployment (three
 * hosts on two pools, agents of several types, one that fails, load, two dead letters) and saves
 * a screenshot of the page there: how docs/dashboard.png was made.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { chromium } from "playwright-core";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { HostPoolExecutor, Manager, NatsExchangeFactory, natsLayout } from "../../src/index.ts";
import { findFreePorts } from "../../src/testing/index.ts";
import { Clock, Counter, Echo } from "../../examples/agents.ts";
import { AlwaysFailing } from "../fixtures/host-agents.ts";
import { Back, Busy, Front } from "../fixtures/observed-agents.ts";
import { spawnScript } from "../support/child-agent.ts";
import type { ChildAgent } from "../support/child-agent.ts";
import { CHROMIUM_INSTALL_HINT, chromiumLaunchOptions, findChromium } from "../support/chromium.ts";
import { CLI, HOST_AGENTS, spawnHost } from "../support/host-process.ts";
import type { HostProcess } from "../support/host-process.ts";
import { startTestNats } from "../support/nats.ts";
import type { TestNats } from "../support/nats.ts";

const OBSERVED_AGENTS = fileURLToPath(new URL("../fixtures/observed-agents.ts", import.meta.url));
const EXAMPLE_AGENTS = fileURLToPath(new URL("../../examples/agents.ts", import.meta.url));
const chromiumPath = findChromium();
if (chromiumPath === undefined) console.warn(`dashboard browser test skipped: ${CHROMIUM_INSTALL_HINT}`);

/** How long each step took to show on the page, in ms (printed at the end, for the docs). */
const timings: Record<string, number> = {};

/** Wait until `selector` is on the page (or, `detached`, gone from it). */
async function shows(page: Page, selector: string, timeoutMs: number, state: "attached" | "detached" = "attached"): Promise<void> {
  await page.waitForSelector(selector, { state, timeout: timeoutMs });
}

describe.skipIf(chromiumPath === undefined)(`academy dashboard in ${chromiumPath ?? "a browser (none found)"}`, () => {
  let nats: TestNats;
  let browser: Browser;
  const prefix = `dash${process.pid}`;
  const timing = { heartbeatMs: 300, hostTtlMs: 1_500 };
  const children: ChildAgent[] = [];
  let profile: string;

  beforeAll(async () => {
    nats = await startTestNats();
    profile = mkdtempSync(join(tmpdir(), "academy-browser-"));
    browser = await chromium.launch({ ...chromiumLaunchOptions(chromiumPath!), env: { ...process.env, HOME: profile } });
  });
  afterAll(async () => {
    await browser?.close();
    for (const child of children) await child.kill();
    await nats?.[Symbol.asyncDispose]();
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
    if (Object.keys(timings).length > 0) console.log(`dashboard timings (ms): ${JSON.stringify(timings)}`);
  });

  test("the page follows the deployment without a reload: agents launched, hosts killed, dead letters, actions per second; user data stays text", async () => {
    const hostA: HostProcess = await spawnHost({ servers: nats.url, prefix, pool: "web", modules: [OBSERVED_AGENTS], name: "host-a", ...timing });
    children.push(hostA);
    const hostB: HostProcess = await spawnHost({ servers: nats.url, prefix, pool: "web", modules: [OBSERVED_AGENTS], name: "host-b", ...timing });
    children.push(hostB);
    const [port] = await findFreePorts(1);
    const dashboard = spawnScript(CLI, ["dashboard", "--servers", nats.url, "--prefix", prefix, "--port", String(port)]);
    children.push(dashboard);
    const url = /(http:\/\/\S+)/.exec(await dashboard.waitFor(/^academy dashboard: http/, 30_000))![1]!;

    const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    const scriptErrors: string[] = [];
    page.on("pageerror", (error) => scriptErrors.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error") scriptErrors.push(message.text());
    });
    await page.goto(url);
    // Marks this page load: a reload would lose it.
    await page.evaluate("window.loadMark = 42");
    await page.waitForSelector('[data-testid="live"]:text("live")', { timeout: 5_000 });
    await page.waitForSelector(`tr[data-host-id="${hostA.hostId}"]`, { timeout: 5_000 });
    await page.waitForSelector(`tr[data-host-id="${hostB.hostId}"]`, { timeout: 5_000 });

    // Launch an agent: its row within 2 s.
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: nats.url, prefix }), {
      executors: { web: new HostPoolExecutor({ pool: "web" }) },
    });
    const launchedAt = performance.now();
    const busy = await manager.launch(Busy, { executor: "web", name: "busy-1" });
    await page.waitForSelector(`tr[data-agent-id="${busy.agentId.uid}"]`, { timeout: 2_000 });
    timings.agentRow = Math.round(performance.now() - launchedAt);
    expect(timings.agentRow).toBeLessThan(2_000);
    const row = page.locator(`tr[data-agent-id="${busy.agentId.uid}"]`);
    await expect.poll(() => row.innerText(), { timeout: 5_000 }).toMatch(/busy-1\s+Busy\s+active, running\s+web/);

    // A name that is markup is shown as text.
    const hostile = '<img src=x onerror="document.body.dataset.pwned=1">';
    const named = await manager.launch(Busy, { executor: "web", name: hostile });
    await page.waitForSelector(`tr[data-agent-id="${named.agentId.uid}"]`, { timeout: 2_000 });
    expect(await page.locator(`tr[data-agent-id="${named.agentId.uid}"] td`).nth(1).innerText()).toBe(hostile);
    expect(await page.locator("section#agents img").count()).toBe(0);

    // Load: actions per second move above zero.
    let calling = true;
    const load = (async () => {
      while (calling) await busy.ok();
    })();
    const rateStarted = performance.now();
    await expect
      .poll(async () => Number(await page.locator('[data-testid="actions-per-second"]').innerText()), { timeout: 10_000, interval: 200 })
      .toBeGreaterThan(0);
    timings.actionsPerSecond = Math.round(performance.now() - rateStarted);

    // A dead letter: bytes that are not a message, on the agent's mailbox.
    const nc = await connect({ servers: nats.url });
    try {
      const letterAt = performance.now();
      await jetstream(nc).publish(natsLayout(prefix).mailboxSubject(busy.agentId.uid), new TextEncoder().encode("not a message"));
      await page.waitForSelector('table[data-testid="letters"] tr[data-letter-id]', { timeout: 5_000 });
      timings.deadLetter = Math.round(performance.now() - letterAt);
      const letter = await page.locator('table[data-testid="letters"] tbody tr').first().innerText();
      expect(letter).toContain("MALFORMED_MESSAGE");
      expect(letter).toContain(busy.agentId.uid);
      await expect.poll(() => page.locator('[data-testid="dead-letter-count"]').innerText(), { timeout: 5_000 }).toBe("1");
    } finally {
      await nc.close();
    }

    // Kill the host that runs the agent: its row goes once the other host reaps it.
    const victim = (await row.innerText()).includes(hostA.hostId) ? hostA : hostB;
    const survivor = victim === hostA ? hostB : hostA;
    const killedAt = performance.now();
    await victim.kill();
    await shows(page, `tr[data-host-id="${victim.hostId}"]`, 15_000, "detached");
    timings.hostGone = Math.round(performance.now() - killedAt);
    expect(await page.locator(`tr[data-host-id="${survivor.hostId}"]`).count()).toBe(1);
    // Its agents come back on the other host, and the page says so.
    await expect
      .poll(() => page.locator(`tr[data-agent-id="${busy.agentId.uid}"]`).innerText(), { timeout: 15_000 })
      .toContain(survivor.hostId);

    calling = false;
    await load;
    // Never reloaded, no script errors, nothing injected.
    expect(await page.evaluate("window.loadMark")).toBe(42);
    expect(await page.evaluate("document.body.dataset.pwned")).toBeUndefined();
    expect(scriptErrors).toEqual([]);
    await page.close();
  });

  const screenshot = process.env.ACADEMY_DASHBOARD_SCREENSHOT;
  test.runIf(screenshot !== undefined && screenshot !== "")("a screenshot of a small deployment, for the docs", async () => {
    const docsPrefix = `shot${process.pid}`;
    const modules = [OBSERVED_AGENTS, EXAMPLE_AGENTS, HOST_AGENTS];
    const hosts = [
      await spawnHost({ servers: nats.url, prefix: docsPrefix, pool: "web", modules, name: "web-1" }),
      await spawnHost({ servers: nats.url, prefix: docsPrefix, pool: "web", modules, name: "web-2" }),
      await spawnHost({ servers: nats.url, prefix: docsPrefix, pool: "batch", modules, name: "batch-1", capacity: 20 }),
    ];
    children.push(...hosts);
    const [port] = await findFreePorts(1);
    const dashboard = spawnScript(CLI, ["dashboard", "--servers", nats.url, "--prefix", docsPrefix, "--port", String(port)]);
    children.push(dashboard);
    const url = /(http:\/\/\S+)/.exec(await dashboard.waitFor(/^academy dashboard: http/, 30_000))![1]!;
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: nats.url, prefix: docsPrefix }), {
      executors: { web: new HostPoolExecutor({ pool: "web" }), batch: new HostPoolExecutor({ pool: "batch" }) },
    });
    const counters = await Promise.all([1, 2, 3].map((i) => manager.launch(Counter, { executor: "web", name: `counter-${i}`, args: [0] })));
    const back = await manager.launch(Back, { executor: "batch", name: "pricing" });
    const front = await manager.launch(Front, { executor: "web", name: "checkout", args: [back] });
    const echo = await manager.launch(Echo, { executor: "web", name: "echo" });
    const clock = await manager.launch(Clock, { executor: "batch", name: "clock" });
    const busy = await manager.launch(Busy, { executor: "batch", name: "reports", config: { maxConcurrentActions: 1 } });
    const importer = await manager.launch(AlwaysFailing, { executor: "batch", name: "importer" });
    let calling = true;
    const load = Promise.all([
      ...counters.map(async (c) => {
        while (calling) await c.increment(1);
      }),
      (async () => {
        while (calling) await front.relay(1);
      })(),
    ]);
    const slow = Array.from({ length: 6 }, () => busy.slow(12_000));
    const nc = await connect({ servers: nats.url });
    await jetstream(nc).publish(natsLayout(docsPrefix).mailboxSubject(counters[0]!.agentId.uid), new TextEncoder().encode("not a message"));
    await nc.close();
    // A launch of a type no host has: rejected, dead-lettered.
    const launcher = new NatsExchangeFactory({ servers: nats.url, prefix: docsPrefix });
    await (await launcher.poolBackend()).publishLaunch({
      v: 1, uid: "5e0d3c1a-7a53-4c5e-9a0e-3f0c2b9d1e77", type: "Mystery", chain: ["Mystery", "Agent"], pool: "web", gen: 0, attempt: 0,
      args: new Uint8Array([0x80]), config: {}, maxRetries: 0, retryBackoffMs: 100, launchedAt: Date.now(),
    });
    await launcher.close();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    await page.goto(url);
    await page.waitForSelector('table[data-testid="letters"] tr[data-letter-id]', { timeout: 10_000 });
    await sleep(8_000); // history for the sparkline, depths of the slow mailbox
    await page.screenshot({ path: screenshot!, fullPage: true });
    calling = false;
    await load;
    await page.close();
    // The deployment goes with the hosts (killed after the tests): the manager leaves its agents.
    for (const agent of [...counters, back, front, echo, clock, busy, importer]) manager.detach(agent);
    void Promise.allSettled(slow);
  });
});

/**
 * Issue 15, metrics: `academy host --health-port` serves Prometheus metrics at /metrics, and the
 * values move with what the host does: launches and claims, actions handled and failed with their
 * durations, event handler runs, agents running, mailbox depth, dead letters, failovers, heartbeat
 * age. And a program embedding hosts mounts their registry itself.
 */
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Registry } from "prom-client";
import { describe, expect, test } from "vitest";
import { HostPoolExecutor, Manager, NatsExchangeFactory } from "../../../src/index.ts";
import { RuntimeHost } from "../../../runtime/index.ts";
import { NatsPoolBackend } from "../../../src/exchange/nats/nats-pool-backend.ts";
import { POOL_RECORD_VERSION } from "../../../src/pool/records.ts";
import { encodeValue } from "../../../src/protocol/codec.ts";
import { findFreePorts } from "../../../src/testing/index.ts";
import { Busy } from "../../fixtures/observed-agents.ts";
import { spawnHost } from "../../support/host-process.ts";
import { natsForFile } from "../../support/nats.ts";
import { httpGet, parseMetrics, sampleValue, scrape } from "../../support/prometheus.ts";

const shared = natsForFile();

const OBSERVED_AGENTS = fileURLToPath(new URL("../../fixtures/observed-agents.ts", import.meta.url));



describe("host metrics", () => {
  test("academy host serves /metrics on its health port, and the values move with what the host does", async () => {
    const prefix = `metrics${process.pid}`;
    const [port] = await findFreePorts(1);
    const timing = { heartbeatMs: 300, hostTtlMs: 1_500 };
    const host = await spawnHost({ servers: shared.nats.url, prefix, pool: "m", modules: [OBSERVED_AGENTS], ...timing, extra: ["--health-port", String(port)] });
    const factory = new NatsExchangeFactory({ servers: shared.nats.url, prefix });
    try {
      // At start: nothing counted yet; the host's gauges and the process's metrics are there.
      const response = await httpGet(port!, "/metrics");
      expect(response.status).toBe(200);
      expect(response.contentType).toContain("text/plain");
      let samples = parseMetrics(response.body);
      expect(sampleValue(samples, "academy_agents_running")).toBe(0);
      expect(sampleValue(samples, "academy_host_capacity")).toBe(100);
      expect(sampleValue(samples, "academy_host_info", { host_id: host.hostId, pool: "m" })).toBe(1);
      expect(sampleValue(samples, "academy_host_heartbeat_age_seconds")).toBeLessThan(2);
      expect(sampleValue(samples, "academy_actions_handled_total")).toBeUndefined();
      expect(sampleValue(samples, "process_resident_memory_bytes")).toBeGreaterThan(0);

      await using manager = await Manager.fromExchangeFactory(factory, { executors: { m: new HostPoolExecutor({ pool: "m" }) } });
      const busy = await manager.launch(Busy, { executor: "m", config: { maxConcurrentActions: 1 } });
      for (let i = 0; i < 3; i++) expect(await busy.ok()).toBe("ok");
      for (let i = 0; i < 2; i++) await expect(busy.fail()).rejects.toThrow("failing on purpose");
      expect(await busy.slow(60)).toBe(60);
      await busy.poke();

      samples = await scrape(port!);
      const busyLabels = { agent_type: "Busy" };
      expect(sampleValue(samples, "academy_launches_total", { ...busyLabels, outcome: "claimed" })).toBe(1);
      expect(sampleValue(samples, "academy_claims_total", { ...busyLabels, result: "won" })).toBe(1);
      expect(sampleValue(samples, "academy_agents_running")).toBe(1);
      expect(sampleValue(samples, "academy_actions_handled_total", { ...busyLabels, action: "ok" })).toBe(3);
      expect(sampleValue(samples, "academy_actions_handled_total", { ...busyLabels, action: "fail" })).toBe(2);
      expect(sampleValue(samples, "academy_actions_failed_total", { ...busyLabels, action: "fail", error: "RangeError" })).toBe(2);
      expect(sampleValue(samples, "academy_actions_failed_total", { ...busyLabels, action: "ok" })).toBeUndefined();
      expect(sampleValue(samples, "academy_action_duration_seconds_count", { ...busyLabels, action: "slow", outcome: "ok" })).toBe(1);
      // 60 ms: not in the 0.05 s bucket; in the 0.1 s one unless a loaded machine stretched it past
      // 100 ms. Each bucket holds it exactly when its bound is at or above the duration recorded.
      const slow = { ...busyLabels, action: "slow", outcome: "ok" };
      const took = sampleValue(samples, "academy_action_duration_seconds_sum", slow)!;
      expect(took).toBeGreaterThan(0.05);
      for (const le of ["0.05", "0.1", "0.25", "0.5", "1"]) {
        expect(sampleValue(samples, "academy_action_duration_seconds_bucket", { ...slow, le }), `le ${le}, ${took} s recorded`).toBe(took <= Number(le) ? 1 : 0);
      }
      expect(sampleValue(samples, "academy_action_duration_seconds_count", { ...busyLabels, action: "fail", outcome: "error" })).toBe(2);
      await expect.poll(async () => sampleValue(await scrape(port!), "academy_events_handled_total", { ...busyLabels, event: "poked", outcome: "ok" }), { timeout: 15_000, interval: 250 }).toBe(1);

      // A mailbox backing up: one slow action runs (one at a time), four wait behind it.
      const calls = [busy.slow(5_000), ...Array.from({ length: 4 }, () => busy.ok())];
      const agentLabels = { agent_id: busy.agentId.uid, agent_type: "Busy" };
      await expect
        .poll(async () => sampleValue(await scrape(port!), "academy_mailbox_pending", agentLabels), { timeout: 15_000, interval: 250 })
        .toBeGreaterThanOrEqual(4);
      expect(sampleValue(await scrape(port!), "academy_mailbox_redelivered", agentLabels)).toBe(0);
      await Promise.all(calls);
      await expect.poll(async () => sampleValue(await scrape(port!), "academy_mailbox_pending", agentLabels), { timeout: 15_000, interval: 250 }).toBe(0);

      // A launch no host can run: rejected, dead-lettered.
      const backend = await NatsPoolBackend.for(await factory.context());
      await backend.publishLaunch({
        v: POOL_RECORD_VERSION, uid: randomUUID(), type: "Mystery", chain: ["Mystery", "Agent"], pool: "m", gen: 0, attempt: 0,
        args: encodeValue([]), config: {}, maxRetries: 0, retryBackoffMs: 100, launchedAt: Date.now(),
      });
      await expect
        .poll(async () => sampleValue(await scrape(port!), "academy_launches_total", { agent_type: "Mystery", outcome: "rejected" }), { timeout: 10_000 })
        .toBe(1);
      await expect.poll(async () => sampleValue(await scrape(port!), "academy_dead_letters"), { timeout: 15_000, interval: 250 }).toBe(1);

      // A host of the pool dies: this one reaps it.
      const doomed = await spawnHost({ servers: shared.nats.url, prefix, pool: "m", modules: [OBSERVED_AGENTS], ...timing, name: "doomed" });
      await doomed.kill();
      await expect.poll(async () => sampleValue(await scrape(port!), "academy_failovers_total"), { timeout: 15_000, interval: 250 }).toBe(1);
      samples = await scrape(port!);
      expect(sampleValue(samples, "academy_host_heartbeat_age_seconds")).toBeLessThan(1.5);
      expect(sampleValue(samples, "academy_actions_handled_total", { ...busyLabels, action: "ok" })).toBe(7);
    } finally {
      host.signal("SIGTERM");
      expect(await host.exited).toBe(0);
      await factory.close();
    }
  });

  test("hosts embedded in a program put their metrics on the registry it gives them, to serve where it likes", async () => {
    const prefix = `metrics_emb${process.pid}`;
    const registry = new Registry();
    const exchange = { servers: shared.nats.url, prefix };
    await using first = await RuntimeHost.start({ pool: "e", classes: [Busy], exchange, capacity: 3, metrics: registry });
    await using second = await RuntimeHost.start({ pool: "e", classes: [Busy], exchange, capacity: 4, metrics: registry });
    expect(first.metrics).toBe(registry);
    expect(second.metrics).toBe(registry);
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(exchange), { executors: { e: new HostPoolExecutor({ pool: "e" }) } });
    const busy = await manager.launch(Busy, { executor: "e" });
    expect(await busy.ok()).toBe("ok");
    const samples = parseMetrics(await registry.metrics());
    expect(sampleValue(samples, "academy_host_capacity")).toBe(7);
    expect(sampleValue(samples, "academy_agents_running")).toBe(1);
    expect(sampleValue(samples, "academy_actions_handled_total", { agent_type: "Busy", action: "ok" })).toBe(1);
    expect(samples.filter((s) => s.name === "academy_host_info").map((s) => s.labels.host_id).sort()).toEqual([first.hostId, second.hostId].sort());
    // Only the host's metrics: no process metrics unless the program adds them.
    expect(sampleValue(samples, "process_resident_memory_bytes")).toBeUndefined();
  });
});

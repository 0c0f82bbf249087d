/**
 * `academy state <agent>` and `academy reminders <agent>` against a real nats-server: the state
 * record and reminders of a running agent, in JSON and as text; exit code 3 for an unknown agent
 * or an agent without state; neither creates a bucket.
 */
import { describe, expect, test } from "vitest";
import { Manager, NatsExchangeFactory } from "../../../src/index.ts";
import { Reminded, StatefulCounter } from "../../fixtures/state-agents.ts";
import { Counter } from "../../fixtures/agents.ts";
import { runCli } from "../../support/host-process.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();


describe("academy state and reminders", () => {
  test("show an agent's state and list its reminders; exit code 3 when there is none", async () => {
    const prefix = `scli${process.pid}`;
    const connection = ["--servers", shared.nats.url, "--prefix", prefix];
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix }));
    const counter = await manager.launch(StatefulCounter, { name: "stateful" });
    await counter.increment(41);
    await counter.increment(1);
    const reminded = await manager.launch(Reminded);
    const dueAt = Date.now() + 3_600_000;
    await reminded.remind("hourly", { action: "onReminder", everyMs: 3_600_000, firstAt: dueAt, payload: "p" });
    await reminded.remind("once", { action: "onReminder", at: dueAt });
    const plain = await manager.launch(Counter);
    await plain.increment(1);

    const shown = runCli(["state", "stateful", ...connection, "--json"]);
    expect(shown.status, shown.stderr).toBe(0);
    const state = JSON.parse(shown.stdout) as { agentId: string; revision: number; value: unknown; applied: Array<{ responseRecorded: boolean }> };
    expect(state.agentId).toBe(counter.agentId.uid);
    expect(state.value).toEqual({ count: 42 });
    expect(state.applied).toHaveLength(2);
    expect(state.applied.every((a) => a.responseRecorded)).toBe(true);
    const text = runCli(["state", counter.agentId.uid, ...connection]);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(`${counter.agentId.uid}: revision ${state.revision}`);
    expect(text.stdout).toContain('"count": 42');

    const listed = runCli(["reminders", reminded.agentId.uid, ...connection, "--json"]);
    expect(listed.status, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ name: string; everyMs?: number; dueAt: string; payload: unknown }>).map((r) => [r.name, r.everyMs, r.dueAt, r.payload])).toEqual([
      ["hourly", 3_600_000, new Date(dueAt).toISOString(), "p"],
      ["once", undefined, new Date(dueAt).toISOString(), undefined],
    ]);
    const table = runCli(["reminders", reminded.agentId.uid, ...connection]);
    expect(table.stdout.split("\n")[0]).toMatch(/^NAME\s+ACTION\s+NEXT DUE\s+EVERY\s+MISFIRE/);
    expect(table.stdout).toContain("3600000 ms");
    expect(runCli(["reminders", counter.agentId.uid, ...connection]).stdout.trim()).toBe("no reminders");

    expect(runCli(["state", plain.agentId.uid, ...connection]).status).toBe(3);
    expect(runCli(["state", "no-such-agent", ...connection]).status).toBe(3);
    // A prefix where nothing ever ran: not found, and nothing created.
    expect(runCli(["state", "x", "--servers", shared.nats.url, "--prefix", `${prefix}_none`]).status).toBe(3);
  });
});

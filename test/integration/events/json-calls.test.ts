/**
 * The JSON entry point (docs/PROTOCOL.md, *JSON entry point*) called by a plain nats.js client:
 * results, the typed JSON errors (unknown action, bad body, terminated or unknown agent, an
 * action's own error), keyed agents by key, and the `$SRV` micro protocol.
 */
import type { Msg } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { Manager, NatsExchangeFactory, agentTypeInfo, keyedAgentId } from "../../../src/index.ts";
import type { JsonCallService } from "../../../src/index.ts";
import { NatsPoolBackend } from "../../../src/exchange/nats/nats-pool-backend.ts";
import { Counter, Troublemaker } from "../../fixtures/agents.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

let factory: NatsExchangeFactory;
let manager: Manager;
let service: JsonCallService;
const prefix = `json${process.pid}`;

beforeAll(async () => {
  factory = new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix });
  manager = await Manager.fromExchangeFactory(factory);
  service = await factory.serveJsonCalls({ types: ["Counter", "Troublemaker"], version: "1.2.3" });
});
afterAll(async () => {
  await service?.stop();
  await manager?.close().catch(() => undefined);
});

const encoder = new TextEncoder();

async function call(type: string, agent: string, body: unknown): Promise<{ json: Record<string, any>; msg: Msg }> {
  const data = typeof body === "string" ? encoder.encode(body) : encoder.encode(JSON.stringify(body));
  const msg = await shared.nc.request(`${prefix}.json.${type}.${agent}`, data, { timeout: 10_000 });
  return { json: msg.json<Record<string, any>>(), msg };
}

describe("JSON calls from a plain NATS client", () => {
  test("a JSON body calls the action through the mailbox and gets its result", async () => {
    const counter = await manager.launch(Counter);
    expect((await call("Counter", counter.agentId.uid, { action: "increment", args: [3] })).json).toEqual({ result: 3 });
    expect((await call("Counter", counter.agentId.uid, { action: "increment" })).json).toEqual({ result: 4 });
    expect(await counter.get()).toBe(4);
    const echoed = await call("Troublemaker", (await manager.launch(Troublemaker)).agentId.uid, { action: "echo", args: [{ a: [1, "two", null] }] });
    expect(echoed.json).toEqual({ result: { a: [1, "two", null] } });
  });

  test("typed JSON errors: unknown action, bad body, unknown agent, terminated agent, the action's own error", async () => {
    const counter = await manager.launch(Counter);
    const uid = counter.agentId.uid;
    const unknown = await call("Counter", uid, { action: "explode" });
    expect(unknown.json.error).toMatchObject({ type: "UnknownActionError", code: "UNKNOWN_ACTION", data: { action: "explode" } });
    expect(unknown.msg.headers?.get("Nats-Service-Error-Code")).toBe("404");

    for (const body of ["{not json", "[1,2]", JSON.stringify({ args: [1] }), JSON.stringify({ action: "increment", args: 5 }), JSON.stringify({ action: "increment", timeoutMs: -1 })]) {
      const bad = await call("Counter", uid, body);
      expect(bad.json.error, body).toMatchObject({ type: "MalformedMessageError", code: "MALFORMED_MESSAGE" });
      expect(bad.msg.headers?.get("Nats-Service-Error-Code")).toBe("400");
    }
    const notUtf8 = await shared.nc.request(`${prefix}.json.Counter.${uid}`, new Uint8Array([0xff, 0xfe]), { timeout: 10_000 });
    expect(notUtf8.json<Record<string, any>>().error.type).toBe("MalformedMessageError");

    const missing = await call("Counter", "no-such-agent", { action: "get" });
    expect(missing.json.error).toMatchObject({ type: "BadEntityIdError", code: "BAD_ENTITY_ID" });
    expect(missing.msg.headers?.get("Nats-Service-Error-Code")).toBe("404");

    const trouble = await manager.launch(Troublemaker);
    const own = await call("Troublemaker", trouble.agentId.uid, { action: "fail", args: ["no way"] });
    expect(own.json.error).toMatchObject({ type: "ValidationError", message: "no way" });
    expect(own.msg.headers?.get("Nats-Service-Error-Code")).toBe("500");

    await manager.shutdown(counter);
    const terminated = await call("Counter", uid, { action: "get" });
    expect(terminated.json.error).toMatchObject({ type: "AgentTerminatedError", code: "MAILBOX_TERMINATED" });
    expect(terminated.msg.headers?.get("Nats-Service-Error-Code")).toBe("410");
    // The agent keeps serving other calls meanwhile; the service too.
    const other = await manager.launch(Counter);
    expect((await call("Counter", other.agentId.uid, { action: "increment", args: [1] })).json).toEqual({ result: 1 });
  });

  test("a keyed agent is called by its key", async () => {
    const agentId = keyedAgentId("Counter", "acct-42");
    const backend = await NatsPoolBackend.for(await factory.context());
    await backend.registerAgentAs(agentId, agentTypeInfo(Counter));
    await manager.launch(Counter, { registration: { agentId, agentType: agentTypeInfo(Counter) } });
    expect((await call("Counter", "acct-42", { action: "increment", args: [5] })).json).toEqual({ result: 5 });
    expect((await call("Counter", agentId.uid, { action: "get" })).json).toEqual({ result: 5 });
  });

  test("$SRV.PING, INFO and STATS list one micro service per agent type", async () => {
    const pings: Array<Record<string, any>> = [];
    const sub = shared.nc.subscribe(`_INBOX.ping.${prefix}`, { callback: (_e, m) => void pings.push(m.json()) });
    shared.nc.publish("$SRV.PING", new Uint8Array(), { reply: `_INBOX.ping.${prefix}` });
    await shared.nc.flush();
    const ours = () => pings.filter((p) => String(p.name).startsWith(`${prefix}-`));
    // Wait for our two services' answers (a fixed 300 ms could end before a loaded machine sent
    // them), then a little longer for any answer too many.
    await vi.waitFor(() => expect(ours().length).toBeGreaterThanOrEqual(2), { timeout: 10_000, interval: 20 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    sub.unsubscribe();
    const mine = ours();
    expect(mine.map((p) => p.name).sort()).toEqual([`${prefix}-Counter`, `${prefix}-Troublemaker`]);
    expect(mine.every((p) => p.type === "io.nats.micro.v1.ping_response" && p.version === "1.2.3" && typeof p.id === "string")).toBe(true);

    const info = (await shared.nc.request(`$SRV.INFO.${prefix}-Counter`, new Uint8Array(), { timeout: 5_000 })).json<Record<string, any>>();
    expect(info.type).toBe("io.nats.micro.v1.info_response");
    expect(info.endpoints).toEqual([{ name: "call", subject: `${prefix}.json.Counter.*`, queue_group: "q", metadata: null }]);

    const id = service.services.find((s) => s.agentType === "Counter")!.id;
    const stats = (await shared.nc.request(`$SRV.STATS.${prefix}-Counter.${id}`, new Uint8Array(), { timeout: 5_000 })).json<Record<string, any>>();
    expect(stats.type).toBe("io.nats.micro.v1.stats_response");
    expect(stats.endpoints[0].num_requests).toBeGreaterThanOrEqual(5);
    expect(stats.endpoints[0].num_errors).toBeGreaterThanOrEqual(1);
    expect(stats.endpoints[0].average_processing_time).toBeGreaterThan(0);
    expect(Number.isNaN(Date.parse(stats.started))).toBe(false);
  });
});

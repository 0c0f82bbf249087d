/**
 * Issue 15, tracing: a user's call to agent A, which calls agent B on another host, is one trace
 * with the right parents: the user's `send relay`, A's `handle relay` (on host A), A's `send work`,
 * B's `handle work` (on host B); the launches are traces too (`launch <type>` by the manager,
 * `claim <type>` by the host that started the agent). Spans are read from the OpenTelemetry SDK's
 * in-memory exporter; both hosts run in this process, each on its own NATS connection.
 */
import { SpanKind } from "@opentelemetry/api";
import { afterAll, beforeAll, expect, test } from "vitest";
import { HostPoolExecutor, Manager, NatsExchangeFactory } from "../../../src/index.ts";
import { RuntimeHost } from "../../../runtime/index.ts";
import { Back, Front } from "../../fixtures/observed-agents.ts";
import { natsForFile } from "../../support/nats.ts";
import { installTestTracing, parentOf } from "../../support/otel.ts";
import type { TestTracing } from "../../support/otel.ts";

const shared = natsForFile();

let tracing: TestTracing;

beforeAll(async () => {
  // As NodeSDK sets up an application: a tracer provider, the W3C propagator, a context manager.
  tracing = installTestTracing({ contextManager: true });
});
afterAll(async () => {
  await tracing?.uninstall();
});

test("a user call to agent A that calls agent B on another host is one trace with the right parent and child spans", async () => {
  const prefix = `trace${process.pid}`;
  const exchange = { servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix };
  const hostOptions = { exchange, heartbeatMs: 500, hostTtlMs: 2_000 };
  await using hostA = await RuntimeHost.start({ ...hostOptions, pool: "front", name: "host-a", classes: [Front] });
  await using hostB = await RuntimeHost.start({ ...hostOptions, pool: "back", name: "host-b", classes: [Back] });
  const factory = new NatsExchangeFactory(exchange);
  await using manager = await Manager.fromExchangeFactory(factory, {
    executors: { front: new HostPoolExecutor({ pool: "front" }), back: new HostPoolExecutor({ pool: "back" }) },
  });
  const back = await manager.launch(Back, { executor: "back" });
  const front = await manager.launch(Front, { executor: "front", args: [back] });

  expect(await front.relay(20)).toBe(41);
  expect(hostA.agentIds()).toEqual([front.agentId.uid]);
  expect(hostB.agentIds()).toEqual([back.agentId.uid]);

  // The call: four spans, one trace, each the parent of the next.
  const sendRelay = tracing.span("send relay");
  const handleRelay = tracing.span("handle relay");
  const sendWork = tracing.span("send work");
  const handleWork = tracing.span("handle work");
  const traceId = sendRelay.spanContext().traceId;
  expect([handleRelay, sendWork, handleWork].map((s) => s.spanContext().traceId)).toEqual([traceId, traceId, traceId]);
  expect(parentOf(sendRelay)).toBeUndefined();
  expect(parentOf(handleRelay)).toBe(sendRelay.spanContext().spanId);
  expect(parentOf(sendWork)).toBe(handleRelay.spanContext().spanId);
  expect(parentOf(handleWork)).toBe(sendWork.spanContext().spanId);
  expect([sendRelay, handleRelay, sendWork, handleWork].map((s) => s.kind)).toEqual([SpanKind.CLIENT, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.SERVER]);
  for (const span of [sendRelay, handleRelay, sendWork, handleWork]) {
    expect(span.attributes).toMatchObject({ "messaging.system": "nats", "academy.outcome": "ok" });
  }
  expect(handleRelay.attributes).toMatchObject({ "academy.agent.id": front.agentId.uid, "academy.agent.type": "Front", "academy.action": "relay" });
  expect(handleWork.attributes).toMatchObject({ "academy.agent.id": back.agentId.uid, "academy.agent.type": "Back", "academy.action": "work" });
  expect(sendWork.attributes).toMatchObject({ "messaging.destination.name": back.agentId.uid, "academy.agent.id": back.agentId.uid });
  expect(handleWork.attributes["academy.tag"]).toBe(sendWork.attributes["academy.tag"]);
  // Nested in time: B handled the work while A waited for it, within the user's call.
  const ns = (t: [number, number]) => t[0] * 1e9 + t[1];
  expect(ns(handleWork.startTime)).toBeGreaterThanOrEqual(ns(sendWork.startTime));
  expect(ns(handleWork.endTime)).toBeLessThanOrEqual(ns(sendWork.endTime));
  expect(ns(sendRelay.endTime)).toBeGreaterThanOrEqual(ns(handleRelay.endTime));

  // The launches: the manager's `launch <type>` and, as its child, the claim by the host that runs it.
  for (const [type, host, agent] of [["Front", hostA, front], ["Back", hostB, back]] as const) {
    const launch = tracing.span(`launch ${type}`);
    const claim = tracing.span(`claim ${type}`);
    expect(launch.kind).toBe(SpanKind.PRODUCER);
    expect(claim.kind).toBe(SpanKind.CONSUMER);
    expect(claim.spanContext().traceId).toBe(launch.spanContext().traceId);
    expect(parentOf(claim)).toBe(launch.spanContext().spanId);
    expect(claim.attributes).toMatchObject({
      "academy.agent.id": agent.agentId.uid,
      "academy.agent.type": type,
      "academy.host.id": host.hostId,
      "academy.pool": host.pool,
      "academy.launch.gen": 0,
      "academy.outcome": "claimed",
    });
    // The call is a trace of its own, not part of a launch's.
    expect(launch.spanContext().traceId).not.toBe(traceId);
  }
});

/**
 * The NATS exchange against servers that are missing, lacking, misconfigured, or losing a node.
 */
import { connect } from "@nats-io/transport-node";
import { RetentionPolicy, jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, test } from "vitest";
import {
  ExchangeUnavailableError,
  InvalidConfigError,
  Manager,
  NatsExchangeFactory,
  UnsupportedServerError,
  natsLayout,
} from "../../../src/index.ts";
import { findFreePorts } from "../../../src/testing/index.ts";
import { Counter } from "../../fixtures/agents.ts";
import { startTestNats, startTestNatsCluster } from "../../support/nats.ts";
import { pino } from "pino";
import type { Logger } from "pino";

/** A pino logger that keeps every record it writes, parsed. */
function recordingLogger(): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger: Logger = pino({ level: "info" }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, records };
}

describe("NATS exchange configuration and servers", () => {
  test("invalid options are rejected with InvalidConfigError", () => {
    expect(() => new NatsExchangeFactory({ prefix: "has.dot" })).toThrow(InvalidConfigError);
    expect(() => new NatsExchangeFactory({ prefix: "" })).toThrow(InvalidConfigError);
    expect(() => new NatsExchangeFactory({ replicas: 2 })).toThrow(InvalidConfigError);
    expect(() => new NatsExchangeFactory({ ackWaitMs: -5 })).toThrow(InvalidConfigError);
    expect(() => new NatsExchangeFactory({ storage: "tape" as never })).toThrow(InvalidConfigError);
    expect(() => new NatsExchangeFactory({ replies: "fast" as never })).toThrow(InvalidConfigError);
  });

  test("an unreachable server fails with ExchangeUnavailableError", async () => {
    const [port] = await findFreePorts(1);
    const factory = new NatsExchangeFactory({ servers: `nats://127.0.0.1:${port}` });
    await expect(factory.createUserClient()).rejects.toThrow(ExchangeUnavailableError);
    await factory.close();
  });

  test("a server without JetStream fails with UnsupportedServerError saying what is needed", async () => {
    await using server = await startTestNats({ jetstream: false });
    const factory = new NatsExchangeFactory({ servers: server.url, connectionOptions: server.connectionOptions });
    const error = await factory.createUserClient().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsupportedServerError);
    expect((error as Error).message).toMatch(/JetStream/);
    expect((error as UnsupportedServerError).serverVersion).toMatch(/^\d+\.\d+\.\d+/);
    await factory.close();
  });

  test("an existing stream with an incompatible configuration is reported, not clobbered", async () => {
    await using server = await startTestNats();
    const nc = await connect(server.connectionOptions);
    try {
      const layout = natsLayout("clash");
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: layout.mailboxStream, subjects: [layout.mailboxSubjects], retention: RetentionPolicy.Limits });
      const factory = new NatsExchangeFactory({ servers: server.url, connectionOptions: server.connectionOptions, prefix: "clash" });
      const error = await factory.createUserClient().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidConfigError);
      expect((error as Error).message).toContain(layout.mailboxStream);
      expect((await jsm.streams.info(layout.mailboxStream)).config.retention).toBe(RetentionPolicy.Limits);
      await factory.close();
    } finally {
      await nc.close();
    }
  });

  test("a standalone server gets 1 replica by default, and the log says why", async () => {
    await using server = await startTestNats();
    const { logger, records } = recordingLogger();
    const factory = new NatsExchangeFactory({ servers: server.url, connectionOptions: server.connectionOptions, prefix: "single", logger });
    await (await factory.createUserClient()).close();
    const nc = await connect(server.connectionOptions);
    expect((await (await jetstreamManager(nc)).streams.info(natsLayout("single").mailboxStream)).config.num_replicas).toBe(1);
    await nc.close();
    expect(records.find((r) => r["msg"]?.toString().startsWith("replicas of new streams"))).toMatchObject({ replicas: 1, source: "cluster size", clusterServers: 1 });
    await factory.close();
  });

  test("on a 3-node cluster the default is 3 replicas (logged), so killing the mailbox stream's leader does not stop the exchange", { timeout: 120_000 }, async () => {
    await using cluster = await startTestNatsCluster();
    const { logger, records } = recordingLogger();
    const prefix = "defaults";
    const factory = new NatsExchangeFactory({ servers: cluster.urls, prefix, logger });
    await using manager = await Manager.fromExchangeFactory(factory);
    await (await factory.poolBackend()).listHosts();
    const counter = await manager.launch(Counter);
    expect(await counter.increment()).toBe(1);
    expect(records.find((r) => r["msg"]?.toString().startsWith("replicas of new streams"))).toMatchObject({ replicas: 3, source: "cluster size", clusterServers: 3 });
    const layout = natsLayout(prefix);
    const nc = await connect({ servers: cluster.urls });
    const jsm = await jetstreamManager(nc);
    const streams = [layout.mailboxStream, layout.deadLetterStream, `KV_${layout.registryBucket}`, `KV_${layout.typesBucket}`, `KV_${layout.memberListsBucket}`, layout.launchStream, `KV_${layout.hostsBucket}`, `KV_${layout.placementsBucket}`];
    const replicas = Object.fromEntries(await Promise.all(streams.map(async (name) => [name, (await jsm.streams.info(name)).config.num_replicas] as const)));
    expect(replicas).toEqual(Object.fromEntries(streams.map((name) => [name, 3])));
    const leader = (await jsm.streams.info(layout.mailboxStream)).cluster?.leader;
    await nc.close();
    const node = cluster.servers.find((s) => s.serverName === leader)!;
    const killedAt = Date.now();
    await node.kill();
    // With one replica the stream lived on that node alone and nothing moved until it came back.
    expect(await counter.increment()).toBe(2);
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    const client = await factory.createUserClient();
    expect(await client.getHandle(counter.agentId).get()).toBe(2);
    await client.close();
  });

  test("on a 3-node cluster with replicas 3, an agent keeps answering when its mailbox's leader is killed", { timeout: 90_000 }, async () => {
    await using cluster = await startTestNatsCluster();
    const factory = new NatsExchangeFactory({ servers: cluster.urls, replicas: 3, prefix: "cluster" });
    await using manager = await Manager.fromExchangeFactory(factory);
    const counter = await manager.launch(Counter);
    for (let i = 1; i <= 5; i++) expect(await counter.increment()).toBe(i);
    const nc = await connect({ servers: cluster.urls });
    const layout = natsLayout("cluster");
    const info = await (await jetstreamManager(nc)).consumers.info(layout.mailboxStream, layout.mailboxConsumer(counter.agentId.uid));
    await nc.close();
    const leader = cluster.servers.find((s) => s.serverName === info.cluster?.leader);
    expect(leader).toBeDefined();
    const killedAt = Date.now();
    await leader!.kill();
    expect(await counter.increment()).toBe(6);
    // A Raft election (4-9 s on loopback); the push consumer's new leader then delivers on its own.
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    for (let i = 7; i <= 15; i++) expect(await counter.increment()).toBe(i);
    expect(await counter.get()).toBe(15);
  });
});

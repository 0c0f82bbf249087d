import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  NatsServerError,
  NatsServerErrorCode,
  NatsServerState,
  findNatsServerBinary,
  startNatsServer,
  type NatsCluster,
} from "../../../src/testing/index.ts";
import { startTestNats, startTestNatsCluster } from "../../support/nats.ts";

let counter = 0;
/** A stream name unique to this test run. */
function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`;
}

async function withConnection<T>(url: string, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: url, reconnect: false });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

async function readStrings(jsm: JetStreamManager, stream: string, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let seq = 1; seq <= count; seq++) {
    const msg = await jsm.streams.getMessage(stream, { seq });
    out.push(msg === null ? "<missing>" : msg.string());
  }
  return out;
}

/** Errors a JetStream publish may raise while a leader is being elected. */
function isTransient(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    ["JetStreamNotEnabled", "TimeoutError", "NoRespondersError", "RequestError"].includes(error.name) ||
    /503|no responders|timeout|temporarily unavailable/i.test(error.message)
  );
}

/** Publishes with a msgID, retrying transient failures (same msgID) for up to `timeoutMs`. */
async function publishWithRetry(
  nc: NatsConnection,
  subject: string,
  data: string,
  msgID: string,
  timeoutMs = 15_000,
) {
  const js = jetstream(nc, { timeout: 2_000 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await js.publish(subject, data, { msgID });
    } catch (error) {
      if (!isTransient(error) || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe("startNatsServer", () => {
  it("finds the nats-server binary on this machine", () => {
    const binary = findNatsServerBinary();
    expect(binary).toBeDefined();
    expect(binary).toMatch(/nats-server(\.exe)?$/);
  });

  it("starts a JetStream server that a client can use", async () => {
    await using server = await startNatsServer();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.port).not.toBe(4222);
    expect(server.monitorPort).not.toBe(server.port);
    expect(server.isRunning).toBe(true);
    expect(server.state).toBe(NatsServerState.Running);
    expect(server.pid).toBeGreaterThan(0);
    expect(existsSync(server.configPath)).toBe(true);
    expect(await server.readLog()).toContain("Server is ready");

    const stream = uniqueName("basic");
    await withConnection(server.url, async (nc) => {
      expect(nc.info?.jetstream).toBe(true);
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      const js = jetstream(nc);
      const ack = await js.publish(`${stream}.a`, "hello");
      expect(ack.seq).toBe(1);
      const consumer = await js.consumers.get(stream);
      const msg = await consumer.next({ expires: 2_000 });
      expect(msg?.string()).toBe("hello");
      expect(msg?.subject).toBe(`${stream}.a`);
    });
    // The store is where we said it would be.
    expect(existsSync(join(server.storeDir, "jetstream"))).toBe(true);
  });

  it("restart() keeps the port and the JetStream data", async () => {
    await using server = await startNatsServer();
    const stream = uniqueName("restart");
    await withConnection(server.url, async (nc) => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      const js = jetstream(nc);
      for (const word of ["a", "b", "c"]) await js.publish(`${stream}.x`, word);
    });
    const { port, pid: pidBefore } = server;

    await server.restart();

    expect(server.port).toBe(port);
    expect(server.url).toBe(`nats://127.0.0.1:${port}`);
    expect(server.pid).toBeDefined();
    expect(server.pid).not.toBe(pidBefore);
    expect(server.state).toBe(NatsServerState.Running);
    await withConnection(server.url, async (nc) => {
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(stream)).state.messages).toBe(3);
      expect(await readStrings(jsm, stream, 3)).toEqual(["a", "b", "c"]);
    });
  });

  it("kill() crashes the server and start() brings it back with its data", async () => {
    await using server = await startNatsServer();
    const stream = uniqueName("kill");
    await withConnection(server.url, async (nc) => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      await jetstream(nc).publish(`${stream}.x`, "survives");
    });
    const pid = server.pid as number;

    await server.kill();
    expect(server.isRunning).toBe(false);
    expect(server.pid).toBeUndefined();
    expect(server.state).toBe(NatsServerState.Stopped);
    expect(() => process.kill(pid, 0)).toThrow(); // the process is gone
    await expect(connect({ servers: server.url, reconnect: false, timeout: 1_000 })).rejects.toThrow();
    await server.kill(); // idempotent
    await server.stop(); // idempotent

    await server.start();
    expect(server.isRunning).toBe(true);
    await withConnection(server.url, async (nc) => {
      const jsm = await jetstreamManager(nc);
      expect(await readStrings(jsm, stream, 1)).toEqual(["survives"]);
    });
  });

  it("notices a server that dies on its own and can start it again", async () => {
    await using server = await startNatsServer();
    process.kill(server.pid as number, "SIGKILL");
    const deadline = Date.now() + 5_000;
    while (server.isRunning && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(server.isRunning).toBe(false);
    expect(server.state).toBe(NatsServerState.Stopped);
    await server.start();
    await withConnection(server.url, async (nc) => expect(nc.info?.server_name).toBe(server.serverName));
  });

  it("applies maxPayload and jetstream: false", async () => {
    await using server = await startNatsServer({ maxPayload: 64 * 1024, jetstream: false, debug: true });
    await withConnection(server.url, async (nc) => {
      expect(nc.info?.max_payload).toBe(64 * 1024);
      expect(nc.info?.jetstream ?? false).toBe(false);
      expect(() => nc.publish("too.big", new Uint8Array(64 * 1024 + 1))).toThrow();
    });
    expect(await server.readLog()).toContain("[DBG]");
  });

  it("dispose stops the server and removes its temporary directory, idempotently", async () => {
    const server = await startNatsServer();
    const pid = server.pid as number;
    expect(existsSync(server.tempDir)).toBe(true);
    expect(server.storeDir.startsWith(server.tempDir)).toBe(true);

    await server[Symbol.asyncDispose]();
    expect(server.state).toBe(NatsServerState.Disposed);
    expect(server.isRunning).toBe(false);
    expect(existsSync(server.tempDir)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
    await server[Symbol.asyncDispose]();
    await server.stop();
    await expect(server.start()).rejects.toMatchObject({ code: NatsServerErrorCode.InvalidState });
  });

  it("dispose keeps a caller-given storeDir", async () => {
    const storeDir = await mkdtemp(join(tmpdir(), "academy-nats-store-test-"));
    try {
      const server = await startNatsServer({ storeDir });
      await server[Symbol.asyncDispose]();
      expect(existsSync(server.tempDir)).toBe(false);
      expect(existsSync(join(storeDir, "jetstream"))).toBe(true);
    } finally {
      await rm(storeDir, { recursive: true, force: true });
    }
  });

  it("rejects with a clear error when the binary does not exist", async () => {
    const attempt = startNatsServer({ binary: "/nonexistent" });
    await expect(attempt).rejects.toBeInstanceOf(NatsServerError);
    await expect(attempt).rejects.toMatchObject({
      name: "NatsServerError",
      code: NatsServerErrorCode.BinaryNotFound,
      message: expect.stringContaining("/nonexistent"),
    });
    await expect(attempt).rejects.toThrow(/apt-get install -y nats-server/);
  });

  it("rejects with the log tail and config path when the server exits early", async () => {
    const attempt = startNatsServer({ extraConfig: "this is { not valid" });
    const error = (await attempt.catch((e: unknown) => e)) as NatsServerError;
    expect(error).toBeInstanceOf(NatsServerError);
    expect(error.code).toBe(NatsServerErrorCode.ExitedEarly);
    expect(error.configPath).toBeDefined();
    expect(error.message).toContain(error.configPath as string);
    expect(error.message).toMatch(/parse error/i); // from the server's own output
    await rm(join(error.configPath as string, ".."), { recursive: true, force: true });
  });

  it("rejects when the requested port is held by another server", async () => {
    await using first = await startNatsServer();
    const attempt = startNatsServer({ port: first.port });
    const error = (await attempt.catch((e: unknown) => e)) as NatsServerError;
    expect(error).toBeInstanceOf(NatsServerError);
    expect(error.code).toBe(NatsServerErrorCode.ExitedEarly);
    expect(error.message).toMatch(/address already in use/);
    await rm(join(error.configPath as string, ".."), { recursive: true, force: true });
    // The first server is unaffected.
    await withConnection(first.url, async (nc) => expect(nc.info?.server_name).toBe(first.serverName));
  });

  it("startTestNats uses the binary and exposes the server", async () => {
    await using nats = await startTestNats();
    expect(nats.mode).toBe("binary");
    expect(nats.server?.url).toBe(nats.url);
    expect(nats.servers).toEqual([nats.url]);
    await withConnection(nats.connectionOptions.servers[0] as string, async (nc) => {
      expect(nc.info?.jetstream).toBe(true);
    });
  });
});

describe("startNatsCluster", () => {
  let cluster: NatsCluster;
  const connections: NatsConnection[] = [];

  async function connectTo(index: number): Promise<NatsConnection> {
    const nc = await connect({ servers: cluster.urls[index] as string });
    connections.push(nc);
    return nc;
  }

  beforeAll(async () => {
    cluster = await startTestNatsCluster();
  });

  afterAll(async () => {
    await Promise.all(connections.map((nc) => nc.close()));
    if (cluster === undefined) return;
    const dirs = cluster.servers.map((s) => s.tempDir);
    await cluster[Symbol.asyncDispose]();
    await cluster[Symbol.asyncDispose]();
    for (const dir of dirs) expect(existsSync(dir)).toBe(false);
  });

  it("forms a 3-node cluster: create via one node, publish via another, read via the third", async () => {
    expect(cluster.servers).toHaveLength(3);
    expect(new Set(cluster.urls).size).toBe(3);
    expect(new Set(cluster.servers.map((s) => s.serverName)).size).toBe(3);

    const stream = uniqueName("r3");
    const [nc0, nc1, nc2] = [await connectTo(0), await connectTo(1), await connectTo(2)];
    const jsm0 = await jetstreamManager(nc0);
    const info = await jsm0.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 3 });
    expect(info.cluster?.name).toBe(cluster.name);
    expect(info.cluster?.replicas).toHaveLength(2);

    // The stream's subjects reach node 1's interest graph a moment after the create (longer on a
    // loaded machine): retry the no-responders a publish gets meanwhile, with the same msgID.
    const ack = await publishWithRetry(nc1, `${stream}.m`, "via node 1", `${stream}-1`);
    expect(ack.seq).toBe(1);

    const consumer = await jetstream(nc2).consumers.get(stream);
    const msg = await consumer.next({ expires: 5_000 });
    expect(msg?.string()).toBe("via node 1");
  });

  it("keeps an R3 stream writable when its leader node stops, and the node rejoins", async () => {
    const stream = uniqueName("failover");
    const nc0 = await connectTo(0);
    const jsm = await jetstreamManager(nc0);
    const created = await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 3 });
    const leaderName = created.cluster?.leader;
    const leaderIndex = cluster.servers.findIndex((s) => s.serverName === leaderName);
    expect(leaderIndex).toBeGreaterThanOrEqual(0);
    const leader = cluster.servers[leaderIndex]!;
    const publisherIndex = leaderIndex === 0 ? 1 : 0;
    const publisher = await connectTo(publisherIndex);
    await publishWithRetry(publisher, `${stream}.m`, "before", `${stream}-1`);

    const leaderPort = leader.port;
    await leader.stop();
    expect(leader.isRunning).toBe(false);

    const ack = await publishWithRetry(publisher, `${stream}.m`, "during", `${stream}-2`);
    expect(ack.seq).toBe(2);
    expect(ack.duplicate).toBe(false);

    await leader.start();
    expect(leader.port).toBe(leaderPort);
    await cluster.waitUntilReady(20_000);
    await withConnection(leader.url, async (nc) => {
      const jsmLeader = await jetstreamManager(nc);
      expect(await readStrings(jsmLeader, stream, 2)).toEqual(["before", "during"]);
    });
  });

  it("a killed node restarts on the same ports and rejoins", async () => {
    // SIGKILL one node (a crash); whatever it led is re-elected among the other two.
    const node = cluster.servers[2]!;
    const port = node.port;
    await node.kill();
    expect(node.isRunning).toBe(false);
    await node.restart();
    expect(node.port).toBe(port);
    await cluster.waitUntilReady(20_000);
    await node.waitUntilHealthy(5_000);
  });
});

describe("test fixture without nats-server or Docker", () => {
  it("fails with instructions to install nats-server instead of skipping", async () => {
    const error = await startTestNats({}, { findBinary: () => undefined, dockerReachable: async () => false }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain("apt-get install -y nats-server");
    expect((error as Error).message).toContain("Docker");
  });
});

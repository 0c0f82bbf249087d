/**
 * The `academy` command against a real nats-server and a host in a child process: every command,
 * its JSON output and its exit codes; read-only commands never create streams or buckets; dead
 * letters listed, shown, replayed and purged; gc of long-terminated mailboxes; credentials.
 */
import { headers as natsHeaders } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MailboxStatus, NatsExchangeFactory, natsLayout } from "../../../src/index.ts";
import { encodeMessage, encodeValue } from "../../../src/protocol/codec.ts";
import { MessageType } from "../../../src/protocol/messages.ts";
import { startNatsServer } from "../../../src/testing/index.ts";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import { HOST_AGENTS, runCli, spawnHost } from "../../support/host-process.ts";
import type { HostProcess } from "../../support/host-process.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();


let serial = 0;
const newPrefix = (): string => `cli${process.pid}_${++serial}`;

async function streamNames(): Promise<string[]> {
  const jsm = await jetstreamManager(shared.nc);
  const names: string[] = [];
  for await (const name of jsm.streams.names()) names.push(name);
  return names;
}

/** `academy <args> --json`, parsed; asserts the exit code. */
function json<T>(args: string[], status = 0): T {
  const result = runCli([...args, "--json"]);
  expect(result.status, `${args.join(" ")}: ${result.stderr}`).toBe(status);
  return JSON.parse(status === 0 ? result.stdout : result.stderr) as T;
}

describe("academy command configuration", () => {
  test("an unreadable --creds file is a usage error (exit code 2) naming the option", () => {
    const missing = "/nonexistent/academy-test.creds";
    for (const command of ["hosts", "agents"]) {
      const result = runCli([command, "--servers", "nats://127.0.0.1:1", "--creds", missing]);
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(/^academy: cannot read --creds \/nonexistent\/academy-test\.creds: ENOENT/);
    }
  });

  test("bad options are usage errors with balanced quotes; --log-level takes pino's levels only", () => {
    const unknown = runCli(["hosts", "--bogus"]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--bogus'");
    const level = runCli(["host", "--pool", "p", "--module", "m", "--log-level", "verbose"]);
    expect(level.status).toBe(2);
    expect(level.stderr).toMatch(/'verbose' is invalid\. Allowed choices are fatal, error, warn, info, debug, trace, silent/);
    const help = runCli(["help"]);
    expect(help.status).toBe(0);
    for (const word of ["call", "ping", "discover", "status", "describe", "launch", "shutdown", "terminate", "dlq", "gc", "state", "reminders", "Exit codes"]) {
      expect(help.stdout).toContain(word);
    }
    expect(runCli(["help", "gc"]).stdout).toContain("ACADEMY_GC_OLDER_THAN");
  });

  test("read-only commands on a prefix nobody uses create nothing and exit 3 naming the prefix", async () => {
    const before = await streamNames();
    const base = ["--servers", shared.nats.url, "--prefix", "typo"];
    for (const args of [["hosts"], ["agents"], ["discover", "Counter"], ["status", "x"], ["dlq", "list"], ["gc", "--dry-run"], ["call", "x", "get"]]) {
      const result = runCli([...args, ...base]);
      expect(result.status, args.join(" ")).toBe(3);
      expect(result.stderr).toContain("prefix 'typo'");
    }
    expect(await streamNames()).toEqual(before);
    const error = json<{ error: { code: string; prefix: string } }>(["hosts", ...base], 3);
    expect(error.error).toMatchObject({ code: "EXCHANGE_NOT_FOUND", prefix: "typo" });
  });

  test("credentials: refused ones exit 4 without printing the secret; accepted ones from variables", async () => {
    await using server = await startNatsServer({ extraConfig: "authorization { users = [ { user: alice, password: s3cret } ] }" });
    const refused = runCli(["hosts", "--servers", server.url.replace("nats://", "nats://alice:wr0ng@")]);
    expect(refused.status).toBe(4);
    expect(refused.stderr).toContain("AUTHENTICATION");
    expect(refused.stderr).not.toContain("wr0ng");
    const flags = runCli(["hosts", "--servers", server.url, "--user", "alice", "--password", "nope"]);
    expect(flags.status).toBe(4);
    // Accepted (the server has no exchange yet: not found, after authenticating).
    const result = spawnSyncWithEnv(["hosts", "--servers", server.url], { ACADEMY_USER: "alice", ACADEMY_PASSWORD: "s3cret" });
    expect(result.status).toBe(3);
  });
});

describe("academy host", () => {
  test("a --health-port in use fails the start (exit 2) before the host joins its pool", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const prefix = newPrefix();
      const result = runCli(["host", "--servers", shared.nats.url, "--prefix", prefix, "--pool", "p", "--module", HOST_AGENTS, "--health-port", String(port)]);
      expect(result.status).toBe(2);
      expect(result.stderr).toContain(`--health-port ${port}: cannot listen (EADDRINUSE)`);
      // It never connected: the prefix has no exchange, so no host record and no claimed launch.
      expect(runCli(["hosts", "--servers", shared.nats.url, "--prefix", prefix]).status).toBe(3);
    } finally {
      taken.close();
    }
  });
});

describe("academy host under npm", () => {
  test("killing the npm wrapper of a host drains the host (its signals never reach it); --pid-file names the host itself", async () => {
    const prefix = newPrefix();
    const pidFile = join(tmpdir(), `academy-host-${process.pid}-${serial}.pid`);
    const npm = spawn("npm", ["run", "--silent", "academy", "--", "host", "--servers", shared.nats.url, "--prefix", prefix, "--pool", "wrapped", "--module", HOST_AGENTS, "--pid-file", pidFile], {
      cwd: fileURLToPath(new URL("../../../", import.meta.url)),
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let logs = "";
    npm.stdout!.on("data", (chunk: Buffer) => (logs += chunk.toString()));
    try {
      await expect.poll(() => logs.includes('"msg":"host ready"'), { timeout: 30_000 }).toBe(true);
      const hostPid = Number(readFileSync(pidFile, "utf8").trim());
      expect(hostPid).not.toBe(npm.pid);
      npm.kill("SIGKILL"); // the wrapper dies without passing anything on
      await expect.poll(() => logs.includes('"msg":"host drained and stopped"'), { timeout: 20_000 }).toBe(true);
      await expect.poll(() => existsSync(pidFile), { timeout: 5_000 }).toBe(false);
      expect(json<unknown[]>(["hosts", "--servers", shared.nats.url, "--prefix", prefix])).toEqual([]);
    } finally {
      try {
        process.kill(-npm.pid!, "SIGKILL");
      } catch {
        // the group is gone
      }
    }
  }, 90_000);
});

describe("academy commands on a pool", () => {
  let prefix: string;
  let host: HostProcess;
  let base: string[];

  beforeAll(async () => {
    prefix = newPrefix();
    host = await spawnHost({ servers: shared.nats.url, prefix, pool: "workers" });
    base = ["--servers", shared.nats.url, "--prefix", prefix];
  });
  afterAll(async () => {
    await host?.kill();
  });

  test("launch by type, then call, ping, describe, discover, status, shutdown and terminate", () => {
    const launched = json<{ agentId: string; type: string; pool: string }>(["launch", "PoolCounter", "5", "--pool", "workers", "--agent-name", "counter-a", ...base]);
    expect(launched).toMatchObject({ type: "PoolCounter", pool: "workers" });
    const id = launched.agentId;
    // By id, by display name, by type (one agent of it): the same agent.
    expect(runCli(["call", id, "increment", "2", ...base]).stdout.trim()).toBe("7");
    expect(json<{ result: number }>(["call", "counter-a", "increment", "--args", "[3]", ...base]).result).toBe(10);
    expect(json<{ result: number }>(["call", "PoolCounter", "get", ...base]).result).toBe(10);
    expect(json<{ rttMs: number }>(["ping", id, ...base]).rttMs).toBeGreaterThan(0);
    const described = json<{ type: string; chain: string[]; actions: Array<{ name: string }> }>(["describe", id, ...base]);
    // The ancestry came from the host's record: discover by the base type finds it.
    expect(described.chain).toEqual(["PoolCounter", "Counter", "Agent"]);
    expect(described.actions.map((a) => a.name)).toEqual(expect.arrayContaining(["increment", "get", "where"]));
    expect(json<Array<{ agentId: string }>>(["discover", "Counter", ...base]).map((a) => a.agentId)).toEqual([id]);
    expect(json<unknown[]>(["discover", "Counter", "--no-subclasses", ...base])).toEqual([]);
    expect(json(["status", "counter-a", ...base])).toMatchObject({ agentId: id, status: "active", placement: "running", pool: "workers", host: host.hostId });

    // An action that does not exist: the agent's error, exit 1.
    const unknown = runCli(["call", id, "nope", ...base]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain("UNKNOWN_ACTION");
    // A launch of a type no host has: exit 1, UNKNOWN_AGENT_TYPE.
    const badType = runCli(["launch", "Nobody", "--pool", "workers", ...base]);
    expect(badType.status).toBe(1);
    expect(badType.stderr).toContain("UNKNOWN_AGENT_TYPE");

    expect(json(["shutdown", id, "--keep-mailbox", ...base])).toMatchObject({ agentId: id, shutdown: "requested" });
    expect(json(["terminate", id, ...base])).toMatchObject({ agentId: id, status: "terminated" });
    expect(json(["status", id, ...base])).toMatchObject({ status: "terminated" });
    // Terminated, or not there at all: exit 3.
    expect(runCli(["call", id, "get", ...base]).status).toBe(3);
    expect(runCli(["ping", "no-such-agent", ...base]).status).toBe(3);
  }, 90_000); // 16 processes of the CLI, one after another: 8 s on a quiet machine

  test("two agents of one type: a type is ambiguous (exit 2), ids are not", () => {
    const a = json<{ agentId: string }>(["launch", "PoolCounter", "--pool", "workers", ...base]).agentId;
    const b = json<{ agentId: string }>(["launch", "PoolCounter", "--pool", "workers", ...base]).agentId;
    const ambiguous = runCli(["call", "PoolCounter", "get", ...base]);
    expect(ambiguous.status).toBe(2);
    expect(ambiguous.stderr).toContain(a);
    expect(ambiguous.stderr).toContain(b);
    for (const id of [a, b]) expect(runCli(["terminate", id, ...base]).status).toBe(0);
  });

  test("dead letters: list with filters, show, replay into the mailbox, purge", async () => {
    const id = json<{ agentId: string }>(["launch", "PoolCounter", "1", "--pool", "workers", ...base]).agentId;
    expect(json<{ result: number }>(["call", id, "get", ...base]).result).toBe(1);
    const layout = natsLayout(prefix);
    const js = (await import("@nats-io/jetstream")).jetstream(shared.nc);
    // A request that reached the delivery limit: dead-lettered with its routing headers.
    const request = encodeMessage({ type: MessageType.ActionRequest, tag: "replayed-1", dest: id, action: "increment", args: [41] });
    const headers = natsHeaders();
    headers.set("Academy-Dead-Reason", "DELIVERY_LIMIT");
    headers.set("Academy-Dead-Error", "handed back 5 times");
    headers.set("Academy-Original-Subject", layout.mailboxSubject(id));
    await js.publish(layout.deadLetterSubject(id), request, { headers });
    // Bytes that are no launch request, on the pool's queue: the host dead-letters them.
    await js.publish(layout.launchSubject("workers", "garbage-launch"), new TextEncoder().encode("not cbor"));
    await expect.poll(() => json<unknown[]>(["dlq", "list", "--kind", "launch", ...base]).length, { timeout: 15_000 }).toBe(1);

    const all = json<Array<{ id: number; kind: string; reason: string; mailbox?: string; pool?: string }>>(["dlq", "list", ...base]);
    expect(all.map((l) => l.kind).sort()).toEqual(["launch", "mailbox"]);
    const mailboxLetter = all.find((l) => l.kind === "mailbox")!;
    expect(mailboxLetter).toMatchObject({ mailbox: id, reason: "DELIVERY_LIMIT" });
    expect(json<unknown[]>(["dlq", "list", "--agent", id, ...base])).toHaveLength(1);
    expect(json<unknown[]>(["dlq", "list", "--pool", "workers", ...base])).toHaveLength(1);
    expect(json<unknown[]>(["dlq", "list", "--reason", "DELIVERY_LIMIT", ...base])).toHaveLength(1);
    expect(json<unknown[]>(["dlq", "list", "--since", "1h", ...base])).toHaveLength(2);
    expect(json<unknown[]>(["dlq", "list", "--before", "1h", ...base])).toHaveLength(0);
    const shown = json<{ body: { action: string; args: number[] }; headers: Record<string, string> }>(["dlq", "show", String(mailboxLetter.id), ...base]);
    expect(shown.body).toMatchObject({ action: "increment", args: [41] });
    expect(runCli(["dlq", "show", "999999", ...base]).status).toBe(3);

    expect(runCli(["dlq", "replay", ...base]).status).toBe(2); // neither ids nor --all-matching
    const dry = json<Array<{ replayed: boolean }>>(["dlq", "replay", String(mailboxLetter.id), "--dry-run", ...base]);
    expect(dry[0]!.replayed).toBe(false);
    expect(json<Array<{ replayed: boolean }>>(["dlq", "replay", String(mailboxLetter.id), ...base])[0]!.replayed).toBe(true);
    await expect.poll(() => json<{ result: number }>(["call", id, "get", ...base]).result, { timeout: 10_000 }).toBe(42);
    expect(json<unknown[]>(["dlq", "list", "--kind", "mailbox", ...base])).toHaveLength(0);

    // A letter whose mailbox is terminated is kept (exit 1).
    await js.publish(layout.deadLetterSubject(id), request, { headers });
    expect(runCli(["terminate", id, ...base]).status).toBe(0);
    const kept = runCli(["dlq", "replay", "--all-matching", "--kind", "mailbox", "--json", ...base]);
    expect(kept.status).toBe(1);
    expect(JSON.parse(kept.stdout)[0]).toMatchObject({ replayed: false, refusal: "mailbox-inactive" });

    expect(runCli(["dlq", "purge", "999999", ...base]).status).toBe(3);
    expect(json<{ results: Array<{ removed: boolean }> }>(["dlq", "purge", "--all-matching", ...base]).results).toHaveLength(2);
    expect(json<unknown[]>(["dlq", "list", ...base])).toEqual([]);
  }, 90_000); // about 20 processes of the CLI, one after another: 20 s on a quiet machine

  test("gc deletes mailboxes terminated long ago and their final placements, keeps the rest", async () => {
    const old = json<{ agentId: string }>(["launch", "PoolCounter", "--pool", "workers", ...base]).agentId;
    const live = json<{ agentId: string }>(["launch", "PoolCounter", "--pool", "workers", ...base]).agentId;
    expect(runCli(["shutdown", old, "--terminate", ...base]).status).toBe(0);
    await expect.poll(() => json<{ placement: string }>(["status", old, ...base]).placement, { timeout: 10_000 }).toBe("completed");
    // Backdate the termination: two days ago.
    const registry = await new Kvm(shared.nc).open(natsLayout(prefix).registryBucket);
    const entry = (await registry.get(old))!;
    const record = (await import("../../../src/protocol/codec.ts")).decodeValue(entry.value) as Record<string, unknown>;
    await registry.put(old, encodeValue({ ...record, terminatedAt: Date.now() - 2 * 86_400_000 }));

    expect(runCli(["gc", "--older-than", "30m", ...base]).status).toBe(2); // below the floor
    const dry = json<{ collected: Array<{ uid: string }>; deletedMailboxes: number }>(["gc", "--older-than", "1d", "--dry-run", ...base]);
    expect(dry.collected.map((c) => c.uid)).toEqual([old]);
    expect(dry.deletedMailboxes).toBe(0);
    const done = json<{ deletedMailboxes: number; deletedPlacements: number }>(["gc", "--older-than", "1d", ...base]);
    expect(done).toMatchObject({ deletedMailboxes: 1, deletedPlacements: 1 });
    expect(runCli(["status", old, ...base]).status).toBe(3);
    expect(json(["status", live, ...base])).toMatchObject({ status: "active" });
    const factory = new NatsExchangeFactory({ servers: shared.nats.url, prefix, provision: false });
    const client = await factory.createUserClient();
    expect(await client.status(new (await import("../../../src/index.ts")).AgentId(old))).toBe(MailboxStatus.Missing);
    await client.close();
    await factory.close();
  }, 60_000); // 9 or more processes of the CLI, one after another: 7 s on a quiet machine
});

/** `runCli` with extra environment variables. */
function spawnSyncWithEnv(args: string[], env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return runCli(args);
  } finally {
    for (const key of Object.keys(env)) if (saved[key] === undefined) delete process.env[key];
  }
}

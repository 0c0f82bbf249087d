/**
 * The README's promises: `npm start` runs the demo (on NATS when nats-server exists, else in
 * process, saying which) and the quick start runs as written.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, test } from "vitest";
import { edgeExample } from "../../../examples/edge.ts";
import { main as cpuWorkers } from "../../../examples/cpu-workers.ts";
import { startService } from "../../../examples/embedded-host.ts";
import { main as pipeline } from "../../../examples/pipeline.ts";
import { main as streaming } from "../../../examples/streaming.ts";
import { main as supervisor } from "../../../examples/supervisor.ts";
import { LocalExchangeFactory, NatsExchangeFactory } from "../../../src/index.ts";
import { startTestNats } from "../../support/nats.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../..", import.meta.url));

async function demo(env: Record<string, string>): Promise<string> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "examples/demo.ts"], {
    cwd: root,
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return stdout;
}

describe("examples", () => {
  test("the demo runs on NATS JetStream when nats-server is available", async () => {
    const out = await demo({});
    expect(out).toMatch(/^Exchange: NATS JetStream \(started nats-server at nats:\/\/127\.0\.0\.1:\d+/m);
    expect(out).toMatch(/counter\.increment\(3\).*\b5$/m);
    expect(out).toMatch(/discover\(Counter, \{ allowSubclasses: false \}\)\s+\["counter"\]/);
    expect(out).toMatch(/RequestTimeoutError/);
    expect(out).toMatch(/Done\.$/m);
  });

  test("the demo runs on the in-process exchange and says so", async () => {
    const out = await demo({ ACADEMY_DEMO_EXCHANGE: "local" });
    expect(out).toMatch(/^Exchange: in-process/m);
    expect(out).toMatch(/coordinator\.fanOut\(10\)\s+\[15,10\]/);
    expect(out).toMatch(/Done\.$/m);
  });

  test("the edge example: a call from the cloud is stored while the site's uplink is down and answered after", async () => {
    const lines: string[] = [];
    expect(await edgeExample((line) => lines.push(line))).toBe(111);
    expect(lines).toEqual([
      expect.stringMatching(/lives at site floor$/),
      "cloud -> site, link up: 1",
      "site -> site, uplink down: 101",
      "the cloud still discovers 1 press(es) at the site (from its mirror)",
      "cloud -> site, answered after the uplink returned: 111",
    ]);
  }, 60_000);
});

describe("examples people start from", () => {
  const lines: string[] = [];
  const print = (...values: unknown[]): void => void lines.push(values.join(" "));

  test("a supervisor with restarts (NATS)", async () => {
    await using nats = await startTestNats();
    lines.length = 0;
    await supervisor(new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix: "sup" }), print);
    expect(lines).toEqual([
      "FlakyStartup answered from run 3",
      "Crashy run 1 served 1 request(s)",
      "after the crash, Crashy run 2 served 1 request(s)",
      "same agent id: true",
    ]);
  });

  test("a pipeline of agents (in process and on NATS)", async () => {
    const expected = [["the", 5], ["cat", 3], ["a", 2]];
    expect(await pipeline(new LocalExchangeFactory(), () => {})).toEqual(expected);
    await using nats = await startTestNats();
    expect(await pipeline(new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix: "pipe" }), () => {})).toEqual(expected);
  });

  test("streaming tokens with for await (in process and on NATS)", async () => {
    await using nats = await startTestNats();
    for (const factory of [new LocalExchangeFactory(), new NatsExchangeFactory({ servers: nats.url, connectionOptions: nats.connectionOptions, prefix: "stream" })]) {
      lines.length = 0;
      const text = await streaming(factory, print);
      expect(text).toBe("You asked: what is a stream?. Streams arrive token by token, in order, each once.");
      expect(lines).toEqual([
        text,
        "first three tokens: You asked: tell",
        'progress: {"chapter":1,"of":3}',
        'progress: {"chapter":2,"of":3}',
        'progress: {"chapter":3,"of":3}',
        "3 chapters summarized",
        "generations stopped by their reader: 1",
      ]);
    }
  });

  test("CPU work on worker threads", async () => {
    lines.length = 0;
    const counts = await cpuWorkers(new LocalExchangeFactory(), print, 50_000);
    expect(counts[0]).toBe(5133); // primes below 50,000
    expect(lines[0]).toMatch(/agents counted primes below ~50000 in parallel/);
  }, 60_000);

  test("a runtime host embedded in an HTTP service", async () => {
    await using nats = await startTestNats();
    const service = await startService({ exchange: { servers: nats.url, connectionOptions: nats.connectionOptions, prefix: "svc" }, port: 0 });
    try {
      const first = (await (await fetch(`${service.url}/increment`)).json()) as { count: number; hostId: string; agentsHere: number };
      expect(first).toEqual({ count: 1, hostId: service.host.hostId, agentsHere: 1 });
      await fetch(`${service.url}/increment`);
      expect(((await (await fetch(`${service.url}/count`)).json()) as { count: number }).count).toBe(2);
      expect((await fetch(`${service.url}/nope`)).status).toBe(404);
    } finally {
      await service.stop();
    }
    expect(service.host.state).toBe("stopped");
  });
});

/**
 * The README's promises: `npm start` runs the demo (on NATS when nats-server exists, else in
 * process, saying which) and the quick start runs as written.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, test } from "vitest";
import { quickstart } from "../../../examples/quickstart.ts";
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

  test("the quick start runs as written and prints each step", async () => {
    await using nats = await startTestNats();
    const lines: string[] = [];
    await quickstart(nats.url, { connectionOptions: nats.connectionOptions }, (...values) => lines.push(values.join(" ")));
    expect(lines.slice(0, 4)).toEqual(["increment(2) -> 2", "increment(3) -> 5", "Counter agents: 2", "exactly Counter: 1"]);
    expect(lines[4]).toMatch(/^ping: \d+\.\d ms$/);
    expect(lines[5]).toBe("counter shut down");
  });
});

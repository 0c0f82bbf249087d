/**
 * The README's promises: `npm start` runs the demo (on NATS when nats-server exists, else in
 * process, saying which) and the quick start runs as written.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, test } from "vitest";
import { edgeExample } from "../../../examples/edge.ts";
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

  test("the quick start runs as written", async () => {
    await using nats = await startTestNats();
    await quickstart(nats.url, { connectionOptions: nats.connectionOptions });
  });
});

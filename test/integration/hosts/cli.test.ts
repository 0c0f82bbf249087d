/**
 * The `academy` command's handling of bad configuration: exit code 2 and a message in the
 * command's own terms, before any connection is attempted.
 */
import { describe, expect, test } from "vitest";
import { runCli } from "../../support/host-process.ts";

describe("academy command configuration", () => {
  test("an unreadable --creds file is a usage error (exit code 2) naming the option", () => {
    const missing = "/nonexistent/academy-test.creds";
    for (const command of ["hosts", "agents"]) {
      const result = runCli([command, "--servers", "nats://127.0.0.1:1", "--creds", missing]);
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(/^academy: cannot read --creds \/nonexistent\/academy-test\.creds: ENOENT/);
    }
  });
});

/**
 * The academy command's --inbox-prefix (ACADEMY_INBOX_PREFIX) becomes the connection's inbox
 * prefix, under which the library and nats.js make every inbox: what a user allowed to subscribe
 * only under its own prefix needs (docs/SECURITY.md).
 */
import { describe, expect, test } from "vitest";
import { exchangeOptions } from "../../runtime/cli-connection.ts";
import { CLI_OPTIONS, CONNECTION_OPTIONS } from "../../runtime/cli-options.ts";

describe("academy --inbox-prefix", () => {
  test("is a connection option of every command, read from ACADEMY_INBOX_PREFIX too", () => {
    expect(CONNECTION_OPTIONS).toContain("inbox-prefix");
    expect(CLI_OPTIONS["inbox-prefix"].env).toBe("ACADEMY_INBOX_PREFIX");
  });

  test("sets the connection's inbox prefix, and leaves nats.js's default otherwise", () => {
    expect(exchangeOptions({ inboxPrefix: "_INBOX.alice" }).connectionOptions?.inboxPrefix).toBe("_INBOX.alice");
    expect(exchangeOptions({}).connectionOptions).not.toHaveProperty("inboxPrefix");
  });
});

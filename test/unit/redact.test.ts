import { describe, expect, test } from "vitest";
import { splitUrlCredentials } from "../../src/exchange/nats/nats-auth.ts";
import { redactUrls } from "../../src/util/redact.ts";

describe("secrets in URLs", () => {
  test("redactUrls hides passwords and tokens, keeps user names and hosts", () => {
    expect(redactUrls("NATS at nats://alice:s3cret@host:4333,tls://t0ken@other:4443 refused"))
      .toBe("NATS at nats://alice:***@host:4333,tls://***@other:4443 refused");
    expect(redactUrls("nats://alice:p@ss@host:4333")).toBe("nats://alice:***@host:4333");
    expect(redactUrls("nats://host:4333 and mail@example.com")).toBe("nats://host:4333 and mail@example.com");
  });

  test("splitUrlCredentials takes a user and password, or a token, out of the URLs", () => {
    expect(splitUrlCredentials(["nats://alice:s%40cret@h1:4333", "nats://h2:4333"])).toEqual({
      servers: ["nats://h1:4333", "nats://h2:4333"],
      auth: { user: "alice", password: "s@cret" },
    });
    expect(splitUrlCredentials(["tls://t0ken@h1:4443"])).toEqual({ servers: ["tls://h1:4443"], auth: { token: "t0ken" } });
    expect(splitUrlCredentials(["h1:4333"])).toEqual({ servers: ["h1:4333"], auth: {} });
  });
});

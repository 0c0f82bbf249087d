/**
 * The library under NATS users restricted to the permissions `natsPermissions` gives each role, each
 * user with an inbox prefix of its own (`_INBOX.<user>`) and allowed to subscribe only under it.
 * The restricted-user fault scenario covers every role and the attacks; this file keeps the
 * library's own clients honest in CI.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Manager, NatsExchangeFactory, NatsRole, PermissionDeniedError, natsPermissions } from "../../../src/index.ts";
import type { NatsExchangeOptions, NatsUserPermissions } from "../../../src/index.ts";
import { Counter } from "../../fixtures/agents.ts";
import { startSecureNats } from "../../support/secure-nats.ts";
import type { SecureNats } from "../../support/secure-nats.ts";

const prefix = "perm";
let nats: SecureNats;

beforeAll(async () => {
  nats = await startSecureNats({
    agent: { role: NatsRole.Agent, prefix },
    caller: { role: NatsRole.Caller, prefix },
    // A caller that may not send requests: its role's permissions without the mailbox subjects.
    mute: { permissions: withoutPublish(natsPermissions({ role: NatsRole.Caller, prefix, inboxPrefix: "_INBOX.mute" }), `${prefix}.mbox.*`) },
  });
  // An operator provisions the exchange; the restricted users only look its streams up.
  const admin = new NatsExchangeFactory(options("admin"));
  await (await admin.createUserClient()).close();
  await admin.close();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

function withoutPublish(permissions: NatsUserPermissions, subject: string): NatsUserPermissions {
  return { ...permissions, publish: { allow: permissions.publish.allow.filter((s) => s !== subject) } };
}

/** Factory options for a user of the server (a short retry window: a refused request fails fast). */
function options(user: string, extra: NatsExchangeOptions = {}): NatsExchangeOptions {
  const { servers, user: name, pass, inboxPrefix } = nats.users[user]!.connectionOptions;
  return { servers, connectionOptions: { user: name, pass, inboxPrefix }, prefix, retryWindowMs: 3_000, ...extra };
}

describe("NATS users with the documented permissions and inbox prefixes of their own", () => {
  test("a caller allowed to subscribe only under its own inbox prefix calls agents, in both reply modes", async () => {
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options("agent")));
    const counter = (await manager.launch(Counter)).with({ timeoutMs: 5_000 });
    await counter.ping();
    for (const replies of ["mailbox", "core"] as const) {
      const factory = new NatsExchangeFactory(options("caller", { replies }));
      const client = await factory.createUserClient();
      const handle = client.getHandle(counter.agentId).with({ timeoutMs: 5_000 });
      await handle.increment();
      expect(await handle.get()).toBeGreaterThan(0);
      expect((await client.discover(Counter)).map((id) => id.uid)).toContain(counter.agentId.uid);
      await client.close();
      await factory.close();
    }
    expect(await nats.violations()).toEqual([]);
  });

  test("a permission the user lacks is a PermissionDeniedError at once, not retried until the window ends", async () => {
    await using manager = await Manager.fromExchangeFactory(new NatsExchangeFactory(options("agent")));
    const counter = await manager.launch(Counter);
    const factory = new NatsExchangeFactory(options("mute", { retryWindowMs: 20_000 }));
    const client = await factory.createUserClient();
    const started = Date.now();
    const error = await client.getHandle(counter.agentId).ping().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermissionDeniedError);
    expect(error).toMatchObject({ code: "PERMISSION_DENIED", operation: "publish", subject: `${prefix}.mbox.${counter.agentId.uid}` });
    expect(Date.now() - started).toBeLessThan(5_000);
    // An inbox prefix the user may not subscribe under: refused at once as well.
    const wrongInbox = new NatsExchangeFactory(options("caller", { retryWindowMs: 20_000, connectionOptions: { ...options("caller").connectionOptions, inboxPrefix: "_INBOX.someone" } }));
    const refusedAt = Date.now();
    await expect(wrongInbox.createUserClient()).rejects.toBeInstanceOf(PermissionDeniedError);
    expect(Date.now() - refusedAt).toBeLessThan(5_000);
    await wrongInbox.close();
    await client.close();
    await factory.close();
  });
});

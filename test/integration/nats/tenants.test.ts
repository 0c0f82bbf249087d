/**
 * The tenant recipe of docs/SECURITY.md, on one server: a NATS account per tenant (nothing crosses
 * accounts), an inbox prefix of its own for every user, and a prefix of their own ("zone") for agent
 * types that not every caller may reach, each user holding the permissions `natsPermissions` gives
 * its role in the zones it uses.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  Agent,
  BadEntityIdError,
  MailboxStatus,
  Manager,
  NatsExchangeFactory,
  NatsRole,
  PermissionDeniedError,
  action,
  natsPermissions,
} from "../../../src/index.ts";
import type { NatsExchangeOptions, NatsPermissionsOptions, NatsUserPermissions } from "../../../src/index.ts";
import { startNatsServer } from "../../../src/testing/index.ts";
import type { NatsServer } from "../../../src/testing/index.ts";
import { Counter } from "../../fixtures/agents.ts";

class Invoicer extends Agent {
  @action async invoice(amount: number): Promise<string> {
    return `invoice for ${amount}`;
  }
}

/** The permissions of one user: its role in each zone (prefix) it uses, allow lists merged. */
function permissions(user: string, roles: ReadonlyArray<Omit<NatsPermissionsOptions, "inboxPrefix">>): NatsUserPermissions {
  const publish = new Set<string>();
  const subscribe = new Set<string>();
  for (const role of roles) {
    const p = natsPermissions({ ...role, inboxPrefix: `_INBOX.${user}` });
    for (const s of p.publish.allow) publish.add(s);
    for (const s of p.subscribe.allow) subscribe.add(s);
  }
  return { publish: { allow: [...publish] }, subscribe: { allow: [...subscribe] } };
}

const accounts = {
  TENANT_A: {
    "a-agents": [
      { role: NatsRole.Agent, prefix: "public", provision: true },
      { role: NatsRole.Agent, prefix: "billing", provision: true },
    ],
    "a-public": [{ role: NatsRole.Caller, prefix: "public" }],
    "a-billing": [{ role: NatsRole.Caller, prefix: "billing" }],
  },
  TENANT_B: {
    "b-agents": [{ role: NatsRole.Agent, prefix: "public", provision: true }],
    "b-public": [{ role: NatsRole.Caller, prefix: "public" }],
  },
} as const;

let server: NatsServer;

beforeAll(async () => {
  const config = Object.entries(accounts).map(([account, users]) => {
    const entries = Object.entries(users).map(([user, roles]) =>
      JSON.stringify({ user, password: `${user}-pw`, permissions: permissions(user, roles) }),
    );
    return `  ${account}: {\n    jetstream: enabled\n    users: [\n      ${entries.join(",\n      ")}\n    ]\n  }`;
  });
  server = await startNatsServer({ extraConfig: `accounts: {\n${config.join("\n")}\n}` });
});
afterAll(async () => {
  await server?.[Symbol.asyncDispose]();
});

const factories: NatsExchangeFactory[] = [];
afterAll(async () => {
  for (const factory of factories) await factory.close();
});

function factory(user: string, prefix: string, extra: NatsExchangeOptions = {}): NatsExchangeFactory {
  const made = new NatsExchangeFactory({
    servers: server.url,
    connectionOptions: { user, pass: `${user}-pw`, inboxPrefix: `_INBOX.${user}` },
    prefix,
    retryWindowMs: 3_000,
    ...extra,
  });
  factories.push(made);
  return made;
}

describe("the tenant recipe", () => {
  test("tenants in separate accounts share nothing, even under the same prefix and with the other's ids", async () => {
    await using managerA = await Manager.fromExchangeFactory(factory("a-agents", "public"));
    await using managerB = await Manager.fromExchangeFactory(factory("b-agents", "public"));
    const counterA = await managerA.launch(Counter);
    const counterB = await managerB.launch(Counter);
    const callerA = await factory("a-public", "public").createUserClient();
    const callerB = await factory("b-public", "public").createUserClient();
    expect(await callerA.getHandle(counterA.agentId).increment()).toBe(1);
    expect(await callerB.getHandle(counterB.agentId).increment()).toBe(1);
    expect((await callerA.discover(Counter)).map((id) => id.uid)).toEqual([counterA.agentId.uid]);
    expect((await callerB.discover(Counter)).map((id) => id.uid)).toEqual([counterB.agentId.uid]);
    expect(await callerB.status(counterA.agentId)).toBe(MailboxStatus.Missing);
    await expect(callerB.getHandle(counterA.agentId).increment()).rejects.toBeInstanceOf(BadEntityIdError);
    expect(await counterA.get()).toBe(1);
  });

  test("agent types in a zone of their own are reachable only by the callers given that zone", async () => {
    // One agent process serves both zones, with a factory per zone.
    await using billing = await Manager.fromExchangeFactory(factory("a-agents", "billing"));
    const invoicer = await billing.launch(Invoicer);
    const payer = await factory("a-billing", "billing").createUserClient();
    expect(await payer.getHandle(invoicer.agentId).invoice(12)).toBe("invoice for 12");
    // A caller of the public zone cannot even look the billing zone's streams up.
    const outsider = factory("a-public", "billing");
    const refused = await outsider.createUserClient().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PermissionDeniedError);
    expect((refused as PermissionDeniedError).subject).toMatch(/billing/);
    // Nor find the agent from its own zone.
    const publicCaller = await factory("a-public", "public").createUserClient();
    expect(await publicCaller.discover(Invoicer)).toEqual([]);
    expect(await publicCaller.status(invoicer.agentId)).toBe(MailboxStatus.Missing);
  });
});

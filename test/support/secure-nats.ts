/**
 * A nats-server with authorization, for the security tests and the restricted-user scenario: one
 * account with JetStream, an `admin` user allowed everything (it provisions the exchange, as an
 * operator would), and users whose permissions come from `natsPermissions`, each with an inbox
 * prefix of its own (`_INBOX.<user>`). Permission violations are read back from the server's log.
 */
import { natsPermissions } from "../../src/index.ts";
import type { NatsPermissionsOptions, NatsUserPermissions } from "../../src/index.ts";
import { startNatsServer } from "../../src/testing/index.ts";
import type { NatsServer, NatsServerOptions } from "../../src/testing/index.ts";

/** A user of the server: its password and inbox prefix, and the permissions it was given. */
export interface SecureUser {
  readonly user: string;
  readonly pass: string;
  readonly inboxPrefix: string;
  readonly permissions: NatsUserPermissions | undefined;
  /** What to pass to nats.js's `connect` (servers, credentials, inbox prefix). */
  readonly connectionOptions: { servers: string; user: string; pass: string; inboxPrefix: string };
}

/** One permission violation the server logged. */
export interface Violation {
  readonly kind: "publish" | "subscribe";
  readonly user: string;
  readonly subject: string;
}

/** A server with the users asked for, and `admin`. */
export interface SecureNats extends AsyncDisposable {
  readonly server: NatsServer;
  readonly url: string;
  readonly users: Readonly<Record<string, SecureUser>>;
  /** Every violation logged so far. */
  violations(): Promise<Violation[]>;
}

/** Permissions of a user: a role of `natsPermissions` (its `inboxPrefix` is set here), or explicit lists. */
export type UserSpec = Omit<NatsPermissionsOptions, "inboxPrefix"> | { readonly permissions: NatsUserPermissions };

/**
 * Start a server whose account has `admin` (no restrictions) and the given users.
 * @param users - by user name (`[a-z0-9]+`): a role for `natsPermissions`, or explicit permissions.
 */
export async function startSecureNats(users: Record<string, UserSpec>, options: NatsServerOptions = {}): Promise<SecureNats> {
  const specs: Record<string, { inboxPrefix: string; permissions: NatsUserPermissions | undefined }> = {
    admin: { inboxPrefix: "_INBOX.admin", permissions: undefined },
  };
  for (const [user, spec] of Object.entries(users)) {
    const inboxPrefix = `_INBOX.${user}`;
    specs[user] = { inboxPrefix, permissions: "permissions" in spec ? spec.permissions : natsPermissions({ ...spec, inboxPrefix }) };
  }
  const entries = Object.entries(specs).map(([user, { permissions }]) =>
    JSON.stringify({ user, password: `${user}-pw`, ...(permissions === undefined ? {} : { permissions }) }),
  );
  const extraConfig = [
    "accounts: {",
    "  APP: {",
    "    jetstream: enabled",
    `    users: [\n      ${entries.join(",\n      ")}\n    ]`,
    "  }",
    "}",
    options.extraConfig ?? "",
  ].join("\n");
  const server = await startNatsServer({ ...options, extraConfig });
  const made = Object.fromEntries(
    Object.entries(specs).map(([user, { inboxPrefix, permissions }]) => [
      user,
      {
        user,
        pass: `${user}-pw`,
        inboxPrefix,
        permissions,
        connectionOptions: { servers: server.url, user, pass: `${user}-pw`, inboxPrefix },
      } satisfies SecureUser,
    ]),
  );
  return {
    server,
    url: server.url,
    users: made,
    async violations() {
      const found: Violation[] = [];
      for (const match of (await server.readLog()).matchAll(/(Publish|Subscription) Violation - User "([^"]+)", Subject "([^"]*)"/g)) {
        found.push({ kind: match[1] === "Publish" ? "publish" : "subscribe", user: match[2]!, subject: match[3]! });
      }
      return found;
    },
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
}

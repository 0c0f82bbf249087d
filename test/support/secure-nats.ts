/**
 * A nats-server with authorization, for the security tests and the restricted-user scenario: one
 * account with JetStream, an `admin` user allowed everything (it provisions the exchange, as an
 * operator would), and users whose permissions come from `natsPermissions`, each with an inbox
 * prefix of its own (`_INBOX.<user>`). Permission violations are read back from the server's log.
 */
import { readFile, writeFile } from "node:fs/promises";
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
  /** Give users (new or existing) other permissions, and reload the server's configuration (SIGHUP). */
  reload(users: Record<string, UserSpec>): Promise<void>;
}

/** Permissions of a user: a role of `natsPermissions` (its `inboxPrefix` is set here), or explicit lists. */
export type UserSpec = Omit<NatsPermissionsOptions, "inboxPrefix"> | { readonly permissions: NatsUserPermissions };

/** Permissions and inbox prefix of each user, `admin` first. */
type Specs = Record<string, { inboxPrefix: string; permissions: NatsUserPermissions | undefined }>;

function resolveSpecs(users: Record<string, UserSpec>): Specs {
  const specs: Specs = { admin: { inboxPrefix: "_INBOX.admin", permissions: undefined } };
  for (const [user, spec] of Object.entries(users)) {
    const inboxPrefix = `_INBOX.${user}`;
    specs[user] = { inboxPrefix, permissions: "permissions" in spec ? spec.permissions : natsPermissions({ ...spec, inboxPrefix }) };
  }
  return specs;
}

/** The `accounts` block of the configuration: one account with JetStream and every user. */
function accountsConfig(specs: Specs): string {
  const entries = Object.entries(specs).map(([user, { permissions }]) =>
    JSON.stringify({ user, password: `${user}-pw`, ...(permissions === undefined ? {} : { permissions }) }),
  );
  return ["accounts: {", "  APP: {", "    jetstream: enabled", `    users: [\n      ${entries.join(",\n      ")}\n    ]`, "  }", "}"].join("\n");
}

/**
 * Start a server whose account has `admin` (no restrictions) and the given users.
 * @param users - by user name (`[a-z0-9]+`): a role for `natsPermissions`, or explicit permissions.
 */
export async function startSecureNats(users: Record<string, UserSpec>, options: NatsServerOptions = {}): Promise<SecureNats> {
  let specs = resolveSpecs(users);
  const extra = options.extraConfig ?? "";
  const server = await startNatsServer({ ...options, extraConfig: `${accountsConfig(specs)}\n${extra}` });
  const made = (): Record<string, SecureUser> =>
    Object.fromEntries(
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
  const secure: SecureNats = {
    server,
    url: server.url,
    get users() {
      return made();
    },
    async violations() {
      const found: Violation[] = [];
      for (const match of (await server.readLog()).matchAll(/(Publish|Subscription) Violation - User "([^"]+)", Subject "([^"]*)"/g)) {
        found.push({ kind: match[1] === "Publish" ? "publish" : "subscribe", user: match[2]!, subject: match[3]! });
      }
      return found;
    },
    async reload(changed) {
      specs = { ...specs, ...resolveSpecs(changed) };
      const config = await readFile(server.configPath, "utf8");
      const marker = config.indexOf("# extraConfig");
      await writeFile(server.configPath, `${config.slice(0, marker)}# extraConfig\n${accountsConfig(specs)}\n${extra}\n`, "utf8");
      const reloadsBefore = countReloads(await server.readLog());
      process.kill(server.pid!, "SIGHUP");
      const deadline = Date.now() + 10_000;
      while (countReloads(await server.readLog()) <= reloadsBefore) {
        if (Date.now() > deadline) throw new Error("nats-server did not reload its configuration");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
  return secure;
}

function countReloads(log: string): number {
  return log.split("Reloaded server configuration").length - 1;
}

/**
 * How the `academy` command reaches an exchange: NATS options from the command line (servers,
 * prefix, credentials, TLS), an exchange opened without provisioning for every command but
 * `host` (a mistyped prefix is an `ExchangeNotFoundError`, never a new exchange), and agents named
 * on the command line by id, display name or type.
 */
import { AgentId, MailboxStatus, NatsExchangeFactory } from "../src/index.ts";
import type { NatsExchangeOptions, PoolBackend, UserExchangeClient } from "../src/index.ts";
import type { Logger } from "../src/util/logger.ts";
import { integerOption } from "./cli-options.ts";
import { NotFoundError, UsageError } from "./cli-output.ts";

/** The connection options of a command, as commander parsed them (camelCase keys). */
export interface ConnectionValues {
  servers?: string;
  prefix?: string;
  site?: string;
  domain?: string;
  /** Repeated `--remote-site` (a list), or the variable's comma-separated value (a string). */
  remoteSite?: string[] | string;
  creds?: string;
  user?: string;
  password?: string;
  token?: string;
  nkey?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  replicas?: string;
  inboxPrefix?: string;
}

/** The NATS exchange options the command line gives. */
export function exchangeOptions(values: ConnectionValues, name = "academy-cli"): NatsExchangeOptions {
  const servers = values.servers ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";
  const tlsFiles = { caFile: values.tlsCa, certFile: values.tlsCert, keyFile: values.tlsKey };
  const anyTls = values.tls === true || Object.values(tlsFiles).some((f) => f !== undefined);
  const { site, prefix } = values;
  if (site !== undefined && prefix !== undefined && prefix !== site) {
    throw new UsageError(`--site ${site} is the prefix ${site}; it cannot go with --prefix ${prefix}`);
  }
  const domain = values.domain ?? site;
  const sites = [values.remoteSite ?? []]
    .flat()
    .flatMap((spec) => spec.split(","))
    .map((spec) => spec.trim())
    .filter((spec) => spec !== "")
    .map((spec) => {
      const [siteName = "", siteDomain = siteName] = spec.split(":");
      return { name: siteName, domain: siteDomain };
    });
  if (sites.length > 0 && domain === undefined) throw new UsageError("--remote-site needs --site (or --domain): this process's own site");
  return {
    servers: servers.split(",").map((s) => s.trim()).filter((s) => s !== ""),
    prefix: site ?? prefix,
    ...(domain !== undefined && { domain }),
    ...(sites.length > 0 && { sites }),
    replicas: integerOption(values.replicas, "replicas"),
    credsFile: values.creds,
    user: values.user,
    password: values.password,
    token: values.token,
    nkeySeedFile: values.nkey,
    ...(anyTls && { tls: Object.fromEntries(Object.entries(tlsFiles).filter(([, v]) => v !== undefined)) }),
    connectionOptions: {
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      ...(values.inboxPrefix !== undefined && { inboxPrefix: values.inboxPrefix }),
    },
  };
}

/** The option a factory's `InvalidConfigError` names, as the command line spells it. */
export const FLAG_OF_OPTION: Readonly<Record<string, string>> = {
  credsFile: "--creds",
  nkeySeedFile: "--nkey",
  user: "--user",
  password: "--password",
  token: "--token",
  "tls.caFile": "--tls-ca",
  "tls.certFile": "--tls-cert",
  "tls.keyFile": "--tls-key",
  prefix: "--prefix",
  replicas: "--replicas",
};

/**
 * Run `use` with a factory for the exchange the options name, opened as it is (nothing is
 * created), then close it.
 */
export async function withExchange<T>(values: ConnectionValues, use: (factory: NatsExchangeFactory) => Promise<T>, logger?: Logger): Promise<T> {
  // A command is short-lived: it leaves relaying between sites to the sites' long-running processes.
  const factory = new NatsExchangeFactory({
    ...exchangeOptions(values),
    provision: false,
    relay: false,
    retryWindowMs: 5_000,
    ...(logger !== undefined && { logger }),
  });
  try {
    return await use(factory);
  } finally {
    await factory.close();
  }
}

/** Run `use` with a user client of the exchange (its mailbox is terminated when it closes). */
export async function withClient<T>(values: ConnectionValues, use: (client: UserExchangeClient, factory: NatsExchangeFactory) => Promise<T>): Promise<T> {
  return withExchange(values, async (factory) => {
    const client = await factory.createUserClient({ name: "academy-cli" });
    try {
      return await use(client, factory);
    } finally {
      await client.close();
    }
  });
}

const UID = /^[A-Za-z0-9_-]{1,64}$/;

/** What {@link resolveAgent} accepts besides active agents. */
export interface ResolveOptions {
  /** An agent given by id may be terminated (`status`, `terminate`). */
  readonly terminated?: boolean;
}

/**
 * The agent `ref` names: an agent id (uid; one registry read), else the display name of one active
 * agent (a registry listing), else the type of one active agent (`discover`, subclasses included).
 * @throws {NotFoundError} when nothing matches.
 * @throws {UsageError} when several agents match (their ids are listed).
 */
export async function resolveAgent(backend: PoolBackend, client: UserExchangeClient, ref: string, options: ResolveOptions = {}): Promise<AgentId> {
  // An id is one registry read; names need the registry listing.
  let idStatus: MailboxStatus = MailboxStatus.Missing;
  if (UID.test(ref)) {
    idStatus = await backend.mailboxStatus(ref);
    if (idStatus === MailboxStatus.Active || (idStatus === MailboxStatus.Terminated && options.terminated === true)) return new AgentId(ref);
  }
  const records = await backend.listMailboxes();
  const named = records.filter((r) => r.role === "agent" && r.status === MailboxStatus.Active && r.name === ref).map((r) => new AgentId(r.uid, r.name ?? undefined));
  const typed = await client.discover(ref);
  const found = new Map([...named, ...typed].map((id) => [id.uid, id]));
  if (found.size === 1) return [...found.values()][0]!;
  if (found.size > 1) {
    const ids = [...found.keys()];
    throw new UsageError(
      `'${ref}' names ${ids.length} active agents (${ids.slice(0, 10).join(", ")}${ids.length > 10 ? ", ..." : ""}): give one agent id`,
    );
  }
  if (idStatus !== MailboxStatus.Missing) throw new NotFoundError(`agent ${ref} is ${idStatus}`);
  throw new NotFoundError(`no active agent has the id, name or type '${ref}'`);
}

/**
 * The options of the `academy` command and the environment variable each falls back to: one table
 * for the parser (commander), the help text and the check that deploy/ uses only options that
 * exist. Every option has an `ACADEMY_*` variable; a variable set to the empty string counts as
 * unset, and a boolean one counts as set unless it is `0`, `false` or `no`.
 */
import { Option } from "commander";
import { UsageError } from "./cli-output.ts";

/** One option: its flags as commander reads them, its variable and its help line. */
export interface CliOption {
  readonly flags: string;
  readonly env: string;
  readonly description: string;
  /** Values it may take (the help lists them; others are a usage error). */
  readonly choices?: readonly string[];
}

/** pino's levels: what `--log-level` takes. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** Every option of every command, by name (the long flag without dashes). */
export const CLI_OPTIONS = {
  // --- connection (every command but help) ---
  servers: { flags: "--servers <urls>", env: "ACADEMY_SERVERS", description: "NATS URLs, comma-separated (also NATS_URL) (default: nats://127.0.0.1:4222)" },
  prefix: { flags: "--prefix <prefix>", env: "ACADEMY_PREFIX", description: "prefix of the exchange's streams and buckets (default: academy)" },
  creds: { flags: "--creds <file>", env: "ACADEMY_CREDS", description: "NATS credentials file (user JWT and nkey seed)" },
  user: { flags: "--user <name>", env: "ACADEMY_USER", description: "NATS user name (with --password)" },
  password: { flags: "--password <password>", env: "ACADEMY_PASSWORD", description: "NATS password (prefer the variable: a command line is visible to other users)" },
  token: { flags: "--token <token>", env: "ACADEMY_TOKEN", description: "NATS authorization token (prefer the variable)" },
  nkey: { flags: "--nkey <file>", env: "ACADEMY_NKEY", description: "file holding an nkey seed (SU...)" },
  tls: { flags: "--tls", env: "ACADEMY_TLS", description: "require TLS (implied by the --tls-* options and tls:// URLs)" },
  "tls-ca": { flags: "--tls-ca <file>", env: "ACADEMY_TLS_CA", description: "CA certificate(s) to verify the server with (PEM)" },
  "tls-cert": { flags: "--tls-cert <file>", env: "ACADEMY_TLS_CERT", description: "TLS client certificate (PEM; with --tls-key)" },
  "tls-key": { flags: "--tls-key <file>", env: "ACADEMY_TLS_KEY", description: "the client certificate's key (PEM)" },
  "inbox-prefix": { flags: "--inbox-prefix <prefix>", env: "ACADEMY_INBOX_PREFIX", description: "subject prefix of every inbox of the connection, for users allowed to subscribe only under their own (default: _INBOX; docs/SECURITY.md)" },
  site: { flags: "--site <name>", env: "ACADEMY_SITE", description: "this process's edge site: prefix <name> in JetStream domain --domain (docs/EDGE.md)" },
  domain: { flags: "--domain <domain>", env: "ACADEMY_DOMAIN", description: "the site's JetStream domain (default: the site's name)" },
  "remote-site": { flags: "--remote-site <name[:domain]...>", env: "ACADEMY_REMOTE_SITES", description: "another site this process reaches; repeatable; the variable is comma-separated" },
  json: { flags: "--json", env: "ACADEMY_JSON", description: "print JSON instead of text" },
  "timeout-ms": { flags: "--timeout-ms <ms>", env: "ACADEMY_TIMEOUT_MS", description: "give up waiting for the agent after this long (default: 30000)" },

  // --- host ---
  pool: { flags: "--pool <name>", env: "ACADEMY_POOL", description: "host pool" },
  module: { flags: "--module <spec...>", env: "ACADEMY_MODULES", description: "agent module (path or package); repeatable; the variable is comma-separated" },
  capacity: { flags: "--capacity <n>", env: "ACADEMY_CAPACITY", description: "most agents run at once (default: 100)" },
  replicas: { flags: "--replicas <n>", env: "ACADEMY_REPLICAS", description: "replicas of created streams and buckets (default: 3 on a cluster of three or more servers, else 1)" },
  name: { flags: "--name <name>", env: "ACADEMY_HOST_NAME", description: "display name of the host (default: the machine's host name)" },
  "heartbeat-ms": { flags: "--heartbeat-ms <ms>", env: "ACADEMY_HEARTBEAT_MS", description: "heartbeat interval (default: 1000)" },
  "host-ttl-ms": { flags: "--host-ttl-ms <ms>", env: "ACADEMY_HOST_TTL_MS", description: "silent hosts are reaped after this long (default: 3000)" },
  "no-heartbeat-thread": { flags: "--no-heartbeat-thread", env: "ACADEMY_NO_HEARTBEAT_THREAD", description: "heartbeat from the event loop, not from a thread of its own (docs/HOSTS.md 5.1)" },
  "grace-ms": { flags: "--grace-ms <ms>", env: "ACADEMY_GRACE_MS", description: "drain deadline after SIGTERM (default: 30000)" },
  "health-port": { flags: "--health-port <port>", env: "ACADEMY_HEALTH_PORT", description: "serve /healthz, /readyz and /metrics (Prometheus) on this port" },
  "json-calls": { flags: "--json-calls", env: "ACADEMY_JSON_CALLS", description: "serve JSON calls to the modules' agent types: a NATS micro service per type (docs/PROTOCOL.md)" },
  "pid-file": { flags: "--pid-file <path>", env: "ACADEMY_PID_FILE", description: "write the host's pid here (signal that pid, not a wrapper's), removed at exit" },
  "log-level": { flags: "--log-level <level>", env: "ACADEMY_LOG_LEVEL", description: "pino level of the JSON logs on stdout (default: info)", choices: LOG_LEVELS },

  // --- dashboard ---
  port: { flags: "--port <port>", env: "ACADEMY_DASHBOARD_PORT", description: "port of the dashboard (default: 8080; 0 picks a free one)" },
  bind: { flags: "--bind <address>", env: "ACADEMY_DASHBOARD_BIND", description: "address to listen on, e.g. 0.0.0.0 for other machines (default: 127.0.0.1)" },

  // --- listings ---
  host: { flags: "--host <host id>", env: "ACADEMY_HOST", description: "only the agents of this host" },
  all: { flags: "--all", env: "ACADEMY_ALL", description: "terminated agents too" },

  // --- agents ---
  args: { flags: "--args <json array>", env: "ACADEMY_ARGS", description: "arguments as one JSON array (instead of positional JSON values)" },
  "agent-name": { flags: "--agent-name <name>", env: "ACADEMY_AGENT_NAME", description: "display name of the launched agent" },
  "max-retries": { flags: "--max-retries <n>", env: "ACADEMY_MAX_RETRIES", description: "restarts of the agent after a failure (default: 0)" },
  terminate: { flags: "--terminate", env: "ACADEMY_TERMINATE", description: "terminate the mailbox at shutdown (overrides the agent's config)" },
  "keep-mailbox": { flags: "--keep-mailbox", env: "ACADEMY_KEEP_MAILBOX", description: "keep the mailbox at shutdown, so the agent can run again (overrides the agent's config)" },
  "no-subclasses": { flags: "--no-subclasses", env: "ACADEMY_NO_SUBCLASSES", description: "only agents of exactly this type" },

  // --- dead letters ---
  kind: { flags: "--kind <kind>", env: "ACADEMY_DLQ_KIND", description: "mailbox, launch or event dead letters", choices: ["mailbox", "launch", "event"] },
  agent: { flags: "--agent <uid>", env: "ACADEMY_DLQ_AGENT", description: "dead letters of this mailbox" },
  reason: { flags: "--reason <code>", env: "ACADEMY_DLQ_REASON", description: "dead letters with this reason (an error code, e.g. DELIVERY_LIMIT)" },
  since: { flags: "--since <time>", env: "ACADEMY_DLQ_SINCE", description: "dead-lettered at or after: an ISO time, or an age such as 2h" },
  before: { flags: "--before <time>", env: "ACADEMY_DLQ_BEFORE", description: "dead-lettered before: an ISO time, or an age such as 7d" },
  limit: { flags: "--limit <n>", env: "ACADEMY_DLQ_LIMIT", description: "most dead letters listed (default: 100)" },
  "all-matching": { flags: "--all-matching", env: "ACADEMY_DLQ_ALL_MATCHING", description: "act on every dead letter the filters select (no ids given)" },

  // --- gc ---
  "older-than": { flags: "--older-than <age>", env: "ACADEMY_GC_OLDER_THAN", description: "collect mailboxes terminated at least this long ago, e.g. 7d, 36h (at least 1h) (default: 7d)" },
  "agents-only": { flags: "--agents-only", env: "ACADEMY_GC_AGENTS_ONLY", description: "leave terminated user mailboxes (one per closed client) alone" },
  "dry-run": { flags: "--dry-run", env: "ACADEMY_DRY_RUN", description: "say what would be done; change nothing" },
} as const satisfies Record<string, CliOption>;

export type OptionName = keyof typeof CLI_OPTIONS;

/** Environment variable of each option (`module` reads a comma-separated list). */
export const CLI_ENV: Readonly<Record<OptionName, string>> = Object.fromEntries(
  Object.entries(CLI_OPTIONS).map(([name, o]) => [name, o.env]),
) as Record<OptionName, string>;

/** Options every command that connects takes. */
export const CONNECTION_OPTIONS: readonly OptionName[] = [
  "servers",
  "prefix",
  "site",
  "domain",
  "remote-site",
  "creds",
  "user",
  "password",
  "token",
  "nkey",
  "tls",
  "tls-ca",
  "tls-cert",
  "tls-key",
  "inbox-prefix",
];

/** The commander option for `name`. */
export function cliOption(name: OptionName, overrides: { description?: string; mandatory?: boolean } = {}): Option {
  const spec: CliOption = CLI_OPTIONS[name];
  const option = new Option(spec.flags, overrides.description ?? spec.description).env(spec.env);
  if (spec.choices !== undefined) option.choices(spec.choices);
  if (overrides.mandatory === true) option.makeOptionMandatory();
  return option;
}

/** Values of boolean variables that mean "not set". */
const FALSE = new Set(["", "0", "false", "no"]);

/**
 * Drop from `env` the variables of {@link CLI_OPTIONS} that mean "unset": empty ones, and boolean
 * ones set to `0`, `false` or `no` (commander treats any defined variable of a boolean as set).
 */
export function normaliseEnv(env: NodeJS.ProcessEnv): void {
  for (const spec of Object.values(CLI_OPTIONS) as CliOption[]) {
    const value = env[spec.env];
    if (value === undefined) continue;
    const boolean = !spec.flags.includes("<");
    if (value === "" || (boolean && FALSE.has(value.trim().toLowerCase()))) delete env[spec.env];
  }
}

/** A non-negative integer option. @throws {UsageError} otherwise. */
export function integerOption(value: string | undefined, name: OptionName): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || value.trim() === "") throw new UsageError(`--${name} must be a non-negative integer (got ${JSON.stringify(value)})`);
  return n;
}

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** A duration: `250ms`, `90s`, `15m`, `36h`, `7d`, `2w`, or plain milliseconds. @throws {UsageError} otherwise. */
export function durationOption(value: string, name: OptionName): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/.exec(value);
  if (m === null) throw new UsageError(`--${name} must be a duration such as 90s, 15m, 36h or 7d (got ${JSON.stringify(value)})`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? "ms"]!);
}

/** A point in time: an ISO date or time, or an age (`2h`: two hours ago). @throws {UsageError} otherwise. */
export function timeOption(value: string, name: OptionName, now = Date.now()): Date {
  if (/^\s*\d+(?:\.\d+)?\s*(ms|s|m|h|d|w)\s*$/.test(value)) return new Date(now - durationOption(value, name));
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new UsageError(`--${name} must be an ISO time or an age such as 2h (got ${JSON.stringify(value)})`);
  return time;
}

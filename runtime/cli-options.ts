/**
 * The options of the `academy` command and the environment variable each falls back to: one table
 * for the parser, the usage text and the check that deploy/ uses only options that exist.
 */
export const CLI_OPTIONS = {
  servers: { type: "string" },
  prefix: { type: "string" },
  creds: { type: "string" },
  site: { type: "string" },
  domain: { type: "string" },
  "remote-site": { type: "string", multiple: true },
  pool: { type: "string" },
  module: { type: "string", multiple: true },
  capacity: { type: "string" },
  replicas: { type: "string" },
  name: { type: "string" },
  "heartbeat-ms": { type: "string" },
  "host-ttl-ms": { type: "string" },
  "grace-ms": { type: "string" },
  "health-port": { type: "string" },
  "log-level": { type: "string" },
  host: { type: "string" },
  all: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

/** Environment variable of each option that has one (`module` and `remote-site` read comma-separated lists). */
export const CLI_ENV: Readonly<Partial<Record<keyof typeof CLI_OPTIONS, string>>> = {
  servers: "ACADEMY_SERVERS",
  prefix: "ACADEMY_PREFIX",
  creds: "ACADEMY_CREDS",
  site: "ACADEMY_SITE",
  domain: "ACADEMY_DOMAIN",
  "remote-site": "ACADEMY_REMOTE_SITES",
  pool: "ACADEMY_POOL",
  module: "ACADEMY_MODULES",
  capacity: "ACADEMY_CAPACITY",
  replicas: "ACADEMY_REPLICAS",
  name: "ACADEMY_HOST_NAME",
  "heartbeat-ms": "ACADEMY_HEARTBEAT_MS",
  "host-ttl-ms": "ACADEMY_HOST_TTL_MS",
  "grace-ms": "ACADEMY_GRACE_MS",
  "health-port": "ACADEMY_HEALTH_PORT",
  "log-level": "ACADEMY_LOG_LEVEL",
};

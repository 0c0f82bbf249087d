/**
 * academy-nats/runtime: runtime hosts, for programs that embed a host instead of running the
 * `academy host` command.
 */
export { HostState, RuntimeHost } from "./host.ts";
export type { RuntimeHostOptions } from "./host.ts";
export { listAgentRows, listHostRows } from "./listing.ts";
export type { AgentRow, HostRow } from "./listing.ts";

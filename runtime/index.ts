/**
 * academy-nats/runtime: runtime hosts, for programs that embed a host instead of running the
 * `academy host` command.
 */
export { HostState } from "./host-core.ts";
export { RuntimeHost } from "./host.ts";
export type { RuntimeHostOptions } from "./host-options.ts";
export { listAgentRows, listHostRows } from "./listing.ts";
export type { AgentRow, HostRow } from "./listing.ts";

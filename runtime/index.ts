/**
 * academy-nats/runtime: runtime hosts and the dashboard, for programs that embed them instead of
 * running the `academy host` and `academy dashboard` commands.
 */
export { HostState } from "./host-core.ts";
export { RuntimeHost } from "./host.ts";
export type { RuntimeHostOptions } from "./host-options.ts";
export { listAgentRows, listHostRows } from "./listing.ts";
export type { AgentRow, HostRow } from "./listing.ts";
export { Dashboard } from "./dashboard.ts";
export type { DashboardOptions } from "./dashboard.ts";

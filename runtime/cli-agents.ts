/**
 * The `academy` commands that act on agents: `call`, `ping`, `describe` and `shutdown` through a
 * handle of a user client; `discover`, `status` and `terminate` through the exchange client;
 * `launch` through a `HostPoolExecutor`. None of them creates streams or buckets.
 */
import { HostPoolExecutor, Manager, MailboxStatus } from "../src/index.ts";
import type { AgentDescription, AgentId, PoolBackend, UserExchangeClient } from "../src/index.ts";
import { resolveAgent, withClient } from "./cli-connection.ts";
import type { ConnectionValues, ResolveOptions } from "./cli-connection.ts";
import { integerOption } from "./cli-options.ts";
import { ExitCode, UsageError, formatTable, toJson } from "./cli-output.ts";
import type { Output } from "./cli-output.ts";

/** Options of the agent commands, as commander parsed them. */
export interface AgentValues extends ConnectionValues {
  json?: boolean;
  timeoutMs?: string;
  args?: string;
  pool?: string;
  agentName?: string;
  maxRetries?: string;
  terminate?: boolean;
  keepMailbox?: boolean;
  subclasses?: boolean;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function timeoutMs(values: AgentValues): number {
  return integerOption(values.timeoutMs, "timeout-ms") ?? DEFAULT_TIMEOUT_MS;
}

/**
 * Action arguments: `--args` (one JSON array), else each positional parsed as JSON, falling back
 * to the text itself (so `greet ada` passes the string "ada"; quote JSON strings that look like
 * numbers: `'"42"'`).
 */
export function parseArgs(positional: readonly string[], args: string | undefined): unknown[] {
  if (args !== undefined) {
    if (positional.length > 0) throw new UsageError("give the arguments either as --args or as positional values, not both");
    let parsed: unknown;
    try {
      parsed = JSON.parse(args);
    } catch (error) {
      throw new UsageError(`--args must be a JSON array: ${(error as Error).message}`);
    }
    if (!Array.isArray(parsed)) throw new UsageError("--args must be a JSON array");
    return parsed;
  }
  return positional.map((text) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  });
}

/** Run `use` with the agent `ref` names, a user client and the pool backend. */
async function withAgent<T>(
  values: AgentValues,
  ref: string,
  use: (agent: AgentId, client: UserExchangeClient, backend: PoolBackend) => Promise<T>,
  options: ResolveOptions = {},
): Promise<T> {
  return withClient(values, async (client, factory) => {
    const backend = await factory.poolBackend();
    return use(await resolveAgent(backend, client, ref, options), client, backend);
  });
}

/** `academy call <agent> <action> [args...]`: print what the action returns. */
export async function callAction(output: Output, ref: string, action: string, positional: string[], values: AgentValues): Promise<number> {
  const args = parseArgs(positional, values.args);
  return withAgent(values, ref, async (agentId, client) => {
    const result = await client.getHandle(agentId).invoke(action, args, { timeoutMs: timeoutMs(values) });
    output.out(values.json === true ? toJson({ agentId: agentId.uid, action, result }) : toJson(result));
    return ExitCode.Ok;
  });
}

/** `academy ping <agent>`: the round trip, in ms. */
export async function ping(output: Output, ref: string, values: AgentValues): Promise<number> {
  return withAgent(values, ref, async (agentId, client) => {
    const rttMs = await client.getHandle(agentId).ping({ timeoutMs: timeoutMs(values) });
    output.out(values.json === true ? toJson({ agentId: agentId.uid, rttMs }) : `${agentId.uid}: answered in ${rttMs.toFixed(1)} ms`);
    return ExitCode.Ok;
  });
}

/** `academy describe <agent>`: its type, ancestry and actions. */
export async function describe(output: Output, ref: string, values: AgentValues): Promise<number> {
  return withAgent(values, ref, async (agentId, client) => {
    const description = (await client.getHandle(agentId).invoke("agentDescribe", [], { timeoutMs: timeoutMs(values) })) as AgentDescription;
    if (values.json === true) {
      output.out(toJson({ agentId: agentId.uid, ...description }));
      return ExitCode.Ok;
    }
    const lines = [`${agentId.uid}: ${description.chain.join(" < ")}`];
    if (description.description !== undefined) lines.push(description.description);
    lines.push("", formatTable(description.actions, [
      ["ACTION", (a) => `${a.name}(${a.parameters})`],
      ["DESCRIPTION", (a) => a.description],
    ]));
    output.out(lines.join("\n"));
    return ExitCode.Ok;
  });
}

/** `academy discover <type>`: ids of the active agents of a type (and its subclasses). */
export async function discover(output: Output, type: string, values: AgentValues): Promise<number> {
  return withClient(values, async (client) => {
    const ids = await client.discover(type, { allowSubclasses: values.subclasses !== false });
    if (values.json === true) output.out(toJson(ids.map((id) => ({ agentId: id.uid, name: id.name }))));
    else if (ids.length > 0) output.out(ids.map((id) => (id.name === undefined ? id.uid : `${id.uid}  ${id.name}`)).join("\n"));
    return ExitCode.Ok;
  });
}

/** `academy status <agent>`: mailbox status, with the agent's placement when it runs on a pool. */
export async function status(output: Output, ref: string, values: AgentValues): Promise<number> {
  return withAgent(
    values,
    ref,
    async (agentId, client, backend) => {
      const mailbox = await client.status(agentId);
      const placement = (await backend.placementsOf(agentId.uid)).sort((a, b) => b.updatedAt - a.updatedAt)[0];
      const row = {
        agentId: agentId.uid,
        name: agentId.name,
        status: mailbox,
        placement: placement?.state,
        pool: placement?.pool,
        host: placement?.host ?? undefined,
        attempt: placement?.attempt,
      };
      if (values.json === true) output.out(toJson(row));
      else {
        output.out(formatTable([row], [
          ["AGENT", (r) => r.agentId],
          ["NAME", (r) => r.name],
          ["STATUS", (r) => r.status],
          ["PLACEMENT", (r) => r.placement],
          ["POOL", (r) => r.pool],
          ["HOST", (r) => r.host],
          ["RETRIES", (r) => r.attempt],
        ]));
      }
      return mailbox === MailboxStatus.Missing ? ExitCode.NotFound : ExitCode.Ok;
    },
    { terminated: true },
  );
}

/**
 * `academy shutdown <agent>`: ask it to stop. Only sends, as `Handle.shutdown` does: the request
 * is in the agent's mailbox when this returns; the agent reads it once started, then stops.
 */
export async function shutdown(output: Output, ref: string, values: AgentValues): Promise<number> {
  if (values.terminate === true && values.keepMailbox === true) throw new UsageError("give --terminate or --keep-mailbox, not both");
  const terminate = values.terminate === true ? true : values.keepMailbox === true ? false : undefined;
  return withAgent(values, ref, async (agentId, client) => {
    await client.getHandle(agentId).shutdown({ terminate });
    output.out(values.json === true ? toJson({ agentId: agentId.uid, shutdown: "requested" }) : `${agentId.uid}: shutdown requested`);
    return ExitCode.Ok;
  });
}

/** `academy terminate <agent>`: terminate its mailbox (requests waiting in it are answered with an error). */
export async function terminate(output: Output, ref: string, values: AgentValues): Promise<number> {
  return withAgent(
    values,
    ref,
    async (agentId, client) => {
      await client.terminate(agentId);
      output.out(values.json === true ? toJson({ agentId: agentId.uid, status: MailboxStatus.Terminated }) : `${agentId.uid}: terminated`);
      return ExitCode.Ok;
    },
    { terminated: true },
  );
}

/**
 * `academy launch <type> --pool <pool> [args...]`: launch an agent by type name on a host pool,
 * print its id, and leave it running (the command's manager detaches it before closing).
 */
export async function launch(output: Output, type: string, positional: string[], values: AgentValues): Promise<number> {
  const pool = values.pool;
  if (pool === undefined) throw new UsageError("academy launch needs --pool <name> (or ACADEMY_POOL)");
  const args = parseArgs(positional, values.args);
  const maxRetries = integerOption(values.maxRetries, "max-retries");
  return withClient(values, async (_client, factory) => {
    const manager = await Manager.fromExchangeFactory(factory, { executors: { [pool]: new HostPoolExecutor({ pool }) } });
    try {
      const handle = await manager.launch(type, { executor: pool, args, name: values.agentName, maxRetries });
      manager.detach(handle);
      const id = handle.agentId;
      output.out(values.json === true ? toJson({ agentId: id.uid, name: id.name, type, pool }) : id.uid);
      return ExitCode.Ok;
    } finally {
      await manager.close();
    }
  });
}


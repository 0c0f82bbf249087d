#!/usr/bin/env node
/**
 * `academy`: the command line of academy-nats (parsed by commander; `academy help` lists every
 * command, option and environment variable).
 *
 *   academy host --pool <name> --module <spec> [...]      serve a pool until SIGTERM
 *   academy hosts | agents                                 list hosts, agents
 *   academy call | ping | describe | shutdown <agent>      talk to an agent (through a handle)
 *   academy discover <type> | status | terminate <agent>   the registry (through the exchange client)
 *   academy launch <type> --pool <pool> [args...]          launch an agent on a host pool, by type name
 *   academy dlq list | show | replay | purge               dead letters
 *   academy gc [--older-than 7d] [--dry-run]               delete records of long-terminated mailboxes
 *   academy dashboard [--port 8080] [--bind 127.0.0.1]     serve a live page of the deployment
 *   academy state | reminders <agent>                      an agent's durable state, its reminders
 *
 * Every option also reads an `ACADEMY_*` environment variable, so that containers can be
 * configured without a command line. Exit codes: see `cli-output.ts` (0 done, 1 run-time error, 2
 * usage, 3 not found, 4 credentials refused, 5 timeout). Only `host` creates streams and buckets;
 * every other command opens the exchange as it is (a mistyped `--prefix` is exit code 3).
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { InvalidConfigError } from "../src/index.ts";
import { callAction, describe, discover, launch, ping, shutdown, status, terminate } from "./cli-agents.ts";
import type { AgentValues } from "./cli-agents.ts";
import { FLAG_OF_OPTION, withExchange } from "./cli-connection.ts";
import type { ConnectionValues } from "./cli-connection.ts";
import { listLetters, purgeLetters, replayLetters, showLetter } from "./cli-dlq.ts";
import type { DlqValues } from "./cli-dlq.ts";
import { runDashboard } from "./cli-dashboard.ts";
import type { DashboardValues } from "./cli-dashboard.ts";
import { gc } from "./cli-gc.ts";
import type { GcValues } from "./cli-gc.ts";
import { runHost } from "./cli-host.ts";
import { listReminders, showState } from "./cli-state.ts";
import type { StateValues } from "./cli-state.ts";
import type { HostValues } from "./cli-host.ts";
import { CONNECTION_OPTIONS, cliOption, normaliseEnv } from "./cli-options.ts";
import type { OptionName } from "./cli-options.ts";
import { ExitCode, UsageError, printRows, processOutput, reportError } from "./cli-output.ts";
import type { Output } from "./cli-output.ts";
import { formatAge, listAgentRows, listHostRows } from "./listing.ts";
import { libraryVersion } from "./version.ts";

const AFTER_HELP = `
Agents are named by id, by display name, or by type (when one active agent matches).
Every option also reads the environment variable shown with it; NATS_URL stands in for ACADEMY_SERVERS.

Exit codes:
  0  done (a host: drained)
  1  an error at run time (the action raised, NATS unreachable, a forced stop)
  2  bad usage or configuration
  3  not found: no such agent, mailbox, dead letter, or no exchange under --prefix; or the agent is terminated
  4  the NATS server refused the credentials
  5  timed out waiting for an agent

Only 'academy host' creates streams and buckets; the other commands use the exchange as it is.
Run hosts with node directly (node dist/runtime/cli.js host ...), not through npx or npm run:
a signal sent to a wrapper does not reach the host, which then never drains.`;

const HOST_HELP = `
SIGTERM (or SIGINT) drains a host: it takes no new launches, hands its agents to the other hosts of
the pool, and exits 0. A second signal, or --grace-ms passing, forces the exit (code 1); the pool
then restarts the remaining agents after --host-ttl-ms.`;

/** Add `names` to `command`, and the connection options. */
function withOptions(command: Command, names: readonly OptionName[], mandatory: readonly OptionName[] = []): Command {
  for (const name of [...names, ...CONNECTION_OPTIONS]) command.addOption(cliOption(name, { mandatory: mandatory.includes(name) }));
  return command;
}

/** The program, with each command's action storing its exit code in `result`. */
function program(output: Output, result: { code: number; json: boolean }): Command {
  const root = new Command("academy")
    .description(`academy ${libraryVersion()}: agents on NATS JetStream`)
    .version(libraryVersion(), "-v, --version", "print the version")
    .helpOption("-h, --help", "print help")
    .helpCommand("help [command]", "print help for a command")
    .addHelpText("after", AFTER_HELP)
    .showHelpAfterError("(academy help <command> lists its options)")
    .exitOverride()
    .configureOutput({ writeOut: (s) => output.out(s.trimEnd()), writeErr: (s) => output.err(s.trimEnd()) });

  /** A subcommand whose action returns its exit code. */
  const command = <V extends ConnectionValues & { json?: boolean }>(
    parent: Command,
    spec: string,
    description: string,
    options: readonly OptionName[],
    run: (...args: unknown[]) => Promise<number>,
  ): Command => {
    const sub = withOptions(parent.command(spec).description(description), options);
    sub.exitOverride().configureOutput({ writeOut: (s) => output.out(s.trimEnd()), writeErr: (s) => output.err(s.trimEnd()) });
    sub.action(async (...args: unknown[]) => {
      const values = args.at(-2) as V;
      result.json = values.json === true;
      result.code = await run(...args);
    });
    return sub;
  };

  command<HostValues>(root, "host", "serve a pool until SIGTERM: run the agents its launches ask for", [
    "pool", "module", "capacity", "replicas", "name", "heartbeat-ms", "host-ttl-ms", "no-heartbeat-thread", "grace-ms", "health-port", "json-calls", "pid-file", "log-level",
  ], (values) => runHost(values as HostValues)).addHelpText("after", HOST_HELP);

  command<DashboardValues>(root, "dashboard", "serve a live page of hosts, agents, dead letters and actions per second until SIGTERM", ["port", "bind", "log-level", "json"], (values) =>
    runDashboard(output, values as DashboardValues),
  );

  command(root, "hosts", "list hosts: pool, state (serving, draining, late), load, heartbeat age, machine, version", ["pool", "json"], async (values) => {
    const v = values as ConnectionValues & { pool?: string; json?: boolean };
    const rows = await withExchange(v, async (factory) => listHostRows(await factory.poolBackend(), { pool: v.pool }));
    printRows(output, v.json === true, rows, "hosts", [
      ["HOST", (r) => r.hostId],
      ["POOL", (r) => r.pool],
      ["STATE", (r) => r.state],
      ["LOAD", (r) => `${r.load}/${r.capacity}`],
      ["HEARTBEAT", (r) => `${formatAge(r.heartbeatAgeMs)} ago`],
      ["UP SINCE", (r) => r.startedAt],
      ["MACHINE", (r) => `${r.hostname}:${r.pid}`],
      ["VERSION", (r) => r.version],
    ]);
    return ExitCode.Ok;
  });

  command(root, "agents", "list agents: mailbox status, placement state, pool, host, retries", ["pool", "host", "all", "json"], async (values) => {
    const v = values as ConnectionValues & { pool?: string; host?: string; all?: boolean; json?: boolean };
    const rows = await withExchange(v, async (factory) => listAgentRows(await factory.poolBackend(), { pool: v.pool, host: v.host, all: v.all }));
    printRows(output, v.json === true, rows, "agents", [
      ["AGENT", (r) => r.agentId],
      ["NAME", (r) => r.name],
      ["TYPE", (r) => r.type],
      ["STATUS", (r) => r.status],
      ["PLACEMENT", (r) => r.placement],
      ["POOL", (r) => r.pool],
      ["HOST", (r) => r.host],
      ["RETRIES", (r) => r.attempt],
    ]);
    return ExitCode.Ok;
  });

  command(root, "call <agent> <action> [args...]", "call an action and print what it returns (args: JSON values; text that is not JSON is a string)", ["args", "timeout-ms", "json"], (agent, action, args, values) =>
    callAction(output, agent as string, action as string, args as string[], values as AgentValues),
  );
  command(root, "ping <agent>", "ping an agent: the round trip in ms", ["timeout-ms", "json"], (agent, values) => ping(output, agent as string, values as AgentValues));
  command(root, "describe <agent>", "an agent's type, ancestry and actions (its agentDescribe action)", ["timeout-ms", "json"], (agent, values) =>
    describe(output, agent as string, values as AgentValues),
  );
  command(root, "discover <type>", "ids of the active agents of a type (and of its subclasses)", ["no-subclasses", "json"], (type, values) =>
    discover(output, type as string, values as AgentValues),
  );
  command(root, "status <agent>", "an agent's mailbox status (active, terminated), and its placement on a pool", ["json"], (agent, values) =>
    status(output, agent as string, values as AgentValues),
  );
  command(root, "launch <type> [args...]", "launch an agent of a type on a host pool and print its id (args: JSON values)", ["pool", "args", "agent-name", "max-retries", "json"], (type, args, values) =>
    launch(output, type as string, args as string[], values as AgentValues),
  );
  command(root, "shutdown <agent>", "ask an agent to shut down (the request is sent; the agent stops once it reads it)", ["terminate", "keep-mailbox", "json"], (agent, values) =>
    shutdown(output, agent as string, values as AgentValues),
  );
  command(root, "terminate <agent>", "terminate an agent's mailbox: requests waiting in it are answered with an error", ["json"], (agent, values) =>
    terminate(output, agent as string, values as AgentValues),
  );

  command(root, "state <agent>", "an agent's durable state: its value, revision, owning run and the requests it remembers", ["json"], (agent, values) =>
    showState(output, agent as string, values as StateValues),
  );
  command(root, "reminders <agent>", "an agent's reminders: action, next due time, interval, misfire policy", ["json"], (agent, values) =>
    listReminders(output, agent as string, values as StateValues),
  );

  const dlq = root.command("dlq").description("dead letters: mailbox messages and launch requests that could not be handled").exitOverride();
  const filters: OptionName[] = ["kind", "agent", "pool", "reason", "since", "before"];
  command(dlq, "list", "list dead letters, oldest first", [...filters, "limit", "json"], (values) => listLetters(output, values as DlqValues));
  command(dlq, "show <id>", "one dead letter: headers and decoded body", ["json"], (id, values) => showLetter(output, id as string, values as DlqValues));
  command(dlq, "replay [ids...]", "put dead letters back in their mailbox or launch queue (kept when the mailbox is not active)", [...filters, "limit", "all-matching", "dry-run", "json"], (ids, values) =>
    replayLetters(output, ids as string[], values as DlqValues),
  );
  command(dlq, "purge [ids...]", "remove dead letters for good", [...filters, "limit", "all-matching", "dry-run", "json"], (ids, values) =>
    purgeLetters(output, ids as string[], values as DlqValues),
  );

  command(root, "gc", "delete the records of mailboxes terminated long ago, and their agents' final placements (see docs/OPERATIONS.md)", ["older-than", "agents-only", "dry-run", "json"], (values) =>
    gc(output, values as GcValues),
  );
  return root;
}

/**
 * Run the command line `argv` (without `node` and the script); returns the exit code.
 * @param output - where to print (the process's stdout and stderr by default).
 */
export async function main(argv: readonly string[], output: Output = processOutput): Promise<number> {
  normaliseEnv(process.env);
  const result = { code: ExitCode.Ok as number, json: argv.includes("--json") || process.env.ACADEMY_JSON !== undefined };
  const root = program(output, result);
  if (argv.length === 0) {
    root.outputHelp();
    return ExitCode.Usage;
  }
  try {
    await root.parseAsync([...argv], { from: "user" });
    return result.code;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    if (error instanceof InvalidConfigError && error.option !== undefined && FLAG_OF_OPTION[error.option] !== undefined) {
      // The exchange read the option's file or value; say what went wrong in the command's terms.
      const flag = FLAG_OF_OPTION[error.option]!;
      const cause = (error.cause as Error | undefined)?.message;
      return reportError(output, new UsageError(/^Cannot read/.test(error.message) && cause !== undefined ? `cannot read ${flag} ${fileOf(error.message)}: ${cause}` : `${flag}: ${error.message}`), result.json);
    }
    return reportError(output, error, result.json);
  }
}

/** The path in "Cannot read the <what> <path>: <reason>". */
function fileOf(message: string): string {
  const m = /^Cannot read the .*? (\S+): /.exec(message);
  return m?.[1] ?? "";
}

/** Whether this module is the program being run (the bin through its link, node, tsx), not an import. */
function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMain()) {
  process.exitCode = await main(process.argv.slice(2));
  // Open handles (a NATS connection being closed, timers) must not keep a finished command alive.
  setTimeout(() => process.exit(), 100).unref();
}

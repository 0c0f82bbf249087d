/**
 * `academy state <agent>` and `academy reminders <agent>`: an agent's durable state record and
 * its reminders (docs/STATE.md), read from the exchange's stores (`ExchangeFactory.stateStore`,
 * `reminderStore`). Neither creates a bucket: on a prefix where no agent kept state or set a
 * reminder they find nothing.
 */
import { decodeStateRecord, reminderInfo } from "../src/index.ts";
import { decodeValue } from "../src/protocol/codec.ts";
import { resolveAgent, withClient } from "./cli-connection.ts";
import type { ConnectionValues } from "./cli-connection.ts";
import { ExitCode, NotFoundError, printRows, toJson } from "./cli-output.ts";
import type { Output } from "./cli-output.ts";

/** Options of the state commands, as commander parsed them. */
export interface StateValues extends ConnectionValues {
  json?: boolean;
}

/** `academy state <agent>`: the agent's state record (value, revision, owner, remembered requests). */
export async function showState(output: Output, ref: string, values: StateValues): Promise<number> {
  return withClient(values, async (client, factory) => {
    const agentId = await resolveAgent(await factory.poolBackend(), client, ref, { terminated: true });
    const stored = await (await factory.stateStore()).get(agentId.uid);
    if (stored === undefined) throw new NotFoundError(`agent ${agentId.uid} has no durable state`);
    const record = decodeStateRecord(stored.bytes);
    const view = {
      agentId: agentId.uid,
      revision: stored.revision,
      owner: record.owner,
      savedAt: new Date(record.savedAt).toISOString(),
      value: record.value === undefined ? undefined : decodeValue(record.value),
      applied: record.applied.map((a) => ({ tag: a.tag, at: new Date(a.at).toISOString(), responseRecorded: a.response !== undefined })),
    };
    if (values.json === true) {
      output.out(toJson(view));
      return ExitCode.Ok;
    }
    const latest = view.applied.at(-1);
    output.out(
      [
        `${view.agentId}: revision ${view.revision}, saved ${view.savedAt}, owner ${view.owner}`,
        view.value === undefined ? "(no value saved yet)" : toJson(view.value),
        `requests remembered: ${view.applied.length}${latest === undefined ? "" : ` (latest ${latest.tag} at ${latest.at})`}`,
      ].join("\n"),
    );
    return ExitCode.Ok;
  });
}

/** `academy reminders <agent>`: the agent's reminders, by name. */
export async function listReminders(output: Output, ref: string, values: StateValues): Promise<number> {
  return withClient(values, async (client, factory) => {
    const agentId = await resolveAgent(await factory.poolBackend(), client, ref, { terminated: true });
    const reminders = (await (await factory.reminderStore()).list(agentId.uid)).map(reminderInfo).sort((a, b) => a.name.localeCompare(b.name));
    const rows = reminders.map((r) => ({ ...r, due: new Date(r.dueAt).toISOString() }));
    if (values.json === true) {
      output.out(toJson(rows.map((r) => ({ agentId: agentId.uid, name: r.name, action: r.action, dueAt: r.due, everyMs: r.everyMs, misfire: r.misfire, payload: r.payload }))));
      return ExitCode.Ok;
    }
    printRows(output, false, rows, "reminders", [
      ["NAME", (r) => r.name],
      ["ACTION", (r) => r.action],
      ["NEXT DUE", (r) => r.due],
      ["EVERY", (r) => (r.everyMs === undefined ? "once" : `${r.everyMs} ms`)],
      ["MISFIRE", (r) => r.misfire],
    ]);
    return ExitCode.Ok;
  });
}

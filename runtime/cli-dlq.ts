/**
 * `academy dlq list|show|replay|purge`: the dead letters of the exchange (mailbox messages and
 * launch requests that could not be handled), through the exchange's `DeadLetterStore`.
 * `replay` and `purge` act on the ids given, or on every letter the filters select when
 * `--all-matching` says so; `--dry-run` shows what they would do.
 */
import { decodeMessage, decodeValue } from "../src/protocol/codec.ts";
import { decodeLaunchRequest } from "../src/pool/records.ts";
import type { DeadLetter, DeadLetterFilter, DeadLetterKind, DeadLetterStore } from "../src/exchange/dead-letters.ts";
import { withExchange } from "./cli-connection.ts";
import type { ConnectionValues } from "./cli-connection.ts";
import { integerOption, timeOption } from "./cli-options.ts";
import { ExitCode, NotFoundError, UsageError, printRows, toJson } from "./cli-output.ts";
import type { Output } from "./cli-output.ts";

/** Options of the `dlq` commands, as commander parsed them. */
export interface DlqValues extends ConnectionValues {
  json?: boolean;
  kind?: DeadLetterKind;
  agent?: string;
  pool?: string;
  reason?: string;
  since?: string;
  before?: string;
  limit?: string;
  allMatching?: boolean;
  dryRun?: boolean;
}

const DEFAULT_LIMIT = 100;

/** The filter the options select. */
export function dlqFilter(values: DlqValues, limit: number | undefined): DeadLetterFilter {
  if (values.agent !== undefined && values.pool !== undefined) throw new UsageError("give --agent (mailbox letters) or --pool (launch letters), not both");
  return {
    ...(values.kind !== undefined && { kind: values.kind }),
    ...(values.agent !== undefined && { mailbox: values.agent }),
    ...(values.pool !== undefined && { pool: values.pool }),
    ...(values.reason !== undefined && { reason: values.reason }),
    ...(values.since !== undefined && { since: timeOption(values.since, "since") }),
    ...(values.before !== undefined && { before: timeOption(values.before, "before") }),
    ...(limit !== undefined && { limit }),
  };
}

async function withLetters<T>(values: DlqValues, use: (store: DeadLetterStore) => Promise<T>): Promise<T> {
  return withExchange(values, async (factory) => use(await factory.deadLetters()));
}

/** A letter without its bytes, for listings. */
function summary(letter: DeadLetter): Record<string, unknown> {
  return {
    id: letter.id,
    kind: letter.kind,
    mailbox: letter.mailbox,
    pool: letter.pool,
    agent: letter.agent,
    ...(letter.handler !== undefined && { handler: letter.handler, subject: letter.originalSubject }),
    time: letter.time.toISOString(),
    reason: letter.reason,
    error: letter.error,
    size: letter.data.byteLength,
  };
}

/** `academy dlq list`: the letters the filters select, oldest first. */
export async function listLetters(output: Output, values: DlqValues): Promise<number> {
  const limit = integerOption(values.limit, "limit") ?? DEFAULT_LIMIT;
  const letters = await withLetters(values, (store) => store.list(dlqFilter(values, limit)));
  printRows(output, values.json === true, letters.map(summary), "dead letters", [
    ["ID", (r) => r.id],
    ["KIND", (r) => r.kind],
    ["MAILBOX/POOL", (r) => r.mailbox ?? r.pool],
    ["TIME", (r) => r.time],
    ["REASON", (r) => r.reason],
    ["ERROR", (r) => truncate(String(r.error ?? ""), 60)],
  ]);
  return ExitCode.Ok;
}

/** `academy dlq show <id>`: one letter, its headers and its body decoded where it can be. */
export async function showLetter(output: Output, id: string, values: DlqValues): Promise<number> {
  const letter = await withLetters(values, (store) => store.get(letterId(id)));
  if (letter === undefined) throw new NotFoundError(`no dead letter ${id}`);
  const shown = { ...summary(letter), originalSubject: letter.originalSubject, headers: letter.headers, body: decodeBody(letter) };
  if (values.json === true) output.out(toJson(shown));
  else {
    const { headers, body, ...fields } = shown;
    output.out(
      [
        ...Object.entries(fields).flatMap(([k, v]) => (v === undefined ? [] : [`${k}: ${String(v)}`])),
        "headers:",
        ...Object.entries(headers).map(([k, v]) => `  ${k}: ${v}`),
        "body:",
        toJson(body),
      ].join("\n"),
    );
  }
  return ExitCode.Ok;
}

/** The letter's body: a decoded message or launch request (its arguments decoded), an event's text, else base64. */
function decodeBody(letter: DeadLetter): unknown {
  try {
    if (letter.kind === "event") return { event: new TextDecoder("utf-8", { fatal: true }).decode(letter.data) };
    if (letter.kind === "launch") {
      const request = decodeLaunchRequest(letter.data);
      return { ...request, args: decodeValue(request.args) };
    }
    return decodeMessage(letter.data);
  } catch (error) {
    return { undecodable: (error as Error).message, base64: Buffer.from(letter.data).toString("base64") };
  }
}

/** The letters a replay or purge acts on: the ids given, or (with `--all-matching`) the filter's. */
async function targets(store: DeadLetterStore, ids: readonly string[], values: DlqValues, verb: string): Promise<number[]> {
  if (ids.length > 0) {
    if (values.allMatching === true) throw new UsageError(`give ids or --all-matching, not both`);
    return ids.map(letterId);
  }
  if (values.allMatching !== true) throw new UsageError(`academy dlq ${verb} needs dead letter ids, or --all-matching to ${verb} every letter the filters select`);
  return (await store.list(dlqFilter(values, integerOption(values.limit, "limit")))).map((l) => l.id);
}

/** `academy dlq replay`: put letters back where they were; refused ones are kept. Exit 1 if any was refused, 3 if any was missing. */
export async function replayLetters(output: Output, ids: string[], values: DlqValues): Promise<number> {
  return withLetters(values, async (store) => {
    const results: Array<{ id: number; replayed: boolean; refusal?: string; detail?: string }> = [];
    for (const id of await targets(store, ids, values, "replay")) {
      if (values.dryRun === true) {
        const letter = await store.get(id);
        results.push(letter === undefined ? { id, replayed: false, refusal: "missing", detail: `no dead letter ${id}` } : { id, replayed: false, detail: `would replay to ${letter.originalSubject ?? "?"}` });
        continue;
      }
      const result = await store.replay(id);
      results.push(result.replayed ? { id, replayed: true } : { id, replayed: false, refusal: result.refusal, detail: result.detail });
    }
    printRows(output, values.json === true, results, "dead letters selected", [
      ["ID", (r) => r.id],
      ["REPLAYED", (r) => (r.replayed ? "yes" : "no")],
      ["DETAIL", (r) => r.detail],
    ]);
    if (results.some((r) => r.refusal === "missing")) return ExitCode.NotFound;
    return results.some((r) => r.refusal !== undefined) ? ExitCode.Failed : ExitCode.Ok;
  });
}

/** `academy dlq purge`: remove letters for good. Exit 3 if an id given was not there. */
export async function purgeLetters(output: Output, ids: string[], values: DlqValues): Promise<number> {
  return withLetters(values, async (store) => {
    const results: Array<{ id: number; removed: boolean }> = [];
    for (const id of await targets(store, ids, values, "purge")) {
      results.push({ id, removed: values.dryRun === true ? (await store.get(id)) !== undefined : await store.remove(id) });
    }
    if (values.json === true) output.out(toJson({ dryRun: values.dryRun === true, results }));
    else {
      const removed = results.filter((r) => r.removed).length;
      output.out(`${values.dryRun === true ? "would remove" : "removed"} ${removed} dead letter(s)${removed < results.length ? `; not found: ${results.filter((r) => !r.removed).map((r) => r.id).join(", ")}` : ""}`);
    }
    return ids.length > 0 && results.some((r) => !r.removed) ? ExitCode.NotFound : ExitCode.Ok;
  });
}

function letterId(text: string): number {
  const id = Number(text);
  if (!Number.isInteger(id) || id < 1) throw new UsageError(`a dead letter id is a positive integer (got ${JSON.stringify(text)})`);
  return id;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

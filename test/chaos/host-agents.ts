/**
 * The agent the host-kill scenario launches on runtime hosts in child processes. Each completed
 * run of `long` is recorded in the ledger named by `CHAOS_LEDGER` (inherited from the scenario);
 * a long run (ms > 0) that starts prints `LONG-START <id>` on stdout, so the scenario knows when to kill.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, action } from "../../src/index.ts";
import { recordExecution } from "./ledger.ts";

export class LongProbe extends Agent {
  @action async long(id: string, ms: number): Promise<{ id: string; pid: number }> {
    if (ms > 0) process.stdout.write(`LONG-START ${id} ${process.pid}\n`);
    await sleep(ms);
    recordExecution(process.env["CHAOS_LEDGER"]!, id);
    return { id, pid: process.pid };
  }
}

/**
 * Agent classes the benchmark hosts serve (`academy host --module bench/agents.ts`), and the
 * in-process scenarios launch.
 */
import { Agent, action } from "../src/index.ts";

/** Returns what it is sent. */
export class BenchEcho extends Agent {
  @action async echo(payload: Uint8Array): Promise<Uint8Array> {
    return payload;
  }

  /** The id of the process running this agent (which host it is on). */
  @action async where(): Promise<number> {
    return process.pid;
  }
}

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

/** Streams `n` copies of a `size`-byte payload (the streaming scenario). */
export class BenchStreamer extends Agent {
  @action async *items(n: number, size: number): AsyncGenerator<Uint8Array> {
    const payload = new Uint8Array(size).fill(7);
    for (let i = 0; i < n; i++) yield payload;
  }
}

/**
 * Agent classes the benchmark hosts serve (`academy host --module bench/agents.ts`), and the
 * in-process scenarios launch.
 */
import { Agent, action, durableState } from "../src/index.ts";
import type { ReminderFire } from "../src/index.ts";

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

/** A counter without durable state: the baseline of the state scenario. */
export class BenchPlainCounter extends Agent {
  #count = 0;
  @action async increment(): Promise<number> {
    return ++this.#count;
  }
}

/** The same counter with durable state, saved at the end of every increment (docs/STATE.md). */
export class BenchStatefulCounter extends Agent {
  readonly state = durableState({ count: 0 });
  @action async increment(): Promise<number> {
    return ++this.state.value.count;
  }
}

/** When each reminder fire reached an agent of this process (ms since the epoch), by agent uid. */
export const reminderArrivals = new Map<string, { dueAt: number; arrivedAt: number }>();

/** Notes when its reminder fires (in-process scenarios only: the map is this process's). */
export class BenchReminded extends Agent {
  @action async onReminder(fire: ReminderFire): Promise<void> {
    reminderArrivals.set(this.agentId.uid, { dueAt: fire.dueAt, arrivedAt: Date.now() });
  }
}

/** Streams `n` copies of a `size`-byte payload (the streaming scenario). */
export class BenchStreamer extends Agent {
  @action async *items(n: number, size: number): AsyncGenerator<Uint8Array> {
    const payload = new Uint8Array(size).fill(7);
    for (let i = 0; i < n; i++) yield payload;
  }
}

/**
 * Loads the event loop of its host (the heartbeats scenario): a CPU-bound action that holds the
 * loop, and one that makes garbage while yielding to the loop (GC pressure, no blocking code).
 */
export class BenchLoad extends Agent {
  /** Busy-wait `ms` without yielding. */
  @action async spin(ms: number): Promise<void> {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // hold the event loop
    }
  }

  /**
   * Allocate for `ms`, yielding to the event loop every few ms: short-lived objects plus a
   * retained set of `retainMiB` replaced piecemeal (old-generation churn, so major collections).
   */
  @action async churn(ms: number, retainMiB: number): Promise<number> {
    const end = performance.now() + ms;
    const retained: unknown[] = new Array(retainMiB * 64);
    let made = 0;
    while (performance.now() < end) {
      const slice = performance.now() + 5;
      while (performance.now() < slice) {
        const chunk = Array.from({ length: 128 }, (_, i) => ({ i, s: `x${i}`, a: [i, i + 1] }));
        retained[made % retained.length] = new Array(2_048).fill(chunk); // about 16 KiB each
        made++;
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return made;
  }
}

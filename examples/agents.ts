/**
 * Agent classes for runtime hosts: `academy host --pool default --module ./examples/agents.ts`
 * (or `./dist/examples/agents.js` after `npm run build`, as deploy/ does). A host runs every
 * Agent subclass its modules export; launch them from a manager with a `HostPoolExecutor`.
 */
import { Agent, action, loop } from "../src/index.ts";

/** A counter that starts where its launcher says. */
export class Counter extends Agent {
  #count: number;
  constructor(start = 0) {
    super();
    this.#count = start;
  }
  @action async increment(by = 1): Promise<number> {
    this.#count += by;
    return this.#count;
  }
  @action async get(): Promise<number> {
    return this.#count;
  }
}

/** Answers with what it was sent, and where it runs. */
export class Echo extends Agent {
  @action async echo<T>(value: T): Promise<T> {
    return value;
  }
  @action async where(): Promise<{ pid: number; uptimeS: number }> {
    return { pid: process.pid, uptimeS: Math.round(process.uptime()) };
  }
}

/** Counts the seconds it has been running (a background loop). */
export class Clock extends Agent {
  #ticks = 0;
  @loop async tick(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      this.#ticks++;
    }
  }
  @action async ticks(): Promise<number> {
    return this.#ticks;
  }
}

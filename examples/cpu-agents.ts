/**
 * The agents of examples/cpu-workers.ts: a module of its own, because each worker thread imports
 * it to find the class (a class cannot cross threads; its type name does).
 */
import { Agent, action } from "../src/index.ts";

/** CPU-bound work: counts the primes below a bound, the slow way. */
export class PrimeCounter extends Agent {
  @action async countBelow(bound: number): Promise<number> {
    let count = 0;
    for (let n = 2; n < bound; n++) {
      let prime = true;
      for (let d = 2; d * d <= n; d++) {
        if (n % d === 0) {
          prime = false;
          break;
        }
      }
      if (prime) count++;
    }
    return count;
  }
}

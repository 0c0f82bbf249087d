/**
 * The seam between request dispatch and durable records of what requests did (docs/STATE.md
 * section 4, docs/ARCHITECTURE.md section 4): before an action runs, the dispatcher asks whether
 * its request was applied already; after it ends, and before its response is sent and its
 * delivery acknowledged, it has the outcome recorded. An agent's durable state implements it
 * (the state and the record of the request are one compare-and-set write, so a crash between
 * them cannot re-apply the request); a result record per request, for agents without state, is
 * another implementation of the same contract.
 */
import type { ResponseBody } from "../protocol/messages.ts";

/** What the dispatcher consults for requests that may have been applied already. */
export interface ActionOutcomes {
  /**
   * The outcome of request `tag` if it was applied already: its response, or `undefined` inside
   * the result when the action was applied but its response was not recorded (the process stopped
   * between a save inside the action and the action's end). `undefined` when not applied.
   */
  recorded(tag: string): { readonly response: ResponseBody | undefined } | undefined;
  /**
   * Record that request `tag` ended with `body`, durably, before its response is sent.
   * @throws {StateConflictError} when this run no longer owns the record: the request must not be
   *   answered (the agent's new home will run it) and the agent stops.
   * @throws other errors (`StateTooLargeError`): the caller is answered with that error instead.
   */
  record(tag: string, body: ResponseBody): Promise<void>;
}

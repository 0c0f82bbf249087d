/**
 * The seam between request dispatch and an agent's durable state (docs/STATE.md section 4,
 * docs/ARCHITECTURE.md section 4): before an action runs, the dispatcher asks whether its request
 * was applied to the state already; after it ends, and before its response is sent and its
 * delivery acknowledged, the state and the request's mark (with its response) are written as one
 * compare-and-set, so a crash between them cannot re-apply the request. It sits beside the result
 * records of effectively-once execution (`ResultStore`): a request the state recorded needs no
 * result record, and a request that did not change the state (a read) gets its result record as
 * any other.
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
   * Record that request `tag` ended with `body`, durably, before its response is sent, if the
   * request changed what these outcomes keep (the state).
   * @returns whether it was recorded (then no result record is needed for it).
   * @throws {StateConflictError} when this run no longer owns the record: the request must not be
   *   answered (the agent's new home will run it) and the agent stops.
   * @throws other errors (`StateTooLargeError`): the caller is answered with that error instead.
   */
  record(tag: string, body: ResponseBody): Promise<boolean>;
}

/**
 * The agent side of one stream (docs/PROTOCOL.md section 15): pulls items from the action's async
 * generator only while the caller's credit allows, and sends them in `stream-items` frames, one
 * frame on its way at a time; the items yielded meanwhile go together in the next frame. So the
 * generator never runs more than the caller's window ahead of what the caller has taken, and a
 * fast generator costs one message per round trip to the exchange, not one per item.
 */
import { randomUUID } from "node:crypto";
import { PayloadTooLargeError } from "../errors.ts";
import { MessageType } from "../protocol/messages.ts";
import type { ResponseBody } from "../protocol/messages.ts";
import type { Logger } from "../util/logger.ts";

/** Most items in one frame (a frame also splits when its encoding exceeds the exchange's limit). */
export const MAX_FRAME_ITEMS = 4096;

/**
 * How long a stream waits for credit before it checks that its caller is still there, in ms: a
 * caller whose mailbox was terminated (or whose process died and whose mailbox an operator
 * removed) will never grant more, and its generator must not hold its slot for ever.
 */
export const STALL_CHECK_MS = 5_000;

/** How a stream's generator ended: its return value, after `count` items were sent. */
export interface StreamOutcome {
  readonly count: number;
  readonly result: unknown;
}

const ABORTED: unique symbol = Symbol("aborted");

/** Runs one streaming action's generator under the caller's credit. */
export class StreamPump {
  /**
   * This run of the generator, on every frame: a request delivered again after a crash runs
   * again with a new one, so its caller can tell the runs apart (docs/PROTOCOL.md 15.6).
   */
  readonly runId: string = randomUUID().slice(0, 13);
  readonly #send: (body: ResponseBody) => Promise<void>;
  readonly #logger: Logger;
  readonly #callerGone: () => Promise<Error | undefined>;
  /** Items numbered below this may be sent (the caller's cumulative credit). */
  #credit: number;
  /** Items pulled from the generator so far. */
  #pulled = 0;
  /** Items handed to the exchange (in frames that went out, or are on their way). */
  #sent = 0;
  /** Items sent successfully: what the stream's end reports. */
  #delivered = 0;
  #batch: unknown[] = [];
  #flushScheduled = false;
  #inFlight: Promise<void> | undefined;
  #failure: { error: unknown } | undefined;
  /** Resolves the pending `#race` with ABORTED. */
  #abortWaiter: (() => void) | undefined;
  /** Wakes the pump when credit arrives, a frame went out, or the signal aborts. */
  #wake: (() => void) | undefined;

  /**
   * @param window - the credit the request carried (items allowed before the first credit message).
   * @param send - sends a frame to the caller (through the `outboundResponse` interceptors).
   */
  /**
   * @param callerGone - whether the caller can no longer take the stream (its mailbox is not
   *   active); asked every {@link STALL_CHECK_MS} while the stream waits for credit.
   */
  constructor(window: number, send: (body: ResponseBody) => Promise<void>, logger: Logger, callerGone: () => Promise<Error | undefined> = async () => undefined) {
    this.#credit = window;
    this.#send = send;
    this.#logger = logger;
    this.#callerGone = callerGone;
  }

  /** Items sent to the caller so far (what an end frame written now reports as `count`). */
  get count(): number {
    return this.#delivered;
  }

  /** The caller allows items numbered below `credit` (cumulative; a smaller value is stale). */
  grant(credit: number): void {
    if (credit <= this.#credit) return;
    this.#credit = credit;
    this.#notify();
  }

  /**
   * Pull every item of `generator` under the credit and send it; resolves with its return value
   * once every item went out. When `signal` aborts, stops pulling at once, closes the generator
   * (its `finally` runs as soon as it is at a `yield`) and rejects with the signal's reason after
   * the frames on their way went out; a generator that throws rejects with its error, likewise.
   */
  async run(generator: AsyncGenerator<unknown, unknown, undefined>, signal: AbortSignal): Promise<StreamOutcome> {
    // One listener for the whole run: it wakes the pump wherever it waits (credit, or an item).
    const onAbort = (): void => {
      this.#notify();
      this.#abortWaiter?.();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    let pendingNext: Promise<IteratorResult<unknown, unknown>> | undefined;
    try {
      for (;;) {
        while (this.#pulled >= this.#credit && !signal.aborted && this.#failure === undefined) {
          if (await this.#sleep(STALL_CHECK_MS)) continue;
          const gone = await this.#callerGone().catch(() => undefined);
          if (gone !== undefined) throw gone;
        }
        this.#throwIfFailed();
        if (signal.aborted) break;
        pendingNext = generator.next();
        const step = await this.#race(pendingNext, signal);
        if (step === ABORTED) break;
        pendingNext = undefined;
        if (step.done === true) {
          await this.#drain();
          return { count: this.#delivered, result: step.value };
        }
        this.#pulled++;
        this.#batch.push(step.value);
        if (this.#batch.length >= MAX_FRAME_ITEMS) await this.#drain();
        else this.#scheduleFlush();
      }
    } catch (error) {
      // The generator threw (it is closed already), or a frame could not be sent (close it).
      await generator.return(undefined).catch(() => undefined);
      await this.#drainQuietly();
      throw error;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    // Aborted: close the generator so its finally runs. One still running its body (it ignored
    // the signal) is closed when it next yields; not waited for.
    if (pendingNext === undefined) await generator.return(undefined).catch((error: unknown) => this.#logger.debug({ err: error }, "stream generator failed while closing"));
    else void pendingNext.then(() => generator.return(undefined)).catch((error: unknown) => this.#logger.debug({ err: error }, "stream generator failed while closing"));
    this.#batch = [];
    await this.#drainQuietly();
    throw signal.reason;
  }

  /**
   * Send the batch once the items the generator yields without waiting (in this turn of the
   * event loop) have joined it: a generator that yields from memory fills a frame per turn, one
   * that waits between items sends each one at once (a turn later).
   */
  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#inFlight !== undefined) return;
    this.#flushScheduled = true;
    setImmediate(this.#flushNow);
  }

  readonly #flushNow = (): void => {
    this.#flushScheduled = false;
    this.#flush();
  };

  /** Send the batch as a frame if none is on its way. */
  #flush(): void {
    if (this.#inFlight !== undefined || this.#batch.length === 0 || this.#failure !== undefined) return;
    const items = this.#batch;
    this.#batch = [];
    const seq = this.#sent;
    this.#sent += items.length;
    this.#inFlight = this.#sendFrame(seq, items).then(
      () => {
        this.#delivered = seq + items.length;
        this.#inFlight = undefined;
        this.#flush();
        this.#notify();
      },
      (error: unknown) => {
        this.#failure = { error };
        this.#inFlight = undefined;
        this.#notify();
      },
    );
  }

  /** Send items from `seq`; a frame too large for the exchange goes as two halves. */
  async #sendFrame(seq: number, items: unknown[]): Promise<void> {
    try {
      await this.#send({ type: MessageType.StreamItems, run: this.runId, seq, items });
    } catch (error) {
      if (!(error instanceof PayloadTooLargeError) || items.length < 2) throw error;
      const half = items.length >> 1;
      await this.#sendFrame(seq, items.slice(0, half));
      await this.#sendFrame(seq + half, items.slice(half));
    }
  }

  /** Send everything pulled so far and wait until it went out. */
  async #drain(): Promise<void> {
    for (;;) {
      this.#throwIfFailed();
      if (this.#inFlight !== undefined) await this.#inFlight;
      else if (this.#batch.length > 0) this.#flush();
      else return;
    }
  }

  /** As {@link #drain}, for a stream that ends with an error anyway: a send failure is only logged. */
  async #drainQuietly(): Promise<void> {
    try {
      await this.#drain();
    } catch (error) {
      this.#logger.debug({ err: error }, "stream frames not sent before the stream's end");
    }
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }

  /** The next item, or ABORTED as soon as the signal aborts (a generator may ignore its signal). */
  #race(next: Promise<IteratorResult<unknown, unknown>>, signal: AbortSignal): Promise<IteratorResult<unknown, unknown> | typeof ABORTED> {
    if (signal.aborted) return Promise.resolve(ABORTED);
    return new Promise((resolve, reject) => {
      this.#abortWaiter = () => resolve(ABORTED);
      next.then(resolve, reject);
    });
  }

  /** Wait to be woken (credit, a frame sent, abort): true; or `ms` without: false. */
  #sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve(false);
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/**
 * The JSON entry point's contract (docs/PROTOCOL.md, *JSON entry point*): what an exchange that
 * lets any client call actions with plain JSON offers (`ExchangeFactory.serveJsonCalls`; on NATS,
 * `nats/nats-json-service.ts`, a NATS micro service per agent type).
 */

/** Options of `ExchangeFactory.serveJsonCalls`. */
export interface JsonCallOptions {
  /** Names of the agent types to serve (one micro service each). */
  readonly types: readonly string[];
  /**
   * How long a call may take when its body gives no `timeoutMs`, in ms.
   * @defaultValue 30_000
   */
  readonly timeoutMs?: number;
  /**
   * The version the services report (semantic version).
   * @defaultValue "1.0.0"
   */
  readonly version?: string;
}

/** The JSON entry points of one process; `stop()` removes them. */
export interface JsonCallService {
  /** The services: their `$SRV` names and the subjects of their `call` endpoints. */
  readonly services: ReadonlyArray<{ readonly name: string; readonly id: string; readonly subject: string; readonly agentType: string }>;
  /** Stop serving (calls under way are answered). Idempotent. */
  stop(): Promise<void>;
}


/**
 * The context of one running action: what `currentAction()` returns inside it (its scope), what
 * `this.actionContext` returns, and what an `@action({ context: true })` method receives. One
 * object per call, as the scope always was; the caller's id and handle are made when first read.
 */
import type { ActionContext } from "../agent/agent.ts";
import { ActionArgumentsError, InvalidClientError } from "../errors.ts";
import type { AgentExchangeClient } from "../exchange/exchange-client.ts";
import type { Handle } from "../exchange/handle.ts";
import { AgentId, EntityRole, UserId } from "../identifiers.ts";
import { SCOPE_CLIENT } from "../interceptors/action-scope.ts";
import type { ActionScope } from "../interceptors/action-scope.ts";
import type { MessageHeaders } from "../protocol/headers.ts";
import type { ActionRequest } from "../protocol/messages.ts";
import type { ProgressReporter } from "./progress-reporter.ts";
import type { SignalSource } from "./action-signal.ts";

/** An action's scope and context. */
export class EngineActionContext implements ActionScope, ActionContext {
  readonly agentId: string;
  readonly request: ActionRequest;
  readonly exchangeClient: AgentExchangeClient;
  readonly #signal: SignalSource;
  readonly #progress: ProgressReporter | undefined;
  #sourceId: AgentId | UserId | undefined | null = null;

  /**
   * @param signal - where the action's signal is read from when first asked for (it is made then).
   * @param progress - where progress reports go, when the caller asked for them.
   */
  constructor(agentId: string, request: ActionRequest, signal: SignalSource, exchangeClient: AgentExchangeClient, progress?: ProgressReporter) {
    this.agentId = agentId;
    this.request = request;
    this.#signal = signal;
    this.exchangeClient = exchangeClient;
    this.#progress = progress;
  }

  get signal(): AbortSignal {
    return this.#signal.signal;
  }

  reportProgress(progress: unknown): boolean {
    if (this.#progress === undefined) return false;
    this.#progress.report(progress);
    return true;
  }

  /** Handles used in the action send from the agent's client (`exchange/client-scope.ts`). */
  get [SCOPE_CLIENT](): AgentExchangeClient {
    return this.exchangeClient;
  }

  get action(): string {
    return this.request.action;
  }

  get tag(): string {
    return this.request.tag;
  }

  get source(): string | undefined {
    return this.request.src;
  }

  get headers(): MessageHeaders | undefined {
    return this.request.headers;
  }

  get sourceId(): AgentId | UserId | undefined {
    if (this.#sourceId === null) {
      const { src, srcRole, srcSite } = this.request;
      // A caller on another site (docs/EDGE.md) keeps its site, so its handle reaches it there.
      this.#sourceId =
        src === undefined || srcRole === undefined
          ? undefined
          : srcRole === EntityRole.Agent
            ? new AgentId(src, undefined, srcSite)
            : new UserId(src, undefined, srcSite);
    }
    return this.#sourceId;
  }

  get isAgentSource(): boolean {
    return this.request.src !== undefined && this.request.srcRole === EntityRole.Agent;
  }

  get isUserSource(): boolean {
    return this.request.src !== undefined && this.request.srcRole === EntityRole.User;
  }

  get sourceHandle(): Handle {
    const source = this.sourceId;
    if (!(source instanceof AgentId)) {
      throw new InvalidClientError(
        `The caller of '${this.action}' is ${source === undefined ? "not known to be an agent" : "a user client"}; only agents have handles`,
      );
    }
    return this.exchangeClient.getHandle(source);
  }
}

/**
 * The arguments of an `@action({ context: true })` method: the caller's, then `undefined` for
 * each parameter it omitted, then the context at `index` (the method's last declared parameter).
 * @throws {ActionArgumentsError} when the caller passed more arguments than the method declares
 *   before its context.
 */
export function argsWithContext(args: readonly unknown[], context: ActionContext, index: number, agentId: string): unknown[] {
  if (args.length > index) {
    throw new ActionArgumentsError(
      `Action '${context.action}' takes at most ${index} argument(s) before its context; got ${args.length}`,
      { action: context.action, agentId },
    );
  }
  const withContext = new Array<unknown>(index + 1);
  for (let i = 0; i < args.length; i++) withContext[i] = args[i];
  for (let i = args.length; i < index; i++) withContext[i] = undefined;
  withContext[index] = context;
  return withContext;
}

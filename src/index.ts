/**
 * academy-nats: Academy's agent model (agents, handles, exchanges, manager) in TypeScript, on NATS
 * JetStream or in process.
 */
export { Agent } from "./agent/agent.ts";
export type { ActionContext, AgentContext, AgentDescription, AgentShutdownOptions, LaunchAlongsideOptions, PublishOptions } from "./agent/agent.ts";
export { AgentEvent } from "./agent/agent-event.ts";
export { agentTypeInfo, agentTypeName } from "./agent/agent-type.ts";
export type { AgentClass, AgentTypeInfo, AgentTypeRef, AnyAgentClass } from "./agent/agent-type.ts";
export { action, defineAgent, event, loop, timer } from "./agent/decorators.ts";
export type { ActionOptions, AgentDefinition, AgentMethodDecorator, ExperimentalDecoratorsNotSupported } from "./agent/decorators.ts";
export { EventCodec, SubscriptionGroup, keyedAgentId, subscribe } from "./agent/subscriptions.ts";
export type { EventContext, EventKey, StartPosition, SubscribeOptions } from "./agent/subscriptions.ts";
export type { SubscriptionStats } from "./engine/subscriptions.ts";
export type { JsonCallOptions, JsonCallService } from "./exchange/json-calls.ts";
export type { EventBus, EventPublishAck, EventPublishOptions, EventSubscription, InboundEvent, SubscriptionOwner } from "./exchange/events.ts";
export { AgentEngine, EngineState } from "./engine/agent-engine.ts";
export { PersistentState, durableState } from "./state/persistent-state.ts";
export type { DurableStateOptions, ResolvedDurableStateOptions } from "./state/persistent-state.ts";
export type { StateStore } from "./state/state-store.ts";
export { STATE_RECORD_VERSION, decodeStateRecord } from "./state/state-record.ts";
export type { AppliedRequest, StateRecord, VersionedBytes } from "./state/state-record.ts";
export type { ActionOutcomes } from "./engine/action-outcomes.ts";
export { MisfirePolicy, REMINDER_RECORD_VERSION, decodeReminder, planFires, reminderTag } from "./state/reminder-record.ts";
export type { FirePlan, ReminderFire, ReminderOptions, ReminderRecord, VersionedReminder } from "./state/reminder-record.ts";
export { AgentReminders, reminderInfo } from "./state/agent-reminders.ts";
export type { ReminderInfo } from "./state/agent-reminders.ts";
export { FireResult } from "./state/reminder-store.ts";
export type { ReminderChange, ReminderStore } from "./state/reminder-store.ts";
export { ReminderScheduler } from "./state/reminder-scheduler.ts";
export type { ReminderSchedulerOptions } from "./state/reminder-scheduler.ts";
export type { AgentBuilder, AgentEngineOptions, AgentSource } from "./engine/agent-engine.ts";
export type { Admission } from "./engine/request-dispatcher.ts";
export type { ActionStats, AgentStats, LoopStats } from "./engine/agent-stats.ts";
export { LoopState } from "./engine/loops.ts";
export { defaultRuntimeConfig, resolveRuntimeConfig } from "./agent/runtime-config.ts";
export type { RuntimeConfig } from "./agent/runtime-config.ts";

export {
  AcademyError,
  ActionArgumentsError,
  ActionCancelledError,
  ActionInvalidStateError,
  ActionKindError,
  AgentAlreadyLaunchedError,
  AgentDefinitionError,
  AgentStateError,
  AgentTerminatedError,
  AuthenticationError,
  BadEntityIdError,
  ClientClosedError,
  CrossSiteOperationError,
  DeliveryLimitError,
  ErrorCode,
  ErrorGroup,
  ExchangeNotFoundError,
  ExchangeUnavailableError,
  ExecutorError,
  ForeignSiteError,
  HostFencedError,
  IncompatibleProtocolError,
  InvalidClientError,
  InvalidConfigError,
  MailboxContendedError,
  PermissionDeniedError,
  StateConflictError,
  StateTooLargeError,
  MailboxTerminatedError,
  MalformedMessageError,
  PayloadTooLargeError,
  PingCancelledError,
  RemoteError,
  RequestTimeoutError,
  SendOnlyClientError,
  SerializationError,
  SiteUnreachableError,
  StreamInterruptedError,
  UnknownActionError,
  UnknownAgentTypeError,
  UnknownExecutorError,
  UnknownSiteError,
  UnsupportedServerError,
  UserTerminatedError,
  WaitTimeoutError,
} from "./errors.ts";

export { AgentId, EntityRole, UserId } from "./identifiers.ts";
export type { EntityId } from "./identifiers.ts";

export { AgentExchangeClient, ExchangeClient, UserExchangeClient } from "./exchange/exchange-client.ts";
export type {
  AgentClientOptions,
  DiscoverOptions,
  ExchangeClientOptions,
  RegisterAgentsEntry,
  RegisteredAgents,
  RegisterOptions,
  RequestDelivery,
  RequestHandler,
  UserClientOptions,
} from "./exchange/exchange-client.ts";
export type { CreateUserClientOptions, ExchangeFactory, WorkerFactoryDescriptor } from "./exchange/exchange-factory.ts";
export { currentAction } from "./interceptors/action-scope.ts";
export type { ActionScope } from "./interceptors/action-scope.ts";
export type {
  CallerInterceptor,
  InboundResponseInput,
  InboundResponseNext,
  OutboundRequestInput,
  OutboundRequestNext,
} from "./interceptors/caller-interceptor.ts";
export type {
  ActionInput,
  ActionNext,
  AgentInterceptor,
  InboundRequestInput,
  InboundRequestNext,
  OutboundResponseInput,
  OutboundResponseNext,
} from "./interceptors/agent-interceptor.ts";
export type { InterceptorOptions, Interceptors } from "./interceptors/interceptors.ts";
export { DEADLINE_HEADER, DEFAULT_CANCEL_WINDOW_MS, currentDeadline, deadlineInterceptors } from "./interceptors/deadline.ts";
export type { DeadlineOptions } from "./interceptors/deadline.ts";
export { TRACER_NAME, TraceAttribute, flushTraces, tracingInterceptors } from "./interceptors/tracing.ts";
export type { TracingOptions } from "./interceptors/tracing.ts";
export { ACTION_DURATION_BUCKETS, AgentMetrics, metricsInterceptors } from "./interceptors/metrics.ts";
export type { EventInput, EventNext } from "./interceptors/agent-interceptor.ts";
export type { DeadLetterStats, ExchangeStats, MailboxDeliveries } from "./exchange/exchange-stats.ts";
export { AgentHandle, isHandle } from "./exchange/handle.ts";
export type {
  ActionArgs,
  ActionName,
  ActionResult,
  CallOptions,
  Handle,
  HandleShutdownOptions,
  StreamItem,
  StreamName,
  StreamOptions,
} from "./exchange/handle.ts";
export { DEFAULT_STREAM_WINDOW } from "./exchange/exchange-client.ts";
export { MailboxStatus } from "./exchange/mailbox-status.ts";
export { DeadLetterKind, ReplayRefusal } from "./exchange/dead-letters.ts";
export type { DeadLetter, DeadLetterFilter, DeadLetterStore, ReplayResult } from "./exchange/dead-letters.ts";
export type { AgentRegistration, Delivery, ExchangeTransport, MailboxHandler } from "./exchange/transport.ts";
export { CodecResultStore, DEFAULT_RESULT_WINDOW_MS, resultKey } from "./exchange/result-store.ts";
export type { ResultBytes, ResultStore } from "./exchange/result-store.ts";
export { LocalExchangeFactory } from "./exchange/local/local-exchange-factory.ts";
export { NatsExchangeFactory } from "./exchange/nats/nats-exchange-factory.ts";
export type { NatsExchangeOptions } from "./exchange/nats/nats-exchange-factory.ts";
export type { NatsAuthOptions, NatsTlsFiles } from "./exchange/nats/nats-auth.ts";
export { natsLayout } from "./exchange/nats/nats-layout.ts";
export type { NatsLayout } from "./exchange/nats/nats-layout.ts";
export { NatsRole, natsPermissions } from "./exchange/nats/nats-permissions.ts";
export type { NatsPermissionsOptions, NatsUserPermissions } from "./exchange/nats/nats-permissions.ts";
export type { LocalExchangeFactoryOptions } from "./exchange/local/local-exchange-factory.ts";

export { EVENT_LOOP_EXECUTOR, Manager, ReturnWhen } from "./manager/manager.ts";
export type { LaunchOptions, ManagerOptions, ManagerShutdownOptions, WaitOptions, WaitResult } from "./manager/manager.ts";
export type { BatchAgent, BatchLaunch } from "./manager/launch-batch.ts";
export { EventLoopExecutor } from "./manager/event-loop-executor.ts";
export { WorkerThreadExecutor } from "./manager/worker-thread-executor.ts";
export type { WorkerThreadExecutorOptions } from "./manager/worker-thread-executor.ts";
export { loadAgentClasses, requireAgentClass } from "./manager/agent-modules.ts";
export { HostPoolExecutor } from "./manager/host-pool-executor.ts";
export type { HostPoolExecutorOptions } from "./manager/host-pool-executor.ts";
export type { AgentExecution, AgentExecutor, LaunchSpec, PrepareSpec, RunOutcome } from "./manager/executor.ts";
export { PlacementState } from "./pool/placement.ts";
export type {
  HostEntry,
  LaunchBatch,
  LaunchDelivery,
  LaunchQueue,
  MailboxEntry,
  PoolBackend,
  StopWatch,
  Versioned,
} from "./pool/pool-backend.ts";
export type { HostRecord, HostStats, LaunchRequest, Placement } from "./pool/records.ts";
export { MIN_COLLECTABLE_AGE_MS, collectGarbage, planCollection } from "./pool/garbage-collection.ts";
export type { Collectable, CollectionPlan, CollectionPolicy, CollectionReport, Kept } from "./pool/garbage-collection.ts";

export { MessageType, PROTOCOL_VERSION } from "./protocol/messages.ts";
export type {
  ActionProgress,
  ActionRequest,
  ActionResponse,
  CancelRequest,
  ErrorResponse,
  Message,
  PingRequest,
  RequestBody,
  RequestMessage,
  ResponseBody,
  ResponseMessage,
  Routing,
  ShutdownRequest,
  StreamCredit,
  StreamEnd,
  StreamItems,
  SuccessResponse,
} from "./protocol/messages.ts";
export { HeaderLimits, RESERVED_HEADER_PREFIX } from "./protocol/headers.ts";
export type { MessageHeaders } from "./protocol/headers.ts";
export type { Failure } from "./protocol/failure.ts";

/**
 * `academy-nats/testing`: real `nats-server` processes (one server or a cluster) on random ports
 * with temporary JetStream stores, for tests, benchmarks and demos.
 *
 * @packageDocumentation
 */

export {
  findFreePorts,
  findNatsServerBinary,
  NATS_SERVER_INSTALL_HINT,
  NatsServerError,
  NatsServerErrorCode,
  NatsServerState,
  startNatsCluster,
  startNatsServer,
} from "./nats-server.ts";
export type {
  NatsCluster,
  NatsClusterOptions,
  NatsServer,
  NatsServerErrorOptions,
  NatsServerOptions,
  NatsServerStopOptions,
} from "./nats-server.ts";

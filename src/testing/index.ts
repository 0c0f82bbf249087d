/**
 * `academy-nats/testing`: real `nats-server` processes (one server, a cluster, or a hub with leaf
 * sites behind cuttable uplinks) on random ports with temporary JetStream stores, for tests,
 * benchmarks and demos.
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
export { startNatsLeafTopology } from "./nats-leaf-topology.ts";
export type { NatsLeafSite, NatsLeafSiteOptions, NatsLeafTopology, NatsLeafTopologyOptions } from "./nats-leaf-topology.ts";
export { startTcpProxy } from "./tcp-proxy.ts";
export type { TcpProxy, TcpProxyOptions } from "./tcp-proxy.ts";
export type {
  NatsCluster,
  NatsClusterOptions,
  NatsServer,
  NatsServerErrorOptions,
  NatsServerOptions,
  NatsServerStopOptions,
} from "./nats-server.ts";

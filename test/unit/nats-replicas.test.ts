/**
 * How many replicas new streams and buckets get when the `replicas` option is not set: from the
 * cluster size the connected server reports in its INFO (measured on nats-server 2.9.10: a node of a
 * 3-node cluster sends `cluster` and all three client URLs, itself included, in `connect_urls`; a
 * standalone server sends neither).
 */
import { describe, expect, test } from "vitest";
import { NatsExchangeFactory } from "../../src/index.ts";
import { replicasForServer } from "../../src/exchange/nats/nats-exchange.ts";

const urls = (n: number): string[] => Array.from({ length: n }, (_, i) => `127.0.0.1:${4000 + i}`);

describe("replicas from the cluster size", () => {
  test("a standalone server gets 1", () => {
    expect(replicasForServer({})).toEqual({ replicas: 1, source: "cluster size", clusterServers: 1 });
    expect(replicasForServer(undefined)).toEqual({ replicas: 1, source: "cluster size", clusterServers: 1 });
  });

  test("a cluster of three or more servers gets 3; of two, 1", () => {
    expect(replicasForServer({ cluster: "c", connect_urls: urls(3) })).toEqual({ replicas: 3, source: "cluster size", clusterServers: 3 });
    expect(replicasForServer({ cluster: "c", connect_urls: urls(5) })).toMatchObject({ replicas: 3, clusterServers: 5 });
    expect(replicasForServer({ cluster: "c", connect_urls: urls(2) })).toMatchObject({ replicas: 1, clusterServers: 2 });
  });

  test("a URL advertised twice counts once", () => {
    expect(replicasForServer({ cluster: "c", connect_urls: [...urls(2), ...urls(2)] })).toMatchObject({ replicas: 1, clusterServers: 2 });
  });

  test("a cluster that advertises no URLs (no_advertise) has an unknown size and gets 1", () => {
    expect(replicasForServer({ cluster: "c" })).toEqual({ replicas: 1, source: "cluster size", clusterServers: undefined });
  });

  test("the option wins, whatever the cluster", () => {
    expect(replicasForServer({ cluster: "c", connect_urls: urls(3) }, 1)).toEqual({ replicas: 1, source: "option", clusterServers: 3 });
    expect(replicasForServer({}, 3)).toMatchObject({ replicas: 3, source: "option" });
  });

  test("a factory without the option leaves the choice to the connection", () => {
    expect(new NatsExchangeFactory().settings.replicas).toBeUndefined();
    expect(new NatsExchangeFactory({ replicas: 5 }).settings.replicas).toBe(5);
  });
});

/**
 * Cluster leader kill: a 3-node cluster, streams and buckets with 3 replicas; 1,000 calls (300 with
 * `--short`) from 4 callers to 4 agents; a third of the way through, `kill -9` of the node that
 * leads the mailbox stream, a new leader elected, the node restarted on its store and back in the
 * cluster; then the agents are restarted. Fails on any call lost or run twice, or a stall over 30 s
 * (an election takes 4-9 s on loopback).
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { natsLayout } from "../../../src/index.ts";
import { startNatsCluster } from "../../../src/testing/index.ts";
import { until } from "../call-load.ts";
import type { ChaosContext, ChaosResult, ChaosScenario } from "../scenario.ts";
import { runServerFault } from "../server-fault.ts";

async function run(ctx: ChaosContext): Promise<ChaosResult> {
  await using cluster = await startNatsCluster({ size: 3 });
  return await runServerFault(
    ctx,
    {
      servers: cluster.urls,
      async inject(c, prefix) {
        const nc = await connect({ servers: cluster.urls });
        try {
          const jsm = await jetstreamManager(nc);
          const stream = natsLayout(prefix).mailboxStream;
          const info = await jsm.streams.info(stream);
          const leader = info.cluster?.leader;
          const replicas = info.config.num_replicas;
          const node = cluster.servers.find((s) => s.serverName === leader);
          if (node === undefined) throw new Error(`no node named ${String(leader)} leads ${stream}`);
          const killedAt = Date.now();
          await node.kill();
          c.log(`killed ${leader}, the leader of ${stream} (R${replicas})`);
          let newLeader = "";
          await until(
            async () => {
              try {
                newLeader = (await jsm.streams.info(stream)).cluster?.leader ?? "";
              } catch {
                return false;
              }
              return newLeader !== "" && newLeader !== leader;
            },
            60_000,
            "a new leader",
          );
          const electedMs = Date.now() - killedAt;
          c.log(`${newLeader} leads after ${electedMs} ms; restarting ${leader}`);
          await node.start();
          await cluster.waitUntilReady(60_000);
          return { replicas, killedLeader: String(leader), newLeader, electedMs, nodeDownMs: Date.now() - killedAt };
        } finally {
          await nc.close();
        }
      },
    },
    ctx.short ? 300 : 1_000,
    "lk",
  );
}

const scenario: ChaosScenario = {
  id: "cluster-leader-kill",
  title: "3-node cluster, R3: kill -9 of the mailbox stream's leader, then restart, under 1,000 calls (4 agents, 4 callers)",
  maxStallMs: 30_000,
  run,
};
export default scenario;

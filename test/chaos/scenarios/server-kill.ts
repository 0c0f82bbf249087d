/**
 * Server kill: 2,000 calls (500 with `--short`) from 4 callers to 4 agents; a third of the way
 * through, `kill -9` of the nats-server (file store), a second down, then a restart on the same
 * store and port; the agents are restarted once it is back. A server killed this way comes back
 * with acknowledgements it had not written, and gives those requests back: before result records,
 * agents ran 349-669 of 2,000 again. Fails on any call lost or run twice (by the ledger), or a stall
 * over 30 s.
 */
import { startNatsServer } from "../../../src/testing/index.ts";
import type { ChaosContext, ChaosResult, ChaosScenario } from "../scenario.ts";
import { runServerFault } from "../server-fault.ts";

async function run(ctx: ChaosContext): Promise<ChaosResult> {
  await using server = await startNatsServer();
  return await runServerFault(
    ctx,
    {
      servers: [server.url],
      async inject(c) {
        const killedAt = Date.now();
        await server.kill();
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        await server.start();
        const downMs = Date.now() - killedAt;
        c.log(`server killed and restarted (${downMs} ms down)`);
        return { serverDownMs: downMs };
      },
    },
    ctx.short ? 500 : 2_000,
    "sk",
  );
}

const scenario: ChaosScenario = {
  id: "server-kill",
  title: "kill -9 of nats-server and restart on the same store under 2,000 calls (4 agents, 4 callers)",
  maxStallMs: 30_000,
  run,
};
export default scenario;

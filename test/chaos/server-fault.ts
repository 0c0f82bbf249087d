/**
 * The shared body of the server-fault scenarios (server-kill, cluster-leader-kill): four agents on
 * one factory, four callers each on a connection of its own, a fixed number of calls; when 30% of
 * them are answered the scenario's fault strikes the server(s), and once the servers are back the
 * agents are restarted (a fresh engine each: no memory of the requests they answered), so that
 * every request the server gives back after losing its acknowledgement reaches an agent that can
 * only tell it was answered from its result record. Then the scenario waits until the mailboxes
 * are empty, and counts executions in the ledger.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { mkdtempSync, rmSync } from "node:fs";
import { pino } from "pino";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentEngine, MessageType, NatsExchangeFactory, natsLayout } from "../../src/index.ts";
import { decodeMessage } from "../../src/protocol/codec.ts";
import type { AgentRegistration, NatsExchangeOptions, UserExchangeClient } from "../../src/index.ts";
import { CallLoad, ChaosProbe, chaosResultWindowMs, until, useLedger } from "./call-load.ts";
import { readLedger, tally } from "./ledger.ts";
import type { ChaosContext, ChaosResult } from "./scenario.ts";

const AGENTS = 4;
const CALLERS = 4;

/** What a server-fault scenario does to the servers. */
export interface ServerFault {
  /** Client URLs of the servers. */
  readonly servers: string[];
  /** Strike (and recover from) the fault; returns figures for the details. */
  inject(ctx: ChaosContext, prefix: string): Promise<Record<string, number | string>>;
}

/** Run the load, inject `fault` a third of the way through, tally. */
export async function runServerFault(ctx: ChaosContext, fault: ServerFault, total: number, tag: string): Promise<ChaosResult> {
  const dir = mkdtempSync(join(tmpdir(), `academy-${tag}-`));
  const ledger = join(dir, "ledger");
  useLedger(ledger);
  const prefix = `${tag}${process.pid}_${Date.now() % 100_000}`;
  const resultWindowMs = chaosResultWindowMs();
  const debug = process.env["CHAOS_DEBUG"] !== undefined ? pino({ level: "debug" }, process.stderr) : undefined;
  // The agents' and callers' exchanges log at warn (debug with CHAOS_DEBUG), counting the mailboxes
  // whose consumer was made again to deliver messages left behind it (NATS-LAYOUT.md 5.2).
  let behindConsumer = 0;
  const exchangeLog = pino({ level: debug !== undefined ? "debug" : "warn" }, {
    write(line: string): void {
      if (line.includes("behind its consumer")) behindConsumer++;
      if (debug !== undefined) process.stderr.write(line);
    },
  });
  const options: NatsExchangeOptions = {
    servers: fault.servers,
    prefix,
    ...(resultWindowMs !== undefined && { resultWindowMs }),
    // Long enough for the fault: a call outlives a server restart or a leader election.
    retryWindowMs: 60_000,
  };
  const agentFactory = new NatsExchangeFactory({ ...options, logger: exchangeLog });
  const callerFactories = Array.from({ length: CALLERS }, () => new NatsExchangeFactory({ ...options, logger: exchangeLog }));
  const engines: Array<{ engine: AgentEngine<ChaosProbe>; running: Promise<void> }> = [];
  const start = (registration: AgentRegistration<ChaosProbe>): { engine: AgentEngine<ChaosProbe>; running: Promise<void> } => {
    const engine = new AgentEngine(new ChaosProbe(), { exchangeFactory: agentFactory, registration, ...(debug !== undefined && { logger: debug }) });
    const running = engine.run();
    running.catch((error: unknown) => ctx.log(`agent ${registration.agentId.uid} stopped with ${(error as Error).message}`));
    return { engine, running };
  };
  const stopAll = async (): Promise<void> => {
    for (const { engine } of engines) engine.requestShutdown({ expected: true, terminate: false });
    await Promise.allSettled(engines.map((e) => e.running));
    engines.length = 0;
  };
  const callers: UserExchangeClient[] = [];
  try {
    for (const factory of callerFactories) callers.push(await factory.createUserClient());
    const registrations = await callers[0]!.registerAgents(Array.from({ length: AGENTS }, () => ChaosProbe));
    for (const registration of registrations) engines.push(start(registration));
    const load = new CallLoad(
      callers.map((caller) => registrations.map((r) => caller.getHandle(r.agentId))),
      { total, inFlight: 8, timeoutMs: 120_000 },
    );
    const startedAt = Date.now();
    const loading = load.run();
    await until(() => load.answered >= total * 0.3 || load.completed === total, 120_000, "30% of the calls to be answered");
    const answeredBefore = load.answered;
    ctx.log(`${answeredBefore} calls answered; injecting the fault`);
    const figures = await fault.inject(ctx, prefix);
    ctx.log("servers back; restarting the agents");
    await stopAll();
    for (const registration of registrations) engines.push(start(registration));
    await loading;
    const loadMs = Date.now() - startedAt;
    ctx.log(`${load.answered} answered, ${load.failed} failed in ${loadMs} ms; waiting for the mailboxes to empty`);
    // Requests the server gave back are handled (answered from their records, or run again)
    // before the mailboxes are empty: only then is the ledger complete.
    const nc = await connect({ servers: fault.servers });
    try {
      const jsm = await jetstreamManager(nc);
      const layout = natsLayout(prefix);
      const subjects = new Set(registrations.map((r) => layout.mailboxSubject(r.agentId.uid)));
      let left: Array<[string, number]> = [];
      await until(
        async () => {
          const info = await jsm.streams.info(layout.mailboxStream, { subjects_filter: `${prefix}.mbox.*` });
          left = Object.entries(info.state.subjects ?? {}).filter(([subject, n]) => subjects.has(subject) && n > 0);
          return left.length === 0;
        },
        30_000,
        "the agents' mailboxes to be empty",
      ).catch(() => undefined);
      if (left.length > 0) {
        // Messages the server keeps although their consumers are past them: say what they are.
        const counts = readLedger(ledger);
        const described: string[] = [];
        for (const [subject] of left) {
          for (let seq = 1; ; ) {
            const stored = await jsm.streams.getMessage(layout.mailboxStream, { seq, next_by_subj: subject } as never).catch(() => null);
            if (stored === null) break;
            seq = stored.seq + 1;
            let id = "?";
            try {
              const message = decodeMessage(stored.data);
              if (message.type === MessageType.ActionRequest) id = String(message.args[0]);
            } catch {
              // not a request
            }
            described.push(`seq ${stored.seq}: call ${id}, ${load.ids.includes(id) ? "made" : "unknown"}, executed ${counts.get(id) ?? 0}x`);
          }
          const consumer = await jsm.consumers.info(layout.mailboxStream, layout.mailboxConsumer(subject.split(".").at(-1)!)).catch(() => undefined);
          described.push(`${subject}: consumer ${consumer === undefined ? "missing" : `pending ${consumer.num_pending}, ack pending ${consumer.num_ack_pending}, ack floor ${consumer.ack_floor.stream_seq}, delivered ${consumer.delivered.stream_seq}`}`);
        }
        throw new Error(`messages left in the agents' mailboxes after they were answered: ${described.join("; ")}`);
      }
    } finally {
      await nc.close();
    }
    await stopAll();
    const { executedTwice, neverExecuted } = tally(readLedger(ledger), load.ids);
    const executions = [...readLedger(ledger).values()].reduce((sum, n) => sum + n, 0);
    if (load.failed > 0) ctx.log(`failures: ${load.failures.slice(0, 5).join("; ")}`);
    return {
      calls: load.ids.length,
      answered: load.answered,
      failed: load.failed,
      executedTwice,
      neverExecuted,
      maxStallMs: load.maxStallMs,
      details: {
        agents: AGENTS,
        callers: CALLERS,
        answeredBeforeFault: answeredBefore,
        executions,
        resultWindowMs: resultWindowMs ?? "default",
        loadMs,
        behindConsumer,
        ...figures,
      },
    };
  } finally {
    await stopAll().catch(() => undefined);
    for (const caller of callers) await caller.close().catch(() => undefined);
    for (const factory of callerFactories) await factory.close().catch(() => undefined);
    await agentFactory.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The transport contract, run against every exchange: what a mailbox promises to the client that
 * reads it, below the agent model. Delivery, acknowledgement and redelivery, order per sender,
 * take-over by a second reader, messages kept for a reader that comes later, and termination
 * answering what still waits. The NATS-only promises (process crashes, server restarts,
 * de-duplication by message id, hostile bytes) stay in test/integration/nats/.
 *
 * The suite drives mailboxes through `createAgentClient` with a raw request handler, so it sees
 * each delivery (its message, delivery count, ack and nak) exactly as the engine does.
 */
import { describe, expect, test } from "vitest";
import { AgentTerminatedError, MailboxStatus } from "../../src/index.ts";
import type {
  AgentExchangeClient,
  AgentRegistration,
  ExchangeFactory,
  RequestDelivery,
  UserExchangeClient,
} from "../../src/index.ts";
import { MessageType } from "../../src/protocol/messages.ts";
import type { ActionRequest } from "../../src/protocol/messages.ts";
import { deferred } from "../../src/util/deferred.ts";
import { Recorder } from "../fixtures/agents.ts";

/** How the suite gets an isolated exchange for each test. */
export interface TransportTarget {
  newFactory(): ExchangeFactory;
}

/** A reader of one mailbox: every delivery it got, in order. */
interface Reader {
  readonly client: AgentExchangeClient;
  readonly deliveries: RequestDelivery[];
  /** Resolves once `count` deliveries have arrived in all. */
  received(count: number): Promise<void>;
}

export function describeTransportContract(name: string, target: () => TransportTarget): void {
  describe(`transport contract: ${name}`, () => {
    async function setUp(): Promise<{ factory: ExchangeFactory; user: UserExchangeClient; registration: AgentRegistration }> {
      const factory = target().newFactory();
      const user = await factory.createUserClient();
      const registration = await user.registerAgent(Recorder);
      return { factory, user, registration };
    }

    async function read(factory: ExchangeFactory, registration: AgentRegistration, answer: boolean): Promise<Reader> {
      const deliveries: RequestDelivery[] = [];
      const waiters: Array<{ count: number; resolve(): void }> = [];
      // Messages already waiting may be delivered before createAgentClient returns.
      const opened = deferred<AgentExchangeClient>();
      const client = await factory.createAgentClient(registration, (delivery) => {
        deliveries.push(delivery);
        for (const w of waiters.filter((w) => deliveries.length >= w.count)) w.resolve();
        if (answer) {
          delivery.ack();
          void opened.promise.then((c) => c.respond(delivery.message, { type: MessageType.SuccessResponse }));
        }
      });
      opened.resolve(client);
      return {
        client,
        deliveries,
        received: (count) => {
          if (deliveries.length >= count) return Promise.resolve();
          const d = deferred<void>();
          waiters.push({ count, resolve: () => d.resolve() });
          return d.promise;
        },
      };
    }

    const argsOf = (delivery: RequestDelivery): unknown => (delivery.message as ActionRequest).args[0];

    test("a request is delivered once, with delivery count 1, and acknowledged it is gone", async () => {
      const { factory, user, registration } = await setUp();
      try {
        const reader = await read(factory, registration, true);
        await user.getHandle(registration.agentId).action("record", 1);
        expect(reader.deliveries).toHaveLength(1);
        expect(reader.deliveries[0]!.deliveryCount).toBe(1);
        expect(reader.deliveries[0]!.message.type).toBe(MessageType.ActionRequest);
        await reader.client.close();
        // Acknowledged: a later reader gets nothing of it.
        const next = await read(factory, registration, true);
        await user.getHandle(registration.agentId).ping();
        expect(next.deliveries.map((d) => d.message.type)).toEqual([MessageType.PingRequest]);
        await next.client.close();
      } finally {
        await user.close();
        await factory.close();
      }
    });

    test("requests from one sender arrive in the order they were sent", async () => {
      const { factory, user, registration } = await setUp();
      try {
        const reader = await read(factory, registration, true);
        const handle = user.getHandle(registration.agentId);
        const calls = Array.from({ length: 50 }, (_, i) => handle.action("record", i));
        await Promise.all(calls);
        expect(reader.deliveries.map(argsOf)).toEqual(Array.from({ length: 50 }, (_, i) => i));
        await reader.client.close();
      } finally {
        await user.close();
        await factory.close();
      }
    });

    test("a nak delivers the request again with a higher delivery count", async () => {
      const { factory, user, registration } = await setUp();
      try {
        const opened = deferred<AgentExchangeClient>();
        const counts: number[] = [];
        const client = await factory.createAgentClient(registration, (delivery) => {
          counts.push(delivery.deliveryCount);
          if (delivery.deliveryCount < 3) {
            delivery.nak();
            return;
          }
          void opened.promise
            .then((c) => c.respond(delivery.message, { type: MessageType.SuccessResponse }))
            .then(() => delivery.ack());
        });
        opened.resolve(client);
        await user.getHandle(registration.agentId).ping({ timeoutMs: 10_000 });
        expect(counts).toEqual([1, 2, 3]);
        await client.close();
      } finally {
        await user.close();
        await factory.close();
      }
    });

    test("requests sent while nobody reads wait in the mailbox, in order, for the next reader", async () => {
      const { factory, user, registration } = await setUp();
      try {
        const handle = user.getHandle(registration.agentId);
        const calls = [handle.action("record", "a"), handle.action("record", "b"), handle.action("record", "c")];
        const reader = await read(factory, registration, true);
        await Promise.all(calls);
        expect(reader.deliveries.map(argsOf)).toEqual(["a", "b", "c"]);
        await reader.client.close();
      } finally {
        await user.close();
        await factory.close();
      }
    });

    test("a request left unacknowledged by a reader that stops goes to the next reader", async () => {
      const { factory, user, registration } = await setUp();
      try {
        const first = await read(factory, registration, false);
        const call = user.getHandle(registration.agentId).action("record", "kept");
        await first.received(1);
        await first.client.close();
        const second = await read(factory, registration, true);
        await call;
        expect(second.deliveries.map(argsOf)).toEqual(["kept"]);
        expect(second.deliveries[0]!.deliveryCount).toBeGreaterThanOrEqual(1);
        await second.client.close();
      } finally {
        await user.close();
        await factory.close();
      }
    });

    test("a second reader takes the mailbox over: the first receives nothing more", async () => {
      const { factory, user, registration } = await setUp();
      try {
        const first = await read(factory, registration, true);
        const second = await read(factory, registration, true);
        const handle = user.getHandle(registration.agentId);
        await handle.ping({ timeoutMs: 10_000 });
        await handle.ping({ timeoutMs: 10_000 });
        expect(first.deliveries).toHaveLength(0);
        expect(second.deliveries).toHaveLength(2);
        await first.client.close();
        await second.client.close();
      } finally {
        await user.close();
        await factory.close();
      }
    });

    test("terminating a mailbox answers the requests still waiting in it, and tells its reader", async () => {
      const { factory, user, registration } = await setUp();
      try {
        const stopped = deferred<void>();
        let held = 0;
        const client = await factory.createAgentClient(
          registration,
          () => {
            held++; // never answered: the requests wait in the mailbox, unacknowledged
          },
          { onTerminated: () => stopped.resolve() },
        );
        const handle = user.getHandle(registration.agentId);
        const calls = [handle.action("record", 1), handle.action("record", 2)].map((p) => p.catch((e: unknown) => e));
        await expect.poll(() => held, { timeout: 10_000 }).toBe(2);
        await user.terminate(registration.agentId);
        const outcomes = await Promise.all(calls);
        for (const outcome of outcomes) expect(outcome).toBeInstanceOf(AgentTerminatedError);
        await stopped.promise;
        expect(await user.status(registration.agentId)).toBe(MailboxStatus.Terminated);
        await client.close();
        // A terminated mailbox takes no new reader.
        await expect(factory.createAgentClient(registration, () => {})).rejects.toBeInstanceOf(AgentTerminatedError);
      } finally {
        await user.close();
        await factory.close();
      }
    });
  });
}

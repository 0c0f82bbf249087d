/**
 * Durable agent state (docs/STATE.md), run against every exchange: loaded before startup and kept
 * across runs, saved at the end of changing actions (or only when asked), deleted with a
 * terminated mailbox unless kept, fenced by compare-and-set (a run whose record was taken over
 * cannot write and stops), answered from the record when a request applied to it is delivered
 * again, and refused with a typed error when too large.
 */
import { describe, expect, test } from "vitest";
import {
  ActionInvalidStateError,
  AgentDefinitionError,
  ExchangeUnavailableError,
  Manager,
  StateConflictError,
  StateTooLargeError,
  decodeStateRecord,
} from "../../src/index.ts";
import type { AgentInterceptor, ExchangeFactory, StateStore } from "../../src/index.ts";
import { encodeStateRecord } from "../../src/state/state-record.ts";
import { decodeValue } from "../../src/protocol/codec.ts";
import { MessageType } from "../../src/protocol/messages.ts";
import { ExplicitCounter, GrowingState, StatefulCounter, TwoStates } from "../fixtures/state-agents.ts";
import type { ConformanceFactoryOptions, ConformanceTarget } from "./exchange-conformance.ts";

/** The stored value of agent `uid`'s state, or undefined when it has no record (or no value). */
async function storedValue(store: StateStore, uid: string): Promise<unknown> {
  const record = await store.get(uid);
  if (record === undefined) return undefined;
  const { value } = decodeStateRecord(record.bytes);
  return value === undefined ? undefined : decodeValue(value);
}

/** What a new home of the agent does at load: rewrite the record with its own owner mark. */
async function takeOver(store: StateStore, uid: string): Promise<void> {
  const current = (await store.get(uid))!;
  const record = decodeStateRecord(current.bytes);
  await store.update(uid, encodeStateRecord({ ...record, owner: "another-run", savedAt: Date.now() }), current.revision);
}

export function describeStateConformance(name: string, target: () => ConformanceTarget): void {
  async function open(factory: ExchangeFactory = target().newFactory()): Promise<{ manager: Manager; store: StateStore }> {
    const manager = await Manager.fromExchangeFactory(factory);
    return { manager, store: await factory.stateStore!() };
  }

  describe(`durable state: ${name}`, () => {
    test("state is loaded before startup and kept across runs of the same agent", async () => {
      const { manager, store } = await open();
      await using _ = manager;
      const registration = await manager.registerAgent(StatefulCounter);
      const first = await manager.launch(StatefulCounter, { registration });
      expect([await first.increment(2), await first.increment(3)]).toEqual([2, 5]);
      await manager.shutdown(first, { blocking: true, terminate: false });
      expect(await storedValue(store, registration.agentId.uid)).toEqual({ count: 5 });

      // Another manager runs it again under the same id: it starts from what was saved.
      const other = new Manager(await manager.exchangeFactory.createUserClient());
      await using __ = other;
      const second = await other.launch(StatefulCounter, { registration });
      expect(await second.increment(1)).toBe(6);
      // A failing action that changed the state is saved with its error.
      await expect(second.incrementThenFail()).rejects.toBeInstanceOf(RangeError);
      expect(await second.get()).toBe(7);
      expect(await storedValue(store, registration.agentId.uid)).toEqual({ count: 7 });
    });

    test("concurrent actions: each write carries the requests whose changes it holds", async () => {
      const { manager, store } = await open();
      await using _ = manager;
      const counter = await manager.launch(StatefulCounter);
      const results = await Promise.all(Array.from({ length: 50 }, () => counter.increment(1)));
      expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      const record = decodeStateRecord((await store.get(counter.agentId.uid))!.bytes);
      expect(decodeValue(record.value!)).toEqual({ count: 50 });
      // Every increment is remembered with its response: none could be applied twice.
      expect(record.applied).toHaveLength(50);
      const answers = record.applied.map((a) => (decodeValue(a.response!) as { result: number }).result).sort((a, b) => a - b);
      expect(answers).toEqual(results.sort((a, b) => a - b));
    });

    test("the state of a terminated agent is deleted, unless keepOnTerminate", async () => {
      const { manager, store } = await open();
      await using _ = manager;
      const counter = await manager.launch(StatefulCounter);
      await counter.increment(1);
      expect(await store.get(counter.agentId.uid)).toBeDefined();
      await manager.shutdown(counter, { blocking: true, terminate: true });
      expect(await store.get(counter.agentId.uid)).toBeUndefined();

      const kept = await manager.launch(ExplicitCounter);
      await kept.add(4, true);
      await manager.shutdown(kept, { blocking: true, terminate: true });
      expect(await storedValue(store, kept.agentId.uid)).toEqual({ count: 4, log: [] });
    });

    test("without autoSave only save() writes; the value in memory is the agent's own", async () => {
      const { manager, store } = await open();
      await using _ = manager;
      const registration = await manager.registerAgent(ExplicitCounter);
      const counter = await manager.launch(ExplicitCounter, { registration });
      const loaded = await counter.revision();
      expect(await counter.add(1, false)).toBe(1);
      expect(await counter.revision()).toBe(loaded);
      expect(await storedValue(store, registration.agentId.uid)).toBeUndefined();
      expect(await counter.add(1, true)).toBe(2);
      expect(await counter.revision()).toBeGreaterThan(loaded!);
      expect(await storedValue(store, registration.agentId.uid)).toEqual({ count: 2, log: [] });
      expect(await counter.add(5, false)).toBe(7);
      await manager.shutdown(counter, { blocking: true, terminate: false });
      const other = new Manager(await manager.exchangeFactory.createUserClient());
      await using __ = other;
      expect(await (await other.launch(ExplicitCounter, { registration })).get()).toBe(2);
    });

    test("a run whose record another run took over cannot write: StateConflictError, it stops, and the new owner answers", async () => {
      const { manager, store } = await open();
      // Closing raises the agents' errors: the zombie's StateConflictError, expected here.
      await using _ = { [Symbol.asyncDispose]: () => manager.close().catch((error: unknown) => expect(error).toBeInstanceOf(StateConflictError)) };
      const registration = await manager.registerAgent(StatefulCounter);
      const zombie = await manager.launch(StatefulCounter, { registration, config: { terminateOnError: false } });
      expect(await zombie.increment(1)).toBe(1);
      await takeOver(store, registration.agentId.uid);

      // Its next write is refused: the agent stops (not retried), the request stays unanswered.
      const pending = zombie.increment(10);
      await expect(manager.wait([zombie], { raiseError: true, timeoutMs: 10_000 })).rejects.toBeInstanceOf(StateConflictError);
      const record = decodeStateRecord((await store.get(registration.agentId.uid))!.bytes);
      expect(record.owner).toBe("another-run");
      expect(await storedValue(store, registration.agentId.uid)).toEqual({ count: 1 });

      // The agent's next run takes the record over and answers the request, once.
      const other = new Manager(await manager.exchangeFactory.createUserClient());
      await using __ = other;
      const next = await other.launch(StatefulCounter, { registration });
      expect(await pending).toBe(11);
      expect(await next.get()).toBe(11);
    });

    test("a request applied to the state and delivered again is answered from the record, not run twice", async () => {
      // The first response cannot go out (the exchange seems unreachable): the request is handed
      // back and delivered again after the state (with the request) was written.
      let failures = 0;
      const flaky: AgentInterceptor = {
        async outboundResponse(input, next) {
          if (input.response.type === MessageType.ActionResponse && input.request.type === MessageType.ActionRequest && input.request.action === "increment" && failures++ === 0) {
            throw new ExchangeUnavailableError("response lost on purpose");
          }
          return next(input);
        },
      };
      const factory = target().newFactory({ interceptors: { agent: [flaky] } });
      const { manager, store } = await open(factory);
      await using _ = manager;
      const counter = await manager.launch(StatefulCounter);
      expect(await counter.increment(5)).toBe(5);
      expect(failures).toBe(2);
      expect(await counter.get()).toBe(5);
      expect(await storedValue(store, counter.agentId.uid)).toEqual({ count: 5 });
    });

    test("a redelivered request whose response is not in the state record is answered from its result record, else refused, never run again", async () => {
      // A response over 64 KiB is not kept in the state record (only the request's tag is); its
      // first response is lost, so the request comes back after the state was written.
      for (const results of [true, false]) {
        let failures = 0;
        const flaky: AgentInterceptor = {
          async outboundResponse(input, next) {
            if (input.request.type === MessageType.ActionRequest && input.request.action === "addLarge" && failures++ === 0) {
              throw new ExchangeUnavailableError("response lost on purpose");
            }
            return next(input);
          },
        };
        const options = { interceptors: { agent: [flaky] }, ...(results ? {} : { resultWindowMs: 0 }) };
        const { manager, store } = await open(target().newFactory(options as ConformanceFactoryOptions));
        try {
          const counter = await manager.launch(ExplicitCounter);
          if (results) expect(await counter.addLarge(3)).toHaveLength(70_000);
          else await expect(counter.addLarge(3)).rejects.toBeInstanceOf(ActionInvalidStateError);
          expect(failures).toBe(2);
          expect(await counter.get()).toBe(3);
          expect(await storedValue(store, counter.agentId.uid)).toEqual({ count: 3, log: [] });
        } finally {
          await manager.close();
        }
      }
    });

    test("a record over the store's limit is refused with StateTooLargeError; the stored state is unchanged", async () => {
      const { manager, store } = await open();
      await using _ = manager;
      const agent = await manager.launch(GrowingState);
      expect(await agent.grow(1000)).toBe(1);
      const error = await agent.grow(store.maxRecordBytes).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StateTooLargeError);
      expect((error as StateTooLargeError).limit).toBe(store.maxRecordBytes);
      expect(((await storedValue(store, agent.agentId.uid)) as { chunks: string[] }).chunks).toHaveLength(1);
    });

    test("an agent declaring two durable states fails to start with AgentDefinitionError", async () => {
      const { manager } = await open();
      await using _ = { [Symbol.asyncDispose]: () => manager.close().catch((error: unknown) => expect(error).toBeInstanceOf(AgentDefinitionError)) };
      const agent = await manager.launch(TwoStates);
      await expect(manager.wait([agent], { raiseError: true, timeoutMs: 10_000 })).rejects.toBeInstanceOf(AgentDefinitionError);
    });
  });
}

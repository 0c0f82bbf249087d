/**
 * Exchange factories describe themselves for worker threads: the descriptor names the module that
 * rebuilds the factory, so workers know no kinds of exchange. And NATS credentials travel as a
 * file path, which worker threads can use. No network: factories connect on first use only.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nkeys } from "@nats-io/nats-core";
import { afterAll, describe, expect, test } from "vitest";
import { InvalidConfigError, LocalExchangeFactory, MessageType, NatsExchangeFactory } from "../../src/index.ts";
import { WORKER_FACTORY_EXPORT } from "../../src/exchange/exchange-factory.ts";
import type { ExchangeFactory, RebuildWorkerFactory, WorkerFactoryDescriptor } from "../../src/exchange/exchange-factory.ts";
import { silentLogger } from "../../src/util/logger.ts";

const dir = mkdtempSync(join(tmpdir(), "worker-factory-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What a worker does with a descriptor: import its module and call the rebuild function. */
async function rebuild(descriptor: WorkerFactoryDescriptor): Promise<ExchangeFactory> {
  const module = (await import(descriptor.module)) as Record<string, unknown>;
  const rebuildFactory = module[WORKER_FACTORY_EXPORT] as RebuildWorkerFactory;
  expect(typeof rebuildFactory).toBe("function");
  return rebuildFactory(structuredClone(descriptor.data, { transfer: [...descriptor.transfer] }), silentLogger);
}

describe("worker factory descriptors", () => {
  test("a NATS factory is rebuilt from its options by the module it names, credentials file included", async () => {
    const credsFile = join(dir, "user.creds");
    const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
    writeFileSync(credsFile, `-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`);
    const factory = new NatsExchangeFactory({ servers: "nats://127.0.0.1:1", prefix: "wfd", credsFile, replicas: 3 });
    const descriptor = factory.forWorker();
    expect(descriptor.module).toMatch(/nats-exchange-factory\.(ts|js)$/);
    expect(descriptor.data).toMatchObject({ credsFile, prefix: "wfd" });
    const rebuilt = await rebuild(descriptor);
    expect(rebuilt).toBeInstanceOf(NatsExchangeFactory);
    expect((rebuilt as NatsExchangeFactory).settings).toMatchObject({ prefix: "wfd", replicas: 3 });
    await rebuilt.close();
  });

  test("a local factory is rebuilt on its port by the module it names", async () => {
    const factory = new LocalExchangeFactory();
    const descriptor = factory.forWorker();
    expect(descriptor.module).toMatch(/local-exchange-port\.(ts|js)$/);
    const rebuilt = await rebuild(descriptor);
    expect(rebuilt.constructor.name).toBe("PortExchangeFactory");
    await rebuilt.close();
    await factory.close();
  });

  test("a malformed credentials or nkey seed file is a configuration error naming the option", () => {
    const bad = join(dir, "bad.creds");
    writeFileSync(bad, "not a creds file\n");
    expect(() => new NatsExchangeFactory({ credsFile: bad })).toThrow(expect.objectContaining({ name: "InvalidConfigError", option: "credsFile" }));
    expect(() => new NatsExchangeFactory({ nkeySeedFile: bad })).toThrow(expect.objectContaining({ name: "InvalidConfigError", option: "nkeySeedFile" }));
    expect(() => new NatsExchangeFactory({ user: "a", token: "t" })).toThrow(expect.objectContaining({ option: "token" }));
    expect(() => new NatsExchangeFactory({ password: "p" })).toThrow(expect.objectContaining({ option: "password" }));
    expect(() => new NatsExchangeFactory({ tls: { certFile: bad } })).toThrow(expect.objectContaining({ option: "tls.keyFile" }));
    expect(() => new NatsExchangeFactory({ tls: { caFile: join(dir, "missing.pem") } })).toThrow(expect.objectContaining({ option: "tls.caFile" }));
  });

  test("a credentials file that cannot be read is a configuration error naming the option", () => {
    const missing = join(dir, "missing.creds");
    const error = (() => {
      try {
        new NatsExchangeFactory({ credsFile: missing });
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InvalidConfigError);
    expect(error).toMatchObject({ option: "credsFile" });
    expect((error as Error).message).toContain(missing);
    expect(((error as Error).cause as NodeJS.ErrnoException).code).toBe("ENOENT");
  });
  test("a local factory's worker records effectively-once results in the main thread's exchange, with its window", async () => {
    const factory = new LocalExchangeFactory({ resultWindowMs: 5_000 });
    const rebuilt = await rebuild(factory.forWorker());
    const store = await rebuilt.resultStore!();
    expect(store?.windowMs).toBe(5_000);
    const request = { type: MessageType.ActionRequest, tag: "t-1", dest: "agent1", src: "user1", action: "work", args: [] } as const;
    await store!.record("agent1", request, { type: MessageType.ActionResponse, result: 42 });
    expect(factory.exchange.results?.size).toBe(1);
    const binder = { getHandle: (agentId: never) => ({ agentId }) };
    expect(await (await factory.resultStore())!.lookup("agent1", request, binder)).toMatchObject({ result: 42 });
    expect(await store!.lookup("agent1", request, binder)).toMatchObject({ result: 42 });
    await rebuilt.close();
    await factory.close();
    const off = new LocalExchangeFactory({ resultWindowMs: 0 });
    const rebuiltOff = await rebuild(off.forWorker());
    expect(await rebuiltOff.resultStore!()).toBeUndefined();
    await rebuiltOff.close();
    await off.close();
  });
});

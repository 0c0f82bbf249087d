/**
 * Credentials against real nats-servers that require them: a user and password, an nkey, a token,
 * and TLS with client certificates (generated here with `openssl`). A refused credential is an
 * `AuthenticationError`, whose message never carries the secret; worker-thread agents connect with
 * the same credentials (they get the options, not an authenticator function).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nkeys } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AuthenticationError, ExchangeUnavailableError, Manager, NatsExchangeFactory, WorkerThreadExecutor } from "../../../src/index.ts";
import type { NatsExchangeOptions } from "../../../src/index.ts";
import { startNatsServer } from "../../../src/testing/index.ts";
import type { NatsServer } from "../../../src/testing/index.ts";
import { Counter } from "../../fixtures/worker-agents.ts";

const dir = mkdtempSync(join(tmpdir(), "academy-auth-"));
const nkey = nkeys.createUser();
const seedFile = join(dir, "user.nk");
writeFileSync(seedFile, `${new TextDecoder().decode(nkey.getSeed())}\n`);
const otherSeedFile = join(dir, "other.nk");
writeFileSync(otherSeedFile, new TextDecoder().decode(nkeys.createUser().getSeed()));

let users: NatsServer;
let tokens: NatsServer;

beforeAll(async () => {
  [users, tokens] = await Promise.all([
    startNatsServer({
      extraConfig: `authorization { users = [ { user: alice, password: s3cret }, { nkey: ${nkey.getPublicKey()} } ] }`,
    }),
    startNatsServer({ extraConfig: "authorization { token: t0ken-secret }" }),
  ]);
});
afterAll(async () => {
  await Promise.all([users?.[Symbol.asyncDispose](), tokens?.[Symbol.asyncDispose]()]);
  rmSync(dir, { recursive: true, force: true });
});

let serial = 0;
/** A factory with `options` on its own prefix; it must connect and serve a user client. */
async function connects(options: NatsExchangeOptions): Promise<void> {
  const factory = new NatsExchangeFactory({ prefix: `auth${serial++}`, retryWindowMs: 2_000, ...options });
  try {
    const client = await factory.createUserClient();
    await client.close();
  } finally {
    await factory.close();
  }
}

/** What connecting with `options` fails with. */
async function refusal(options: NatsExchangeOptions): Promise<Error> {
  const error = await connects(options).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(error).toBeDefined();
  return error!;
}

describe("NATS credentials", () => {
  test("a user and password, and an nkey seed file, are accepted; wrong ones are an AuthenticationError", async () => {
    await connects({ servers: users.url, user: "alice", password: "s3cret" });
    await connects({ servers: users.url, nkeySeedFile: seedFile });
    for (const wrong of [
      { servers: users.url, user: "alice", password: "wrong-pass" },
      { servers: users.url, nkeySeedFile: otherSeedFile },
      { servers: users.url },
    ]) {
      const error = await refusal(wrong);
      expect(error).toBeInstanceOf(AuthenticationError);
      expect(error).toMatchObject({ code: "AUTHENTICATION" });
      expect(error.message).not.toContain("wrong-pass");
    }
  });

  test("credentials in a server URL are used, and never part of an error message", async () => {
    const withPassword = users.url.replace("nats://", "nats://alice:wr0ng-secret@");
    const refused = await refusal({ servers: withPassword });
    expect(refused).toBeInstanceOf(AuthenticationError);
    expect(refused.message).not.toContain("wr0ng-secret");
    // Unreachable, with credentials in the URL: still an unavailable exchange, still redacted.
    const unreachable = await refusal({ servers: "nats://bob:hunter2@127.0.0.1:1" });
    expect(unreachable).toBeInstanceOf(ExchangeUnavailableError);
    expect(unreachable.message).not.toContain("hunter2");
    await connects({ servers: users.url.replace("nats://", "nats://alice:s3cret@") });
    await connects({ servers: tokens.url.replace("nats://", "nats://t0ken-secret@") });
  });

  test("a token is accepted; a wrong one is an AuthenticationError", async () => {
    await connects({ servers: tokens.url, token: "t0ken-secret" });
    const error = await refusal({ servers: tokens.url, token: "not-it" });
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error.message).not.toContain("not-it");
  });

  test("worker-thread agents connect with the factory's nkey", async () => {
    const factory = new NatsExchangeFactory({ servers: users.url, prefix: `auth${serial++}`, nkeySeedFile: seedFile });
    await using manager = await Manager.fromExchangeFactory(factory, {
      executors: {
        workers: new WorkerThreadExecutor({
          modules: [new URL("../../fixtures/worker-agents.ts", import.meta.url)],
          maxWorkers: 1,
          execArgv: ["--import", new URL("../../fixtures/register-tsx.mjs", import.meta.url).href],
        }),
      },
    });
    const counter = await manager.launch(Counter, { args: [40], executor: "workers" });
    expect(await counter.action("increment", 2)).toBe(42);
    await manager.shutdown(counter);
  });

  test("TLS with a CA and a client certificate", async (context) => {
    const openssl = opensslPath();
    if (openssl === undefined) {
      context.skip("openssl is not installed: the TLS case needs it to make certificates (apt-get install openssl)");
      return;
    }
    const tls = makeCertificates(openssl, join(dir, "tls"));
    await using server = await startNatsServer({
      extraConfig: `tls { cert_file: "${tls.serverCert}", key_file: "${tls.serverKey}", ca_file: "${tls.ca}", verify: true }`,
    });
    await connects({ servers: server.url, tls: { caFile: tls.ca, certFile: tls.clientCert, keyFile: tls.clientKey } });
    // Without the client certificate the server refuses the handshake: not reachable as asked.
    const error = await refusal({ servers: server.url, tls: { caFile: tls.ca }, connectionOptions: { timeout: 2_000 } });
    expect(error).toBeInstanceOf(ExchangeUnavailableError);
  });
});

function opensslPath(): string | undefined {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return "openssl";
  } catch {
    return undefined;
  }
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(openssl: string, base: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  execFileSync("mkdir", ["-p", base]);
  const file = (name: string): string => join(base, name);
  const run = (...args: string[]): void => {
    execFileSync(openssl, args, { stdio: "pipe" });
  };
  run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=academy-test-ca", "-keyout", file("ca.key"), "-out", file("ca.pem"));
  writeFileSync(file("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  writeFileSync(file("client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const who of ["server", "client"]) {
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=academy-test-${who}`, "-keyout", file(`${who}.key`), "-out", file(`${who}.csr`));
    run("x509", "-req", "-in", file(`${who}.csr`), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", file(`${who}.ext`), "-out", file(`${who}.pem`));
  }
  return { ca: file("ca.pem"), serverCert: file("server.pem"), serverKey: file("server.key"), clientCert: file("client.pem"), clientKey: file("client.key") };
}

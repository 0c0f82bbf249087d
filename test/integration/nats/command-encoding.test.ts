/** nats.js's protocol lines encoded with Buffer.from: every command still reaches the server as nats.js's own encoding would. */
import { connect } from "@nats-io/transport-node";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { Msg, NatsConnection } from "@nats-io/nats-core";
import { describe, expect, test } from "vitest";
import { encodeCommandsWithBuffer } from "../../../src/exchange/nats/command-encoding.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

/** The fixture's own connection, which no test batches or re-encodes, watches what the others send. */
const observer = (): NatsConnection => shared.nc;

describe("command encoding", () => {
  test("SUB, PUB, HPUB (with and without a reply subject) and UNSUB go through it and arrive intact", async () => {
    const nc = await connect(shared.nats.connectionOptions);
    const protocol = (nc as unknown as { protocol: { sendCommand(cmd: unknown, ...payloads: unknown[]): void } }).protocol;
    const original = protocol.sendCommand;
    expect(encodeCommandsWithBuffer(nc)).toBe(true);
    expect(encodeCommandsWithBuffer(nc)).toBe(true); // idempotent
    expect(protocol.sendCommand).not.toBe(original);

    // Commands reach nats.js already encoded: count what the wrapper hands on.
    const handed: unknown[] = [];
    const wrapped = protocol.sendCommand;
    protocol.sendCommand = (cmd: unknown, ...payloads: unknown[]) => {
      handed.push(cmd);
      wrapped(cmd, ...payloads);
    };
    const seen: Msg[] = [];
    const sub = nc.subscribe("enc.>", { callback: (_e, m) => void seen.push(m) });
    const fromObserver: Msg[] = [];
    const observed = observer().subscribe("enc.>", { callback: (_e, m) => void fromObserver.push(m) });
    await observer().flush();
    await nc.flush();

    const h = natsHeaders();
    h.set("Nats-Msg-Id", "m-1");
    h.set("Academy-Src", "ünï");
    nc.publish("enc.plain", new Uint8Array([1, 2, 3]));
    nc.publish("enc.reply", new Uint8Array([4]), { reply: "enc-inbox.1" });
    nc.publish("enc.headers", new Uint8Array([5]), { headers: h });
    nc.publish("enc.both", new Uint8Array([6]), { headers: h, reply: "enc-inbox.2" });
    nc.publish("enc.ütf", new Uint8Array([7]));
    await nc.flush();
    await expect.poll(() => fromObserver.length, { timeout: 10_000 }).toBe(5);
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(5);

    for (const got of [seen, fromObserver]) {
      expect(got.map((m) => [m.subject, [...m.data], m.reply ?? ""])).toEqual([
        ["enc.plain", [1, 2, 3], ""],
        ["enc.reply", [4], "enc-inbox.1"],
        ["enc.headers", [5], ""],
        ["enc.both", [6], "enc-inbox.2"],
        ["enc.ütf", [7], ""],
      ]);
      expect(got[2]!.headers?.get("Nats-Msg-Id")).toBe("m-1");
      expect(got[3]!.headers?.get("Academy-Src")).toBe("ünï");
    }
    // SUB and five publishes at least (PING is pre-encoded by nats.js): strings nats.js built.
    expect(handed.filter((cmd) => typeof cmd === "string").length).toBeGreaterThanOrEqual(6);

    sub.unsubscribe();
    await nc.flush();
    nc.publish("enc.after", new Uint8Array([8]));
    await nc.flush();
    await expect.poll(() => fromObserver.length, { timeout: 10_000 }).toBe(6);
    expect(seen).toHaveLength(5);
    observed.unsubscribe();
    await nc.close();
  });
});

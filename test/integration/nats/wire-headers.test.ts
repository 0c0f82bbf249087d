/**
 * The NATS headers the library puts on mailbox messages (PROTOCOL.md 6.3), read off the wire by a
 * second connection: a request carries its tag as `Nats-Msg-Id` and its sender as `Academy-Src`
 * (how an agent answers a request whose body it cannot read); a response carries `r:<tag>` and
 * nothing else (it is never answered); a result record carries no headers at all.
 */
import type { Msg } from "@nats-io/nats-core";
import { describe, expect, test } from "vitest";
import { Agent, Manager, NatsExchangeFactory, action } from "../../../src/index.ts";
import { decodeMessage } from "../../../src/protocol/codec.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

class Echo extends Agent {
  @action async echo(value: string): Promise<string> {
    return value;
  }
}

describe("headers of mailbox messages", () => {
  test("a request carries Nats-Msg-Id (its tag) and Academy-Src; its response only Nats-Msg-Id r:<tag>; its record none", async () => {
    const prefix = `wire${process.pid}`;
    await using manager = await Manager.fromExchangeFactory(
      new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix }),
    );
    const handle = await manager.launch(Echo);
    await handle.echo("warm");

    const mailboxes: Msg[] = [];
    const records: Msg[] = [];
    const watching = shared.nc.subscribe(`${prefix}.mbox.>`, { callback: (_e, m) => void mailboxes.push(m) });
    const watchingRecords = shared.nc.subscribe(`$KV.${prefix}_results.>`, { callback: (_e, m) => void records.push(m) });
    await shared.nc.flush();
    expect(await handle.echo("hello")).toBe("hello");
    await expect.poll(() => records.length).toBe(1);
    watching.unsubscribe();
    watchingRecords.unsubscribe();

    const agentUid = handle.agentId.uid;
    const request = mailboxes.find((m) => m.subject === `${prefix}.mbox.${agentUid}`)!;
    const response = mailboxes.find((m) => m.subject !== `${prefix}.mbox.${agentUid}`)!;
    expect(mailboxes).toHaveLength(2);
    const decodedRequest = decodeMessage(request.data, { getHandle: (agentId) => ({ agentId }) });
    expect(decodedRequest.type).toBe("action-request");
    const tag = decodedRequest.tag;
    expect(tag).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect([...request.headers!.keys()].sort()).toEqual(["Academy-Src", "Nats-Msg-Id"]);
    expect(request.headers!.get("Nats-Msg-Id")).toBe(tag);
    expect(request.headers!.get("Academy-Src")).toBe((decodedRequest as { src?: string }).src);
    expect(response.subject).toBe(`${prefix}.mbox.${(decodedRequest as { src?: string }).src}`);
    expect([...response.headers!.keys()]).toEqual(["Nats-Msg-Id"]);
    expect(response.headers!.get("Nats-Msg-Id")).toBe(`r:${tag}`);
    expect(records[0]!.subject).toBe(`$KV.${prefix}_results.${agentUid}.${tag}`);
    expect(records[0]!.headers === undefined || [...records[0]!.headers.keys()].length === 0).toBe(true);
    expect(records[0]!.data).toEqual(response.data);
  });
});

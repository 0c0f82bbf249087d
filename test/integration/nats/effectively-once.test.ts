import { headers as natsHeaders } from "@nats-io/nats-core";
import { NatsExchangeFactory } from "../../../src/index.ts";
import { encodeMessage } from "../../../src/protocol/codec.ts";
import { NatsHeader } from "../../../src/protocol/messages.ts";
import { describeEffectivelyOnce } from "../../conformance/effectively-once.ts";
import { natsForFile } from "../../support/nats.ts";

const shared = natsForFile();

let counter = 0;


for (const replies of ["mailbox", "core"] as const) {
  describeEffectivelyOnce(`NATS JetStream exchange, replies: ${replies}`, () => ({
    newFactory: (options) =>
      new NatsExchangeFactory({ servers: shared.nats.url, connectionOptions: shared.nats.connectionOptions, prefix: `once${process.pid}_${++counter}`, replies, ...options }),
    // A new message with the same envelope (a new message id, so JetStream stores it), marked as
    // a re-publication: what a sender's retry after the duplicate window stores.
    redeliver: async (factory, request) => {
      const ctx = await (factory as NatsExchangeFactory).context();
      const headers = natsHeaders();
      headers.set(NatsHeader.MsgId, `redelivered:${request.tag}:${++counter}`);
      if (request.src !== undefined) headers.set(NatsHeader.Source, request.src);
      headers.set(NatsHeader.Resent, "1");
      await ctx.js.publish(ctx.layout.mailboxSubject(request.dest), encodeMessage(request), { headers });
    },
  }));
}

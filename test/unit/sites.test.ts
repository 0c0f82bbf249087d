/** Sites without a network: ids that carry their site, the envelope key srcSite, the send rule, names and options. */
import { describe, expect, test } from "vitest";
import { AgentId, AgentTerminatedError, BadEntityIdError, InvalidConfigError, MailboxStatus, NatsExchangeFactory, UserId, natsLayout } from "../../src/index.ts";
import { assertSendable, isSendable } from "../../src/exchange/mailbox-status.ts";
import { HandleReference, decodeMessage, decodeValue, encodeMessage, encodeValue } from "../../src/protocol/codec.ts";
import { responseRouting, toEnvelope } from "../../src/protocol/messages.ts";
import type { Message } from "../../src/protocol/messages.ts";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
/** Tag 44032 (agent id) around the CBOR of `content`. */
const agentTag = (content: unknown): string => `d9ac00${hex(encodeValue(content))}`;

class FakeHandle extends HandleReference {
  constructor(readonly agentId: AgentId) {
    super();
  }
}

describe("ids that carry their site", () => {
  test("an id with a site is [uid, name or null, site]; without one, the version-1 content, byte for byte", () => {
    const uid = "6a2ff749-f30f-4909-ba04-f57c938b1d88";
    expect(hex(encodeValue(new AgentId(uid, undefined, "s1")))).toBe(agentTag([uid, null, "s1"]));
    expect(hex(encodeValue(new AgentId(uid, "n", "s1")))).toBe(agentTag([uid, "n", "s1"]));
    expect(hex(encodeValue(new AgentId(uid)))).toBe(agentTag([uid]));
    expect(hex(encodeValue(new AgentId(uid, "n")))).toBe(agentTag([uid, "n"]));
    const back = decodeValue(encodeValue([new AgentId(uid, "n", "s1"), new UserId(uid, undefined, "cloud"), new AgentId(uid)])) as [AgentId, UserId, AgentId];
    expect([back[0].site, back[0].name, back[1].site, back[2].site]).toEqual(["s1", "n", "cloud", undefined]);
    expect(back[0].toString()).toBe("AgentId<n@s1>");
    expect(back[0].toJSON()).toEqual({ role: "agent", uid, name: "n", site: "s1" });
  });

  test("a handle keeps its site through the wire, bound to the receiving client", () => {
    const id = new AgentId("a1", undefined, "s2");
    const bound: AgentId[] = [];
    const value = decodeValue(encodeValue({ h: new FakeHandle(id) }), { getHandle: (agentId) => (bound.push(agentId), new FakeHandle(agentId)) });
    expect((value as { h: FakeHandle }).h.agentId.site).toBe("s2");
    expect(bound.map((b) => b.site)).toEqual(["s2"]);
  });

  test("a third item that is not text is malformed", () => {
    expect(() => decodeValue(Buffer.from(agentTag(["a", null, 1]), "hex"))).toThrow(/Malformed id tag/);
    expect((decodeValue(Buffer.from(agentTag(["a", null, null]), "hex")) as AgentId).site).toBeUndefined();
  });
});

describe("routing across sites", () => {
  const request: Message = { type: "action-request", tag: "t1", dest: "a1", src: "u1", action: "go", args: [], srcSite: "cloud", destSite: "s1" };

  test("srcSite travels in the envelope; destSite never does", () => {
    const envelope = toEnvelope(request);
    expect(envelope.srcSite).toBe("cloud");
    expect("destSite" in envelope).toBe(false);
    const decoded = decodeMessage(encodeMessage(request));
    expect([decoded.srcSite, decoded.destSite]).toEqual(["cloud", undefined]);
    const local = decodeMessage(encodeMessage({ type: "ping-request", tag: "t", dest: "a" }));
    expect(local.srcSite).toBeUndefined();
    expect(() => decodeMessage(encodeValue({ v: 1, type: "ping-request", tag: "t", dest: "a", srcSite: 7 }))).toThrow(/srcSite/);
  });

  test("the answer to a request from another site goes back to that site, unless it has a replyTo", () => {
    expect(responseRouting(request)).toEqual({ tag: "t1", dest: "u1", src: "a1", replyTo: undefined, destSite: "cloud" });
    expect(responseRouting({ ...request, replyTo: "_INBOX.x" })).toEqual({ tag: "t1", dest: "", src: "a1", replyTo: "_INBOX.x" });
    expect(responseRouting({ tag: "t", dest: "a", src: "u" })).toEqual({ tag: "t", dest: "u", src: "a", replyTo: undefined });
  });

  test("a remote mailbox the mirror does not know yet may be sent to; a terminated one never", () => {
    expect(isSendable(MailboxStatus.Missing, true)).toBe(true);
    expect(isSendable(MailboxStatus.Missing, false)).toBe(false);
    expect(isSendable(MailboxStatus.Terminated, true)).toBe(false);
    expect(isSendable(MailboxStatus.Active, false)).toBe(true);
    expect(() => assertSendable(MailboxStatus.Missing, "a1", true)).not.toThrow();
    expect(() => assertSendable(MailboxStatus.Missing, "a1", false)).toThrow(BadEntityIdError);
    expect(() => assertSendable(MailboxStatus.Terminated, "a1", true)).toThrow(AgentTerminatedError);
  });
});

describe("names and options", () => {
  test("outbox, inbox and relay names", () => {
    const layout = natsLayout("cloud");
    expect(layout.outboxStream("s1")).toBe("cloud_out_s1");
    expect(layout.outboxSubjects("s1")).toBe("cloud.out.s1.>");
    expect(layout.outboxMailboxSubject("s1", "u-1")).toBe("cloud.out.s1.mbox.u-1");
    expect(layout.outboxLaunchSubject("s1", "gpu", "u-1")).toBe("cloud.out.s1.launch.gpu.u-1");
    expect(layout.inboxStream("s1")).toBe("cloud_in_s1");
    expect(() => layout.outboxStream("s.1")).toThrow(InvalidConfigError);
  });

  test("sites need a domain, distinct names and domains, none the factory's own", () => {
    const site = { name: "s1", domain: "s1" };
    expect(() => new NatsExchangeFactory({ sites: [site] })).toThrow(/needs domain/);
    expect(() => new NatsExchangeFactory({ domain: "hub", sites: [site, { name: "s1", domain: "s2" }] })).toThrow(/twice/);
    expect(() => new NatsExchangeFactory({ domain: "hub", sites: [site, { name: "s2", domain: "s1" }] })).toThrow(/twice/);
    expect(() => new NatsExchangeFactory({ prefix: "s1", domain: "hub", sites: [site] })).toThrow(/own site/);
    expect(() => new NatsExchangeFactory({ domain: "s1", sites: [site] })).toThrow(/own site/);
    expect(() => new NatsExchangeFactory({ domain: "h.b" })).toThrow(InvalidConfigError);
    expect(() => new NatsExchangeFactory({ domain: "hub", sites: [{ name: "", domain: "x" }] })).toThrow(InvalidConfigError);
    expect(() => new NatsExchangeFactory({ domain: "hub", outboxMaxAgeMs: 0 })).toThrow(InvalidConfigError);
    expect(() => new NatsExchangeFactory({ relay: "no" as unknown as boolean })).toThrow(/relay must be a boolean/);
    const factory = new NatsExchangeFactory({ prefix: "cloud", domain: "hub", sites: [site] });
    const settings = factory.settings;
    expect([settings.domain, settings.sites, settings.outboxMaxAgeMs, settings.relay]).toEqual(["hub", [site], 86_400_000, true]);
    // Worker threads keep the sites but leave relaying to their parent process.
    expect(factory.forWorker().data).toMatchObject({ domain: "hub", sites: [site], relay: false });
  });
});

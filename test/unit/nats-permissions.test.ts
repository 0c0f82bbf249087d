/**
 * natsPermissions: the allow lists of each role, and docs/NATS-LAYOUT.md section 11.1, which lists
 * them for people writing a server configuration by hand, must say the same thing.
 */
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { InvalidConfigError, NatsRole, natsPermissions } from "../../src/index.ts";

const ROLES = Object.values(NatsRole);

/** The lists for prefix `<p>` and inbox prefix `<inbox>`, as the document writes them. */
function documented(role: NatsRole): { publish: Set<string>; subscribe: Set<string> } {
  const p = natsPermissions({ role, prefix: "PFX", inboxPrefix: "_INBOX.USER" });
  const fix = (s: string): string => s.replaceAll("PFX", "<p>").replaceAll("_INBOX.USER", "<inbox>");
  return { publish: new Set(p.publish.allow.map(fix)), subscribe: new Set(p.subscribe.allow.map(fix)) };
}

/** The rows of the permissions table of docs/NATS-LAYOUT.md 11.1: roles, publish, subscribe. */
function tableOfDocs(): Array<{ roles: string[]; publish: string[]; subscribe: string[] }> {
  const doc = readFileSync(new URL("../../docs/NATS-LAYOUT.md", import.meta.url), "utf8");
  const section = doc.slice(doc.indexOf("### 11.1 NATS permissions"), doc.indexOf("## 12."));
  const rows = section.split("\n").filter((line) => line.startsWith("| ") && !line.startsWith("| Purpose") && !line.startsWith("| ---"));
  const subjects = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
  return rows.map((line) => {
    const [, roles = "", publish = "", subscribe = ""] = line.split("|").slice(1, -1).map((c) => c.trim());
    return { roles: roles.split(",").map((r) => r.trim()), publish: subjects(publish), subscribe: subjects(subscribe) };
  });
}

describe("natsPermissions", () => {
  test("docs/NATS-LAYOUT.md 11.1 lists exactly what each role gets", () => {
    const rows = tableOfDocs();
    expect(rows.length).toBeGreaterThan(10);
    for (const role of ROLES) {
      const inDocs = { publish: new Set<string>(), subscribe: new Set<string>() };
      for (const row of rows.filter((r) => r.roles.includes(role))) {
        for (const s of row.publish) inDocs.publish.add(s);
        for (const s of row.subscribe) inDocs.subscribe.add(s);
      }
      const expected = documented(role);
      expect([...inDocs.publish].sort(), `${role} publish`).toEqual([...expected.publish].sort());
      expect([...inDocs.subscribe].sort(), `${role} subscribe`).toEqual([...expected.subscribe].sort());
    }
  });

  test("every user subscribes only under its own inbox prefix, plus the deliver subjects and advisories of library readers", () => {
    for (const role of ROLES) {
      const { subscribe } = natsPermissions({ role, inboxPrefix: "_INBOX.alice" });
      for (const subject of subscribe.allow) expect(subject).toMatch(/^(_INBOX\.alice\.>|academy\.deliver\.>|\$JS\.EVENT\.ADVISORY\.CONSUMER\.(DELETED|LEADER_ELECTED)\.academy_mailboxes\.\*|\$JS\.EVENT\.ADVISORY\.STREAM\.LEADER_ELECTED\.academy_mailboxes)$/);
    }
    expect(natsPermissions({ role: NatsRole.ForeignCaller, inboxPrefix: "_INBOX.alice" }).subscribe.allow).toEqual(["_INBOX.alice.>"]);
  });

  test("no role may delete streams or create them unless it provisions", () => {
    for (const role of ROLES) {
      const { publish } = natsPermissions({ role });
      expect(publish.allow.filter((s) => s.includes("STREAM.DELETE") || s.includes("STREAM.CREATE") || s === ">" || s.startsWith("$JS.API.>"))).toEqual([]);
    }
    const provisioning = natsPermissions({ role: NatsRole.Host, prefix: "x", provision: true }).publish.allow.filter((s) => s.includes("STREAM.CREATE"));
    expect(provisioning.sort()).toEqual(
      ["x_mailboxes", "x_dead_letters", "KV_x_registry", "KV_x_types", "KV_x_type_lists", "KV_x_state", "KV_x_reminders", "x_launches", "KV_x_hosts", "KV_x_placements", "KV_x_results"].map((n) => `$JS.API.STREAM.CREATE.${n}`).sort(),
    );
  });

  test("foreign callers can be limited to named mailboxes and denied the registry; hosts to their pools", () => {
    const uid = "0f8e2a4c-7b1d-4e69-9c35-a2d4f6b8e013";
    const restricted = natsPermissions({ role: NatsRole.ForeignCaller, mailboxes: [uid], registry: false, inboxPrefix: "_INBOX.m" });
    expect(restricted.publish.allow.sort()).toEqual(["$JS.API.INFO", `academy.mbox.${uid}`].sort());
    const host = natsPermissions({ role: NatsRole.Host, pools: ["gpu"] }).publish.allow;
    expect(host).toContain("academy.launch.gpu.*");
    expect(host).toContain("$JS.API.CONSUMER.MSG.NEXT.academy_launches.pool-gpu");
    expect(host).not.toContain("academy.launch.>");
    expect(natsPermissions({ role: NatsRole.Agent, replySubjects: ["_INBOX.alice.>"] }).publish.allow).not.toContain("_INBOX.>");
  });

  test("bad names are InvalidConfigError", () => {
    expect(() => natsPermissions({ role: NatsRole.Caller, prefix: "a.b" })).toThrow(InvalidConfigError);
    expect(() => natsPermissions({ role: NatsRole.ForeignCaller, mailboxes: ["x.>"] })).toThrow(InvalidConfigError);
    expect(() => natsPermissions({ role: NatsRole.Host, pools: ["a b"] })).toThrow(InvalidConfigError);
  });
});

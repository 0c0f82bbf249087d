/**
 * The dashboard's state and HTML, without a server or a browser: rates from host records, which
 * agents and letters are shown, what changed, and escaping of everything users write. The page
 * in a browser is test/browser/dashboard.test.ts.
 */
import { describe, expect, test } from "vitest";
import { EntityRole } from "../../src/identifiers.ts";
import type { DeadLetter } from "../../src/exchange/dead-letters.ts";
import type { HostEntry, MailboxEntry } from "../../src/pool/pool-backend.ts";
import { POOL_RECORD_VERSION } from "../../src/pool/records.ts";
import type { HostRecord, Placement } from "../../src/pool/records.ts";
import { PlacementState } from "../../src/pool/placement.ts";
import { escapeHtml, renderPage, renderSection } from "../../runtime/dashboard-html.ts";
import { DashboardSection, DashboardState, MAX_LETTER_ROWS, TERMINATED_AGENT_ROWS } from "../../runtime/dashboard-state.ts";

const T0 = 1_800_000_000_000;

function host(hostId: string, at: number, actions: number | undefined, extra: Partial<HostRecord> = {}): HostEntry {
  const value: HostRecord = {
    v: POOL_RECORD_VERSION, hostId, name: hostId, pool: "p", hostname: "m", pid: 1, capacity: 10, load: 2, types: ["A"],
    startedAt: T0, heartbeatAt: at, heartbeatMs: 1_000, ttlMs: 3_000, draining: false, version: "0.1.0",
    ...(actions !== undefined && { stats: { actions, failed: 0 } }),
    ...extra,
  };
  return { value, revision: at, written: new Date(at) };
}

function mailbox(uid: string, extra: Partial<MailboxEntry> = {}): MailboxEntry {
  return { uid, role: EntityRole.Agent, name: undefined, type: "A", status: "active" as never, registeredAt: T0, revision: 1, ...extra };
}

function placement(uid: string, extra: Partial<Placement> = {}): Placement {
  return {
    v: POOL_RECORD_VERSION, uid, name: undefined, type: "A", chain: ["A", "Agent"], pool: "p", gen: 0, attempt: 0, args: new Uint8Array(),
    config: {}, maxRetries: 0, retryBackoffMs: 100, launchedAt: T0, state: PlacementState.Running, host: "h1", updatedAt: T0, ...extra,
  };
}

function letter(id: number, extra: Partial<DeadLetter> = {}): DeadLetter {
  return { id, kind: "mailbox", mailbox: "u1", time: new Date(T0), reason: "MALFORMED_MESSAGE", error: "bad", originalSubject: undefined, headers: {}, data: new Uint8Array(), ...extra };
}

describe("dashboard state", () => {
  test("actions per second come from the counts in consecutive host records, on each host's clock; late hosts do not count", () => {
    let now = T0;
    const state = new DashboardState("academy", () => now);
    state.putHost(host("h1", T0, 100));
    expect(state.view().hosts[0]!.actionsPerSecond).toBeUndefined();
    state.putHost(host("h1", T0 + 2_000, 160));
    state.putHost(host("h2", T0 + 1_000, 0));
    state.putHost(host("h2", T0 + 2_000, 10));
    now = T0 + 2_100;
    state.tick();
    let view = state.view();
    expect(view.hosts.map((h) => h.actionsPerSecond)).toEqual([30, 10]);
    expect(view.actions.perSecond).toBe(40);
    // h1 stops heartbeating: late after two intervals, and its rate no longer counts.
    now = T0 + 4_500;
    state.putHost(host("h2", T0 + 4_000, 30));
    state.tick();
    view = state.view();
    expect(view.hosts.map((h) => h.state)).toEqual(["late", "serving"]);
    expect(view.actions.perSecond).toBe(10);
    expect(view.actions.history).toEqual([40, 10]);
    // A host without counts (an older version) has no rate; a removed host is gone.
    state.putHost(host("h3", T0 + 4_000, undefined));
    state.putHost(host("h3", T0 + 4_400, undefined));
    expect(state.view().hosts.find((h) => h.hostId === "h3")?.actionsPerSecond).toBeUndefined();
    state.removeHost("h1");
    expect(state.view().hosts.map((h) => h.hostId)).toEqual(["h2", "h3"]);
  });

  test("agents: every active one and the most recently terminated, newest first, with placement, depth and last error", () => {
    const state = new DashboardState("academy", () => T0);
    state.putMailbox(mailbox("old", { registeredAt: T0 - 10 }));
    state.putMailbox(mailbox("new", { registeredAt: T0, name: "worker" }));
    state.putMailbox({ ...mailbox("user"), role: EntityRole.User });
    for (let i = 0; i < TERMINATED_AGENT_ROWS + 5; i++) {
      state.putMailbox(mailbox(`t${i}`, { status: "terminated" as never, registeredAt: T0 - 1_000, terminatedAt: T0 - 1_000 + i }));
    }
    state.putPlacement(placement("new", { state: PlacementState.Retrying, error: { type: "RangeError", message: "boom" }, updatedAt: T0 + 5 }));
    state.putPlacement(placement("new", { state: PlacementState.Running, updatedAt: T0 + 1 })); // older: ignored
    state.setDepths(new Map([["old", 3]]));
    const { agents } = state.view();
    expect(agents.active).toBe(2);
    expect(agents.terminated).toBe(TERMINATED_AGENT_ROWS + 5);
    expect(agents.hidden).toBe(5);
    expect(agents.rows.slice(0, 2).map((a) => [a.agentId, a.name, a.placement, a.lastError, a.mailboxDepth])).toEqual([
      ["new", "worker", "retrying", "RangeError: boom", 0],
      ["old", undefined, undefined, undefined, 3],
    ]);
    // The most recently terminated are the ones shown.
    expect(agents.rows.filter((a) => a.status === "terminated").map((a) => a.agentId)).not.toContain("t0");
    expect(agents.rows.map((a) => a.agentId)).toContain(`t${TERMINATED_AGENT_ROWS + 4}`);
    state.removeMailbox("old");
    expect(state.view().agents.active).toBe(1);
  });

  test("dead letters: the newest shown, the count from the store, those replayed or purged dropped", () => {
    const state = new DashboardState("academy", () => T0);
    state.addLetters(Array.from({ length: MAX_LETTER_ROWS + 10 }, (_, i) => letter(i + 1)));
    let view = state.view();
    expect(view.letters.rows).toHaveLength(MAX_LETTER_ROWS);
    expect(view.letters.rows[0]!.id).toBe(MAX_LETTER_ROWS + 10);
    expect(state.lastLetterId).toBe(MAX_LETTER_ROWS + 10);
    expect(state.firstLetterId).toBe(11);
    state.setLetterCount(MAX_LETTER_ROWS + 10);
    expect(state.view().letters.total).toBe(MAX_LETTER_ROWS + 10);
    // Letters 11..59 listed again, 60 gone (replayed).
    state.replaceLettersFrom(11, Array.from({ length: MAX_LETTER_ROWS - 1 }, (_, i) => letter(i + 11)));
    view = state.view();
    expect(view.letters.rows[0]!.id).toBe(59);
    expect(view.letters.rows.some((l) => l.id === 60)).toBe(false);
  });

  test("each change names the sections to send again; unchanged depths and counts send nothing", () => {
    const state = new DashboardState("academy", () => T0);
    const changed: string[] = [];
    state.onChange((section) => changed.push(section));
    state.putHost(host("h1", T0, 0));
    state.putMailbox(mailbox("a"));
    state.setDepths(new Map([["a", 1]]));
    state.setDepths(new Map([["a", 1]]));
    state.addLetters([letter(1)]);
    state.setLetterCount(1);
    state.setLetterCount(1);
    state.setConnection("connected");
    state.setConnection("connected");
    expect(changed).toEqual(["hosts", "summary", "agents", "summary", "agents", "letters", "summary", "letters", "summary", "summary"]);
  });
});

describe("dashboard HTML", () => {
  test("escapeHtml escapes every character that could open markup or end an attribute", () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe("&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
  });

  test("names, types, errors, pools and dead-letter reasons are shown as text", () => {
    const state = new DashboardState(`<prefix>`, () => T0);
    const evil = `<script>alert("x")</script>`;
    state.putHost(host(`h"1`, T0, 0, { pool: evil, version: evil, hostname: evil }));
    state.putMailbox(mailbox(`u1`, { name: evil, type: evil }));
    state.putPlacement(placement("u1", { pool: evil, host: evil, error: { type: evil, message: evil } }));
    state.addLetters([letter(7, { reason: evil, error: evil, mailbox: evil })]);
    state.setConnection("waiting", evil);
    const view = state.view();
    const html = [renderPage(view), ...Object.values(DashboardSection).map((s) => renderSection(s, view))].join("\n");
    expect(html).not.toContain("<script>alert");
    expect(html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    expect(html).toContain('data-host-id="h&quot;1"');
    // The only script is the page's own file.
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html).toContain('<script src="/dashboard.js" defer></script>');
  });

  test("the page renders every section, each with the element the script fills", () => {
    const state = new DashboardState("academy", () => T0);
    const page = renderPage(state.view());
    for (const section of Object.values(DashboardSection)) expect(page).toContain(`<section id="${section}">`);
    expect(page).toContain("No host has a record under this prefix.");
  });
});

/**
 * The dashboard's HTML, rendered on the server from a `DashboardView`: the whole page, and each
 * section on its own (what the page's script swaps in when the server sends it). Every value is
 * escaped: agent names, types, errors and dead-letter reasons are user data.
 */
import type { AgentView, DashboardView, HostView, LetterView } from "./dashboard-state.ts";
import { DashboardSection } from "./dashboard-state.ts";
import { formatAge } from "./listing.ts";

const ESCAPES: Readonly<Record<string, string>> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** `text` with `& < > " '` escaped, for element content and quoted attribute values. */
export function escapeHtml(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Escape, or a dash for nothing. */
function cell(value: unknown): string {
  return value === undefined || value === null || value === "" ? '<span class="none">-</span>' : escapeHtml(value);
}

/** A number of actions per second, to two significant places. */
function rate(perSecond: number | undefined): string {
  if (perSecond === undefined) return '<span class="none">-</span>';
  return perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}

/** The inner HTML of one section of the page. */
export function renderSection(section: DashboardSection, view: DashboardView): string {
  switch (section) {
    case DashboardSection.Summary:
      return renderSummary(view);
    case DashboardSection.Hosts:
      return renderHosts(view.hosts);
    case DashboardSection.Agents:
      return renderAgents(view.agents);
    case DashboardSection.Letters:
      return renderLetters(view.letters);
  }
}

function renderSummary(view: DashboardView): string {
  const serving = view.hosts.filter((h) => h.state === "serving").length;
  const connection =
    view.connection.state === "connected"
      ? '<span class="badge ok" data-testid="connection">live</span>'
      : `<span class="badge warn" data-testid="connection">waiting</span> <span class="detail">${cell(view.connection.detail)}</span>`;
  return `
<div class="tiles">
  <div class="tile"><div class="label">Actions per second</div><div class="value" data-testid="actions-per-second">${rate(view.actions.perSecond)}</div>${sparkline(view.actions.history)}</div>
  <div class="tile"><div class="label">Hosts serving</div><div class="value" data-testid="hosts-serving">${serving}<span class="of">/${view.hosts.length}</span></div></div>
  <div class="tile"><div class="label">Agents active</div><div class="value" data-testid="agents-active">${view.agents.active}</div></div>
  <div class="tile"><div class="label">Dead letters</div><div class="value${view.letters.total > 0 ? " alert" : ""}" data-testid="dead-letter-count">${view.letters.total}</div></div>
</div>
<p class="status">prefix <code>${escapeHtml(view.prefix)}</code> &middot; ${connection} &middot; <time data-testid="updated">${escapeHtml(new Date(view.at).toISOString())}</time></p>`;
}

/** A small line of the last minute's actions per second. */
function sparkline(history: readonly number[]): string {
  if (history.length < 2) return '<svg class="spark" viewBox="0 0 120 24" preserveAspectRatio="none" aria-hidden="true"></svg>';
  const max = Math.max(1, ...history);
  const step = 120 / (history.length - 1);
  const points = history.map((v, i) => `${(i * step).toFixed(1)},${(23 - (v / max) * 22).toFixed(1)}`).join(" ");
  return `<svg class="spark" viewBox="0 0 120 24" preserveAspectRatio="none" aria-hidden="true"><polyline points="${points}"/></svg>`;
}

function renderHosts(hosts: readonly HostView[]): string {
  if (hosts.length === 0) return '<h2>Hosts</h2><p class="empty">No host has a record under this prefix.</p>';
  const rows = hosts
    .map(
      (h) => `<tr data-host-id="${escapeHtml(h.hostId)}" class="state-${h.state}">
  <td><code>${escapeHtml(h.hostId)}</code></td><td>${cell(h.pool)}</td><td><span class="badge ${h.state === "serving" ? "ok" : "warn"}">${escapeHtml(h.state)}</span></td>
  <td class="num">${h.load}/${h.capacity} ${meter(h.load, h.capacity)}</td><td class="num">${escapeHtml(formatAge(h.heartbeatAgeMs))}</td>
  <td class="num">${rate(h.actionsPerSecond)}</td><td>${cell(h.machine)}</td><td>${cell(h.version)}</td>
</tr>`,
    )
    .join("\n");
  return `<h2>Hosts <span class="count">${hosts.length}</span></h2>
<table data-testid="hosts"><thead><tr><th>Host</th><th>Pool</th><th>State</th><th>Load</th><th>Heartbeat</th><th>Actions/s</th><th>Machine</th><th>Version</th></tr></thead>
<tbody>
${rows}
</tbody></table>`;
}

function meter(load: number, capacity: number): string {
  const percent = capacity > 0 ? Math.round(Math.min(1, load / capacity) * 100) : 0;
  // SVG attributes, not a style attribute: the page's content security policy allows no inline style.
  return `<svg class="meter" viewBox="0 0 100 6" aria-hidden="true"><rect class="track" width="100" height="6"/><rect class="fill" width="${percent}" height="6"/></svg>`;
}

function renderAgents(agents: DashboardView["agents"]): string {
  const title = `<h2>Agents <span class="count">${agents.active} active${agents.terminated > 0 ? `, ${agents.terminated} terminated` : ""}</span></h2>`;
  if (agents.rows.length === 0) return `${title}<p class="empty">No agent is registered under this prefix.</p>`;
  const rows = agents.rows.map(agentRow).join("\n");
  const more = agents.hidden > 0 ? `<p class="more">${agents.hidden} more not shown (older terminated agents, or past ${agents.rows.length} rows): <code>academy agents --all</code> lists them.</p>` : "";
  return `${title}
<table data-testid="agents"><thead><tr><th>Agent</th><th>Name</th><th>Type</th><th>Status</th><th>Placement</th><th>Host</th><th>Mailbox</th><th>Last error</th></tr></thead>
<tbody>
${rows}
</tbody></table>${more}`;
}

function agentRow(a: AgentView): string {
  const status = a.placement === undefined ? a.status : `${a.status}, ${a.placement}`;
  const bad = a.status !== "active" || a.placement === "failed" || a.placement === "retrying";
  return `<tr data-agent-id="${escapeHtml(a.agentId)}" class="${a.status === "active" ? "" : "inactive"}">
  <td><code>${escapeHtml(a.agentId)}</code></td><td>${cell(a.name)}</td><td>${cell(a.type)}</td>
  <td><span class="badge ${bad ? "warn" : "ok"}">${escapeHtml(status)}</span></td><td>${cell(a.pool)}</td><td>${a.host === undefined ? cell(undefined) : `<code>${escapeHtml(a.host)}</code>`}</td>
  <td class="num${a.mailboxDepth > 0 ? " busy" : ""}">${a.mailboxDepth}</td><td class="error">${cell(a.lastError)}</td>
</tr>`;
}

function renderLetters(letters: DashboardView["letters"]): string {
  const title = `<h2>Dead letters <span class="count">${letters.total}</span></h2>`;
  if (letters.rows.length === 0) return `${title}<p class="empty">None.</p>`;
  const rows = letters.rows.map(letterRow).join("\n");
  const more = letters.total > letters.rows.length ? `<p class="more">The newest ${letters.rows.length} of ${letters.total}: <code>academy dlq list</code> lists them all.</p>` : "";
  return `${title}
<table data-testid="letters"><thead><tr><th>Id</th><th>Kind</th><th>Mailbox or pool</th><th>Time</th><th>Reason</th><th>Error</th></tr></thead>
<tbody>
${rows}
</tbody></table>${more}`;
}

function letterRow(l: LetterView): string {
  return `<tr data-letter-id="${l.id}">
  <td class="num">${l.id}</td><td>${escapeHtml(l.kind)}</td><td><code>${escapeHtml(l.where)}</code></td><td class="num">${escapeHtml(timeOfDay(l.time))}</td>
  <td>${cell(l.reason)}</td><td class="error">${cell(l.error)}</td>
</tr>`;
}

/** A time as `2026-11-26 16:08:40Z` (UTC). */
function timeOfDay(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")}Z`;
}

/** The whole page: every section rendered now, then kept up to date by `/dashboard.js` over `/events`. */
export function renderPage(view: DashboardView): string {
  const sections = Object.values(DashboardSection)
    .map((s) => `<section id="${s}">${renderSection(s, view)}</section>`)
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>academy dashboard: ${escapeHtml(view.prefix)}</title>
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
<noscript><meta http-equiv="refresh" content="5"></noscript>
</head>
<body>
<header><h1>academy <span>dashboard</span></h1><span id="live" class="badge warn" data-testid="live">connecting</span></header>
<main>
${sections}
</main>
</body>
</html>
`;
}

/**
 * The dashboard's stylesheet and script, served as files (`/dashboard.css`, `/dashboard.js`) so
 * that the page's content security policy can forbid inline code. The script only swaps in the
 * sections the server sends over server-sent events (already rendered and escaped HTML); the
 * browser's `EventSource` reconnects by itself, and a reconnect gets every section again.
 */

/** `/dashboard.js`. */
export const DASHBOARD_SCRIPT = `"use strict";
(function () {
  var live = document.getElementById("live");
  function show(state, text) {
    live.textContent = text;
    live.className = "badge " + state;
  }
  var events = new EventSource("/events");
  events.addEventListener("open", function () { show("ok", "live"); });
  events.addEventListener("error", function () { show("warn", "reconnecting"); });
  events.addEventListener("section", function (message) {
    var update = JSON.parse(message.data);
    var section = document.getElementById(update.id);
    if (section !== null) section.innerHTML = update.html;
  });
})();
`;

/** `/dashboard.css`. */
export const DASHBOARD_STYLE = `:root {
  --bg: #f6f7f9; --panel: #fff; --ink: #1d2330; --muted: #6b7385; --line: #e3e6ec;
  --ok: #1f8a4c; --ok-bg: #e3f5ea; --warn: #a15c00; --warn-bg: #fff1d6; --alert: #b42318; --accent: #3454d1;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg);
}
body { margin: 0; }
header { display: flex; align-items: center; justify-content: space-between; padding: 12px 24px; background: #1d2330; color: #fff; }
header h1 { margin: 0; font-size: 18px; font-weight: 600; letter-spacing: .02em; }
header h1 span { font-weight: 400; opacity: .7; }
main { padding: 16px 24px 32px; max-width: 1400px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin-bottom: 16px; }
section#summary { background: none; border: none; padding: 0; }
h2 { font-size: 15px; margin: 0 0 8px; }
h2 .count { font-weight: 400; color: var(--muted); margin-left: 6px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.tile .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.tile .value { font-size: 28px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile .value.alert { color: var(--alert); }
.tile .of { font-size: 16px; color: var(--muted); font-weight: 400; }
.spark { width: 100%; height: 24px; }
.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.status { color: var(--muted); margin: 8px 2px 0; font-size: 12px; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 12px; color: var(--muted); font-weight: 500; border-bottom: 1px solid var(--line); padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
tr:last-child td { border-bottom: none; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.busy { color: var(--warn); font-weight: 600; }
td.error { color: var(--alert); max-width: 420px; overflow-wrap: anywhere; }
tr.inactive td { color: var(--muted); }
tr.state-late td { background: var(--warn-bg); }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: var(--ok-bg); color: var(--ok); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.none { color: var(--muted); }
.empty, .more { color: var(--muted); margin: 4px 0; }
.meter { width: 60px; height: 6px; vertical-align: middle; margin-left: 6px; }
.meter .track { fill: var(--line); }
.meter .fill { fill: var(--accent); }
`;

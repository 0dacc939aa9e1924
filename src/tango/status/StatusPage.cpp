#include "tango/status/StatusPage.hpp"

namespace tango::status {

namespace {

// Every value from the server is inserted with textContent, never innerHTML:
// job and courselab names are chosen by clients and must not become markup.
constexpr std::string_view kPage = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tango status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 10px 16px; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  #conn.bad { color: #ff8080; }
  main { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; padding: 12px; }
  section { background: #fff; border-radius: 6px; padding: 8px 12px; box-shadow: 0 1px 2px #0002; overflow: auto; max-height: 45vh; }
  section.wide { grid-column: 1 / 3; }
  h2 { font-size: 15px; margin: 4px 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 2px 8px 2px 0; border-bottom: 1px solid #eee; white-space: nowrap; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .success { color: #17803d; } .make_failed { color: #b26b00; } .timeout, .internal_error { color: #c0262d; }
  tr.finished { cursor: pointer; }
  pre.trace { white-space: pre-wrap; font-size: 12px; background: #f0f2f5; margin: 0; padding: 6px; }
  #counters { display: flex; flex-wrap: wrap; gap: 6px 18px; }
  #counters div b { font-variant-numeric: tabular-nums; }
  .more { color: #666; font-style: italic; }
</style>
</head>
<body>
<header><h1>Tango</h1><span id="summary">loading...</span><span id="conn"></span></header>
<main>
  <section class="wide"><h2>Counters</h2><div id="counters"></div></section>
  <section><h2>Queue <span id="queueTotal"></span></h2>
    <table><thead><tr><th>#</th><th>id</th><th>name</th><th>courselab</th><th>waiting</th></tr></thead><tbody id="queue"></tbody></table>
    <div id="queueMore" class="more"></div></section>
  <section><h2>Running</h2>
    <table><thead><tr><th>id</th><th>name</th><th>step</th><th>elapsed</th><th>VM</th></tr></thead><tbody id="running"></tbody></table></section>
  <section><h2>Pools</h2>
    <table><thead><tr><th>image</th><th>total</th><th>free</th></tr></thead><tbody id="pools"></tbody></table></section>
  <section><h2>Last finished (click for the trace)</h2>
    <table><thead><tr><th>id</th><th>name</th><th>outcome</th><th>duration</th><th>cpu</th><th>max RSS</th></tr></thead><tbody id="finished"></tbody></table></section>
</main>
<script>
"use strict";
const key = new URLSearchParams(location.search).get("key") || "";
const opened = new Set();  // finished job ids whose trace is shown

function secs(s) {
  s = Math.max(0, s || 0);
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  return m < 60 ? m + " min " + Math.floor(s % 60) + " s" : Math.floor(m / 60) + " h " + (m % 60) + " min";
}
function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  for (const c of cells) {
    const td = document.createElement("td");
    if (typeof c === "object" && c !== null) { td.textContent = c.text; if (c.cls) td.className = c.cls; }
    else td.textContent = String(c);
    tr.appendChild(td);
  }
  return tr;
}
function fill(id, rows) { document.getElementById(id).replaceChildren(...rows); }

function render(d) {
  const info = d.info || {};
  document.getElementById("summary").textContent =
    (info.queued_jobs || 0) + " queued, " + (info.running_jobs || 0) + " running, " +
    (info.jobs_finished || 0) + " finished since start";
  const counters = document.getElementById("counters");
  counters.replaceChildren(...Object.entries(info).map(([k, v]) => {
    const div = document.createElement("div");
    const b = document.createElement("b");
    b.textContent = typeof v === "number" && !Number.isInteger(v) ? v.toFixed(1) : String(v);
    div.append(k + ": ", b);
    return div;
  }));
  document.getElementById("queueTotal").textContent = "(" + d.queueTotal + ")";
  fill("queue", d.queue.map(j => row([j.position + 1, j.id, j.name, j.courselab, {text: secs(j.waitingSecs), cls: "num"}],
                                     {"class": "queued", "data-id": j.id})));
  document.getElementById("queueMore").textContent =
    d.queueTotal > d.queue.length ? "... and " + (d.queueTotal - d.queue.length) + " more" : "";
  fill("running", d.running.map(j => row([j.id, j.name, j.step, {text: secs(j.elapsedSecs), cls: "num"}, j.vm],
                                         {"class": "running", "data-id": j.id})));
  fill("pools", Object.entries(d.pools).map(([image, p]) => row([image, {text: p.total.length, cls: "num"},
                                                                {text: p.free.length, cls: "num"}])));
  const rows = [];
  for (const j of d.finished) {
    const u = j.usage || {};
    const tr = row([j.id, j.name, {text: j.outcome, cls: j.outcome}, {text: secs(j.durationSecs), cls: "num"},
                    {text: u.user_ms !== undefined ? secs((u.user_ms + u.sys_ms) / 1000) : "", cls: "num"},
                    {text: u.max_rss_kb !== undefined ? (u.max_rss_kb / 1024).toFixed(1) + " MB" : "", cls: "num"}],
                   {"class": "finished", "data-id": j.id, "data-outcome": j.outcome});
    tr.addEventListener("click", () => { opened.has(j.id) ? opened.delete(j.id) : opened.add(j.id); render(d); });
    rows.push(tr);
    if (opened.has(j.id)) {
      const td = document.createElement("td");
      td.colSpan = 6;
      const pre = document.createElement("pre");
      pre.className = "trace";
      pre.textContent = j.trace.join("\n");
      td.appendChild(pre);
      const t = document.createElement("tr");
      t.appendChild(td);
      rows.push(t);
    }
  }
  fill("finished", rows);
}

async function poll() {
  const conn = document.getElementById("conn");
  try {
    const r = await fetch("/status/data", {headers: {"X-Tango-Key": key}, cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status + (r.status === 403 ? ": open this page with ?key=<API key>" : ""));
    render(await r.json());
    conn.textContent = "updated " + new Date().toLocaleTimeString();
    conn.className = "";
  } catch (e) {
    conn.textContent = "cannot update: " + e.message;
    conn.className = "bad";
  }
  setTimeout(poll, 1000);
}
poll();
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view statusPageHtml() { return kPage; }

}  // namespace tango::status

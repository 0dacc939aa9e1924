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
  .cancelled { color: #6b5bb5; }
  #charts { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; }
  #charts figure { margin: 0; }
  #charts figcaption { font-weight: 600; margin-bottom: 2px; }
  #charts svg { width: 100%; height: 120px; background: #fafbfc; border: 1px solid #eee; }
  #charts .legend span { margin-right: 10px; white-space: nowrap; }
</style>
</head>
<body>
<header><h1>Tango</h1><span id="summary">loading...</span><span id="conn"></span></header>
<main>
  <section class="wide"><h2>Counters</h2><div id="counters"></div></section>
  <section class="wide"><h2>The last hour</h2><div id="charts">
    <figure><figcaption>Queue length</figcaption><svg id="chartQueue" viewBox="0 0 300 120" preserveAspectRatio="none"></svg>
      <div class="legend" id="legendQueue"></div></figure>
    <figure><figcaption>Jobs finished per minute</figcaption><svg id="chartFinished" viewBox="0 0 300 120" preserveAspectRatio="none"></svg>
      <div class="legend" id="legendFinished"></div></figure>
    <figure><figcaption>Longest wait per courselab</figcaption><svg id="chartWaits" viewBox="0 0 300 120" preserveAspectRatio="none"></svg>
      <div class="legend" id="legendWaits"></div></figure>
  </div></section>
  <section><h2>Queue <span id="queueTotal"></span></h2>
    <table><thead><tr><th>#</th><th>id</th><th>name</th><th>courselab</th><th>waiting</th></tr></thead><tbody id="queue"></tbody></table>
    <div id="queueMore" class="more"></div></section>
  <section><h2>Running</h2>
    <table><thead><tr><th>id</th><th>name</th><th>step</th><th>elapsed</th><th>VM</th></tr></thead><tbody id="running"></tbody></table></section>
  <section><h2>Pools</h2>
    <table><thead><tr><th>image</th><th>total</th><th>free</th></tr></thead><tbody id="pools"></tbody></table></section>
  <section><h2>Last finished (click for the trace)</h2>
    <table><thead><tr><th>id</th><th>name</th><th>courselab</th><th>outcome</th><th>duration</th><th>cpu</th><th>max RSS</th></tr></thead><tbody id="finished"></tbody></table></section>
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

// Charts: SVG drawn here from /status/data's history (one sample every
// 10 s); names go into the legend with textContent like everything else.
// Inline <svg> elements already carry the SVG namespace; borrowing it keeps the page
// free of any URL.
const SVG = document.getElementById("chartQueue").namespaceURI;
const COLORS = ["#2f6fdf", "#d9822b", "#17803d", "#c0262d", "#6b5bb5", "#8a6d3b", "#0f8c8c", "#b5497a"];
function chart(id, legendId, series, t0, t1, bars) {
  const svg = document.getElementById(id);
  let max = 1;
  for (const s of series) for (const [, v] of s.points) max = Math.max(max, v);
  const x = t => (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * 296 + 2;
  const y = v => 116 - (v / max) * 108;
  const nodes = [];
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", 4); label.setAttribute("y", 10); label.setAttribute("font-size", 9);
  label.textContent = "max " + (Number.isInteger(max) ? max : max.toFixed(1));
  nodes.push(label);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    if (bars) {
      for (const [t, v] of s.points) {
        const r = document.createElementNS(SVG, "rect");
        r.setAttribute("x", x(t) - 2); r.setAttribute("width", 4);
        r.setAttribute("y", y(v)); r.setAttribute("height", 116 - y(v));
        r.setAttribute("fill", color);
        nodes.push(r);
      }
    } else if (s.points.length) {
      const p = document.createElementNS(SVG, "polyline");
      p.setAttribute("points", s.points.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join(" "));
      p.setAttribute("fill", "none"); p.setAttribute("stroke", color); p.setAttribute("stroke-width", 1.5);
      p.setAttribute("vector-effect", "non-scaling-stroke");
      nodes.push(p);
    }
  });
  svg.replaceChildren(...nodes);
  document.getElementById(legendId).replaceChildren(...series.map((s, i) => {
    const span = document.createElement("span");
    span.style.color = COLORS[i % COLORS.length];
    span.textContent = "■ " + s.name;
    return span;
  }));
}
function renderCharts(h) {
  const samples = (h && h.samples) || [];
  if (!samples.length) return;
  const t1 = samples[samples.length - 1].t, t0 = Math.max(samples[0].t, t1 - 3600);
  const shown = samples.filter(s => s.t >= t0);
  chart("chartQueue", "legendQueue", [
    {name: "queued", points: shown.map(s => [s.t, s.queued])},
    {name: "running", points: shown.map(s => [s.t, s.running])}], t0, t1);
  // Per minute: the finished count's growth over each minute's samples.
  const perMinute = [];
  for (let i = 0; i < shown.length; ) {
    let j = i;
    while (j + 1 < shown.length && shown[j + 1].t - shown[i].t < 60) j++;
    const next = shown[Math.min(j + 1, shown.length - 1)];
    const span = Math.max(next.t - shown[i].t, 1);
    perMinute.push([shown[i].t, Math.max(0, next.finished - shown[i].finished) * 60 / span]);
    i = j + 1;
  }
  chart("chartFinished", "legendFinished", [{name: "jobs/min", points: perMinute}], t0, t1, true);
  const labs = new Map();
  for (const s of shown)
    for (const [lab, secs] of Object.entries(s.waits || {})) {
      if (!labs.has(lab)) labs.set(lab, []);
      labs.get(lab).push([s.t, secs]);
    }
  chart("chartWaits", "legendWaits", [...labs.entries()].slice(0, 8).map(([name, points]) => ({name: name + " (s)", points})), t0, t1);
}

function render(d) {
  renderCharts(d.history);
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
    const tr = row([j.id, j.name, j.courselab, {text: j.outcome, cls: j.outcome}, {text: secs(j.durationSecs), cls: "num"},
                    {text: u.user_ms !== undefined ? secs((u.user_ms + u.sys_ms) / 1000) : "", cls: "num"},
                    {text: u.max_rss_kb !== undefined ? (u.max_rss_kb / 1024).toFixed(1) + " MB" : "", cls: "num"}],
                   {"class": "finished", "data-id": j.id, "data-outcome": j.outcome});
    tr.addEventListener("click", () => { opened.has(j.id) ? opened.delete(j.id) : opened.add(j.id); render(d); });
    rows.push(tr);
    if (opened.has(j.id)) {
      const td = document.createElement("td");
      td.colSpan = 7;
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

#!/usr/bin/env node
// The chart of an N-GPU projection (`wanlab-engine bench projection`'s JSON): seconds for the
// video's steps against GPUs, one line per layout family (each point one layout, its name on
// hover; points only where a family has several layouts at one GPU count), the ideal scaling of the 1-GPU time, and the public anchors as markers; a table of
// every layout below, so the page reads without JavaScript. plotly.js is inlined: the page opens
// offline.
//
//   scripts/projection.mjs projection.json > projection.html
//   scripts/projection.mjs projection.json --out projection.html
//
// Exit: 0 ok, 1 an unreadable JSON, 2 usage.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { plotlySource } from "./lib/report.mjs";

const usage = "usage: projection.mjs PROJECTION.json [--out FILE.html]";

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
/** JSON inside a <script>: no "</script" or "<!--" can end it early. */
const scriptJson = (v) => JSON.stringify(v).replace(/</g, "\\u003c");

/** The family a layout's line belongs to: its CFG split and which degrees it uses. */
export function family(row) {
  const sp = row.ulysses > 1 && row.ring > 1 ? "Ulysses × ring" : row.ring > 1 ? "ring" : "Ulysses";
  const name = row.cfg_parallel ? `CFG-parallel × ${sp}` : sp;
  return row.shard_weights ? `${name}, sharded weights` : name;
}

/** The plotly traces: a line per family (the 1-GPU point starts the unsplit ones), ideal scaling, anchors. */
export function projectionTraces(p) {
  const base = p.layouts.find((r) => r.layout === "1");
  const families = new Map();
  for (const r of p.layouts) {
    if (r.layout === "1") continue;
    const f = family(r);
    if (!families.has(f)) families.set(f, []);
    families.get(f).push(r);
  }
  const traces = [];
  for (const [name, rows] of families) {
    const pts = (name === "Ulysses" || name === "ring") && base ? [base, ...rows] : rows;
    pts.sort((a, b) => a.gpus - b.gpus || a.total_s - b.total_s);
    // A family with several layouts at one GPU count (u4r2 and u2r4) is drawn as points only.
    const oneEach = new Set(pts.map((r) => r.gpus)).size === pts.length;
    traces.push({ name, type: "scatter", mode: oneEach ? "lines+markers" : "markers", x: pts.map((r) => r.gpus), y: pts.map((r) => r.total_s),
      text: pts.map((r) => `${r.layout}: ${r.total_s.toFixed(1)} s, efficiency ${r.efficiency.toFixed(2)}`), hoverinfo: "text" });
  }
  const gpus = [...new Set(p.layouts.map((r) => r.gpus))].sort((a, b) => a - b);
  if (base) traces.push({ name: "ideal (1 GPU / N)", type: "scatter", mode: "lines", line: { dash: "dot", color: "gray" },
    x: gpus, y: gpus.map((n) => base.total_s / n) });
  for (const a of p.anchors ?? []) {
    // An anchor of another model, video or step count is drawn, and said to be.
    const other = a.dims !== p.dims || a.height !== p.video.height || a.width !== p.video.width || (a.total_s && p.steps !== 50);
    const note = other ? ", not this run's model, video or steps" : "";
    if (a.total_s) traces.push({ name: `${a.source} (published${note})`, type: "scatter", mode: "markers", marker: { symbol: "diamond", size: 11 },
      x: a.gpus, y: a.total_s });
    else if (a.speedup && base) traces.push({ name: `${a.source}: ${a.speedup.at(-1)}× speed-up (published${note}), on this run's 1 GPU`,
      type: "scatter", mode: "markers", marker: { symbol: "star", size: 12 }, x: a.gpus, y: a.speedup.map((s) => base.total_s / s) });
  }
  return traces;
}

/** The whole page. */
export function projectionHtml(p, plotly = plotlySource()) {
  const v = p.video;
  const title = `${p.dims} ${v.height}×${v.width}×${v.frames}, ${p.steps} steps: projection from one rank measured on ${p.device}`;
  const layout = { title: { text: esc(title), x: 0, xanchor: "left" }, margin: { t: 60 },
    xaxis: { title: { text: "GPUs" }, type: "log", tickvals: [1, 2, 4, 8, 16], ticktext: ["1", "2", "4", "8", "16"] },
    yaxis: { title: { text: `seconds for ${p.steps} steps` }, type: "log" } };
  const rows = p.layouts.map((r) => `<tr><td>${esc(r.layout)}</td><td>${r.gpus}</td><td>${r.step_s.toFixed(3)}</td><td>${r.total_s.toFixed(1)}</td>` +
    `<td>${r.speedup.toFixed(2)}</td><td>${r.efficiency.toFixed(2)}</td><td>${r.exposed_comm_per_step_s.toFixed(4)}</td></tr>`).join("\n");
  const goals = (p.goals ?? []).map((g) => `<li>${esc(g.goal)}: ${g.value === undefined ? "–" : esc(g.value.toFixed(3))} ` +
    `(${g.applies ? (g.pass ? "pass" : "fail") : esc(`does not apply: ${g.reason}`)}, ${esc(g.label)})</li>`).join("\n");
  return `<!doctype html><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:14px sans-serif;margin:1em 2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style>
<h1>${esc(title)}</h1>
<p>Measured: ${esc(p.method.measured)}.</p>
<p>Modelled: ${esc(p.method.modelled)}. Links: within a node ${esc(p.links.intra_node.name)}, between nodes ${esc(p.links.inter_node.name)}, ${p.links.gpus_per_node} GPUs per node.</p>
<div id="plot" style="width:100%;height:70vh"></div>
<h2>Goals (projection)</h2><ul>${goals}</ul>
<h2>Layouts</h2>
<table><tr><th>layout</th><th>GPUs</th><th>s/step</th><th>s total</th><th>speed-up</th><th>efficiency</th><th>exposed comm s/step</th></tr>
${rows}</table>
<script>${plotly.replace(/<\/script/gi, "<\\/script")}</script>
<script>Plotly.newPlot("plot", ${scriptJson(projectionTraces(p))}, ${scriptJson(layout)}, { displaylogo: false });</script>
`;
}

function main(argv) {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage);
    return 0;
  }
  const out = argv.indexOf("--out");
  const file = argv.filter((a, i) => a !== "--out" && (out < 0 || i !== out + 1));
  if (file.length !== 1 || (out >= 0 && !argv[out + 1])) {
    console.error(usage);
    return 2;
  }
  let p;
  try {
    p = JSON.parse(readFileSync(file[0], "utf8"));
    if (p.bench !== "projection" || !Array.isArray(p.layouts)) throw new Error("not the JSON of `wanlab-engine bench projection`");
  } catch (e) {
    console.error(`projection.mjs: ${file[0]}: ${e.message}`);
    return 1;
  }
  const html = projectionHtml(p);
  if (out >= 0) writeFileSync(argv[out + 1], html);
  else process.stdout.write(html);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));

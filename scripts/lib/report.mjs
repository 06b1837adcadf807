// The offline HTML report of a sweep or a batch (OUT/report.html): a header with what ran, the
// timing charts (generate time against each parameter that varies, and each run's time by
// stage), then one card per run: its label, its parameters, a strip of its frames, a <video> of
// the gathered mp4, its timings and a link to its manifest; a failed run shows its reason.
//
// reportHtml is a pure function of the run records: the caller reads plotly.js and the frame
// strips; paths (videos, manifests) are relative to the report, so the folder moves as a whole
// and a browser opens it from disk with the network off. plotly.js is inlined once; without
// JavaScript the cards and a timing table still read.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

/**
 * One run of the report.
 * @typedef {object} ReportRun
 * @property {string} label              what tells it apart from the other runs ("cfg 3, seed 1")
 * @property {[string, unknown][]} params its parameters as shown, in order ([["cfg", 3], ["seed", 1]])
 * @property {string} [prompt]           its prompt, when the runs' prompts differ
 * @property {string} state              "done", "failed", "cancelled", ...
 * @property {string} [error]            why it did not finish
 * @property {string} [video]            its mp4, relative to the report
 * @property {string} [manifest]         its manifest JSON, relative to the report
 * @property {string} [strip]            an image of its frames: a data: URI or a relative path
 * @property {{ generate_s?: number, write_s?: number, queue_s?: number,
 *   engine?: { encode_s?: number, denoise_s?: number, decode_s?: number } }} [timings]
 *                                        the manifest's timings
 *
 * @typedef {object} Report
 * @property {string} title              the page's heading ("sweep: a cat")
 * @property {string[]} [about]          lines under it (the prompt, the model, when)
 * @property {{ href: string, text: string }[]} [links]  files beside the report (contact sheet, JSON)
 * @property {string[]} axes             the parameters (names in run.params) to plot time against
 * @property {ReportRun[]} runs
 * @property {string} plotly             plotly.js's source, inlined once
 */

/** plotly.js-cartesian-dist-min's source, as the package resolves it (a dependency of wanlab). */
export function plotlySource() {
  return readFileSync(createRequire(import.meta.url).resolve("plotly.js-cartesian-dist-min"), "utf8");
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
/** A path as an href: each segment percent-encoded, "/" kept. */
const href = (p) => (p.startsWith("data:") ? p : p.split(/[\\/]/).map(encodeURIComponent).join("/"));
const secs = (s) => (s === undefined ? "–" : s < 10 ? s.toFixed(2) : s.toFixed(1));
/** JSON inside a <script>: no "</script" or "<!--" can end it early. */
const scriptJson = (v) => JSON.stringify(v).replace(/</g, "\\u003c");

const stages = [["encode", (t) => t.engine?.encode_s], ["denoise", (t) => t.engine?.denoise_s], ["decode", (t) => t.engine?.decode_s], ["write", (t) => t.write_s]];

/** The plotly figures: generate time against each axis, then each run's time by stage. */
export function reportFigures({ axes, runs }) {
  const timed = runs.filter((r) => r.timings?.generate_s !== undefined);
  const value = (r, axis) => r.params.find(([k]) => k === axis)?.[1];
  const layout = (title, x, y, more = {}) => ({
    // The title sits just above the plot area, below the band the modebar (top right) takes, so
    // the modebar never covers it.
    title: { text: title, x: 0, xanchor: "left", xref: "paper", y: 1, yanchor: "bottom", yref: "paper", pad: { b: 10 }, font: { size: 15 } },
    margin: { t: 68, r: 16, l: 56, b: 48 },
    xaxis: { title: { text: x }, automargin: true },
    yaxis: { title: { text: y }, rangemode: "tozero", automargin: true },
    showlegend: false,
    ...more,
  });
  const figs = axes.map((axis) => {
    const x = timed.map((r) => value(r, axis));
    const numeric = x.every((v) => typeof v === "number");
    return {
      id: `time-vs-${axis}`,
      data: [{ type: "scatter", mode: "markers", x, y: timed.map((r) => r.timings.generate_s),
        text: timed.map((r) => r.label), hovertemplate: `${axis} %{x}<br>%{y:.2f} s<br>%{text}<extra></extra>`, marker: { size: 10 } }],
      // Ticks at the values the runs took (a numeric axis), or one per value (seeds, words).
      layout: layout(`generate time vs ${axis}`, axis, "generate time (s)", {
        xaxis: { title: { text: axis }, automargin: true, ...(numeric ? { tickvals: [...new Set(x)] } : { type: "category" }) },
      }),
    };
  });
  if (timed.length)
    figs.push({
      id: "time-by-stage",
      data: stages.map(([name, get]) => ({ type: "bar", name, x: timed.map((r) => r.label), y: timed.map((r) => get(r.timings) ?? 0) })),
      layout: layout("time per run by stage", "", "seconds", { barmode: "stack", showlegend: true, xaxis: { title: { text: "run" }, type: "category", automargin: true } }),
    });
  return figs;
}

function card(r, i) {
  const done = r.state === "done";
  const params = r.params.map(([k, v]) => `<span class="param"><b>${esc(k)}</b> ${esc(v)}</span>`).join(" ");
  const t = r.timings;
  const timing = t?.generate_s !== undefined
    ? `<p class="timings">generate ${secs(t.generate_s)} s (${stages.slice(0, 3).map(([n, get]) => `${n} ${secs(get(t))}`).join(", ")}), write ${secs(t.write_s)} s</p>`
    : "";
  return `<figure class="run ${done ? "done" : "failed"}" id="run-${i}" data-state="${esc(r.state)}">
<figcaption><span class="label">${esc(r.label)}</span>${done ? "" : ` <span class="state">${esc(r.state)}</span>`}</figcaption>
<p class="params">${params}</p>
${r.prompt !== undefined ? `<p class="prompt">${esc(r.prompt)}</p>\n` : ""}${r.strip ? `<img class="strip" alt="frames of ${esc(r.label)}" src="${esc(href(r.strip))}">\n` : ""}${r.video ? `<video controls loop muted preload="metadata" src="${esc(href(r.video))}"></video>\n` : ""}${done ? "" : `<p class="error">${esc(r.state)}: ${esc(r.error ?? "no reason given")}</p>\n`}${timing}
${r.manifest ? `<p><a class="manifest" href="${esc(href(r.manifest))}">manifest</a></p>` : ""}
</figure>`;
}

function table(runs) {
  const rows = runs.map((r) => `<tr><td>${esc(r.label)}</td><td>${esc(r.state)}</td>${["generate_s", "write_s"].map((k) => `<td class="n">${secs(r.timings?.[k])}</td>`).join("")}${stages.slice(0, 3).map(([, get]) => `<td class="n">${r.timings ? secs(get(r.timings)) : "–"}</td>`).join("")}</tr>`);
  return `<table class="timings"><tr><th>run</th><th>state</th><th>generate s</th><th>write s</th><th>encode s</th><th>denoise s</th><th>decode s</th></tr>\n${rows.join("\n")}\n</table>`;
}

/** The report page (see Report). */
export function reportHtml({ title, about = [], links = [], axes, runs, plotly }) {
  const figs = reportFigures({ axes, runs });
  const failed = runs.filter((r) => r.state !== "done").length;
  const summary = `${runs.length} run${runs.length === 1 ? "" : "s"}: ${runs.length - failed} done, ${failed} failed`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${esc(title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.4em;margin:.2em 0}.about{margin:.2em 0;color:#444}.links a{margin-right:1em}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px;margin:1em 0}
.chart{height:320px;border:1px solid #ddd;border-radius:4px}
.runs{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.run{margin:0;border:1px solid #ccc;border-radius:4px;padding:8px;background:#fafafa}
.run.failed{border-color:#c33;background:#fff4f4}.run figcaption{font-weight:600}
.state,.error{color:#b00}.params,.prompt,.timings{font-size:12px;margin:4px 0}.param{white-space:nowrap;margin-right:6px}
.prompt{font-style:italic}.strip{display:block;max-width:100%;margin:4px 0}
video{display:block;width:100%;max-height:240px;background:#000}video.small{image-rendering:pixelated}
table.timings{border-collapse:collapse;font-size:12px;margin:1em 0}table.timings td,table.timings th{border:1px solid #ccc;padding:2px 6px}td.n{text-align:right}
</style></head><body>
<h1>${esc(title)}</h1>
${about.map((l) => `<p class="about">${esc(l)}</p>`).join("\n")}
<p class="about summary">${esc(summary)}</p>
${links.length ? `<p class="links">${links.map((l) => `<a href="${esc(href(l.href))}">${esc(l.text)}</a>`).join("")}</p>` : ""}
<section class="charts">
${figs.map((f) => `<div class="chart" id="${esc(f.id)}"></div>`).join("\n")}
</section>
<section class="runs">
${runs.map(card).join("\n")}
</section>
<details><summary>timings table</summary>
${table(runs)}
</details>
<script>${plotly.replace(/<\/script/gi, "<\\/script")}</script>
<script>
// A video smaller than its card is scaled up pixel for pixel (a tiny model's 32×32), not blurred.
for (const v of document.querySelectorAll("video")) {
  const crisp = () => v.videoWidth && v.videoWidth < 256 && v.classList.add("small");
  if (v.readyState >= 1) crisp(); else v.addEventListener("loadedmetadata", crisp);
}
for (const f of ${scriptJson(figs)}) Plotly.newPlot(f.id, f.data, f.layout, { displaylogo: false, responsive: true,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "pan2d"] });
</script>
</body></html>
`;
}

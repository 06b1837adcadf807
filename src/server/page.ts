// The status page at / (for a browser signed in by the link printed at start,
// src/server/session.ts) and the page that says how to sign in. Plain HTML, CSS and script
// served from here: nothing from the network. The script polls GET /v1/status every second and
// follows GET /v1/events for progress between polls; it writes every prompt, path and message
// with textContent, never as markup. The Content-Security-Policy allows only this page's own
// script and style (by nonce) and images, videos and requests from this server.

/** Headers of both pages: a CSP that allows this server only (and the inline code with `nonce`). */
export function statusPageHeaders(nonce?: string): Record<string, string> {
  const code = nonce ? `script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'` : "style-src 'unsafe-inline'";
  return {
    "content-security-policy": `default-src 'none'; ${code}; img-src 'self'; media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    "x-frame-options": "DENY",
  };
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** What a browser that is not signed in sees (its data routes answer 401). */
export function signInPage(version: string, why?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wanlab serve: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:46em;margin:3em auto;padding:0 1em;color:#222}code{background:#f1f1f1;padding:1px 4px;border-radius:3px}</style>
</head><body>
<h1>wanlab serve ${escapeHtml(version)}</h1>
${why ? `<p><strong>${escapeHtml(why)}.</strong></p>` : ""}
<p>This browser is not signed in to the status page. Open the link the server printed when it
started, on its console:</p>
<p><code>wanlab serve: status page: http://HOST:PORT/?token=…</code></p>
<p>The link signs this browser in (a cookie for this server only) and brings you back here.
The token is also the <code>"token"</code> in <code>server.json</code>, in the server's runtime directory,
readable only by the user who started it. Programs use it as <code>Authorization: Bearer TOKEN</code>;
<code>curl URL/</code> lists the routes.</p>
</body></html>
`;
}

const style = `
:root{--fg:#1d1f23;--muted:#6b7280;--line:#e5e7eb;--bar:#2563eb;--bg:#f8fafc;--bad:#b91c1c;--ok:#15803d}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:var(--fg);background:var(--bg)}
header{display:flex;gap:1em;align-items:baseline;padding:.8em 1.2em;background:#fff;border-bottom:1px solid var(--line)}
header h1{font-size:18px;margin:0}
.muted{color:var(--muted)}
.pill{margin-left:auto;padding:1px 8px;border-radius:10px;background:#e5e7eb;font-size:12px}
.pill.live{background:#dcfce7;color:var(--ok)}.pill.off{background:#fee2e2;color:var(--bad)}
main{display:grid;grid-template-columns:minmax(0,2fr) minmax(0,1fr);gap:1em;padding:1em 1.2em}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:.8em 1em;min-width:0}
section h2{font-size:15px;margin:0 0 .6em}
#recent-section{grid-column:1 / -1}
#stats-section{grid-row:span 2}
@media (max-width:800px){main{grid-template-columns:1fr}#stats-section{grid-row:auto}}
.prompt{font-weight:600;overflow-wrap:anywhere}
.bar{height:10px;background:var(--line);border-radius:5px;overflow:hidden;margin:.5em 0}
.bar>div{height:100%;background:var(--bar);width:0;transition:width .3s}
.preview img{image-rendering:pixelated;max-width:100%;border:1px solid var(--line);display:block;margin-top:.5em}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px}
td.p{max-width:22em;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:.8em}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px;background:#fff}
figure video{width:100%;background:#000;display:block}
figcaption{font-size:12px;margin-top:4px;overflow-wrap:anywhere}
.failed{color:var(--bad)}.done{color:var(--ok)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 1em;margin:0}
dt{color:var(--muted)}dd{margin:0}
`;

// The page's script: plain ES2017, no template literals (this file is one).
const script = `
"use strict";
var $ = function (id) { return document.getElementById(id); };
function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
function bytes(n) { if (n === undefined || n === null || n < 0) return "?"; var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0; while (n >= 1024 && i < 4) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + " " + u[i]; }
function secs(s) { if (s === undefined || s === null || !isFinite(s) || s < 0) return "?"; if (s < 10) return s.toFixed(1) + " s"; if (s < 60) return Math.round(s) + " s"; if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s"; return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min"; }
function size(p) { return p.width + "\\u00d7" + p.height + ", " + p.numFrames + (p.numFrames === 1 ? " frame" : " frames"); }
function params(p) {
  var s = size(p) + ", " + p.steps + " steps, cfg " + p.cfgScale + ", shift " + p.sigmaShift + ", seed " + p.seed;
  if (p.teaCache) s += ", TeaCache " + p.teaCache;
  if (p.inputVideo) s += ", video-to-video (strength " + p.strength + ")";
  return s;
}
var current = null, previewUrl = "", shown = {};

function renderRunning(r, now) {
  var box = $("running");
  if (!r) { current = null; box.replaceChildren(el("p", "muted", "Nothing is running.")); previewUrl = ""; return; }
  if (!current || current.id !== r.id) {
    current = { id: r.id };
    previewUrl = "";
    box.replaceChildren();
    box.append(el("div", "prompt", r.params.prompt), el("div", "muted", params(r.params) + " \\u00b7 job " + r.id));
    var bar = el("div", "bar"); bar.append(el("div")); bar.id = "bar";
    box.append(bar, el("div", "", ""), el("div", "muted", ""));
    var pv = el("figure", "preview"); pv.id = "preview"; pv.hidden = true;
    var img = el("img"); img.alt = "latent preview"; pv.append(img, el("figcaption", "muted"));
    box.append(pv);
  }
  var p = r.progress, line = box.children[3], extra = box.children[4];
  var stage = p ? p.stage : "starting", step = r.step, total = r.totalSteps;
  var frac = stage === "denoise" && total ? step / total : stage === "decode" ? 1 : 0;
  box.querySelector("#bar > div").style.width = (frac * 100).toFixed(1) + "%";
  var text = stage === "denoise" ? "denoise: step " + step + "/" + total : p ? stage + ": " + p.step + "/" + p.total : "starting";
  if (p) text += " \\u00b7 ETA " + secs(p.eta);
  line.textContent = text;
  line.id = "progress-text";
  var more = ["running " + secs((now - r.startedAt) / 1000)];
  if (r.stepsPerSecond) more.push(r.stepsPerSecond.toFixed(2) + " steps/s");
  if (r.plan) more.push("predicted peak " + bytes(r.plan.peakBytes) + " on " + r.plan.device);
  extra.textContent = more.join(" \\u00b7 ");
  if (r.preview && r.preview.url !== previewUrl) {
    previewUrl = r.preview.url;
    var fig = $("preview");
    fig.querySelector("img").src = r.preview.url;
    fig.querySelector("figcaption").textContent = "latent preview at step " + r.preview.step + "/" + r.preview.total + " (latent frames " + r.preview.frames.join(", ") + "; a linear RGB projection, no VAE)";
    fig.hidden = false;
  }
}

function renderQueue(q, depth, now) {
  $("queue-count").textContent = depth ? "(" + depth + (depth > q.length ? ", the first " + q.length + " shown" : "") + ")" : "";
  var body = $("queue").tBodies[0];
  body.replaceChildren();
  if (!q.length) { var tr = el("tr"); var td = el("td", "muted", "No job is waiting."); td.colSpan = 6; tr.append(td); body.append(tr); return; }
  q.forEach(function (j, i) {
    var tr = el("tr");
    tr.append(el("td", "", String(i + 1)), el("td", "p", j.params.prompt), el("td", "", size(j.params)),
      el("td", "", j.params.steps + " steps, cfg " + j.params.cfgScale + ", shift " + j.params.sigmaShift), el("td", "", j.params.seed),
      el("td", "muted", secs((now - j.submittedAt) / 1000)));
    tr.dataset.id = j.id;
    body.append(tr);
  });
}

function renderRecent(list) {
  var grid = $("recent");
  if (!list.length) { if (!grid.children.length || grid.firstChild.tagName === "P") grid.replaceChildren(el("p", "muted", "No job has finished yet.")); return; }
  if (grid.firstChild && grid.firstChild.tagName === "P") grid.replaceChildren();
  var keep = {};
  list.forEach(function (j) { keep[j.id] = true; });
  Array.prototype.slice.call(grid.children).forEach(function (f) { if (!keep[f.dataset.id]) { grid.removeChild(f); delete shown[f.dataset.id]; } });
  list.slice().reverse().forEach(function (j) {
    if (shown[j.id]) return;
    var f = el("figure"); f.dataset.id = j.id;
    if (j.video) {
      var v = el("video"); v.src = j.video; v.controls = true; v.muted = true; v.loop = true; v.playsInline = true; v.preload = "metadata";
      f.append(v);
    }
    var cap = el("figcaption");
    var took = j.startedAt && j.endedAt ? " in " + secs((j.endedAt - j.startedAt) / 1000) : "";
    cap.append(el("span", j.state, j.state + took), el("div", "prompt", j.params.prompt), el("div", "muted", params(j.params)));
    if (j.error) cap.append(el("div", "failed", j.error));
    if (j.video) { var a = el("a", "", "manifest"); a.href = "/v1/jobs/" + j.id + "/files/manifest.json"; a.target = "_blank"; cap.append(a); }
    f.append(cap);
    shown[j.id] = true;
    grid.prepend(f);
  });
}

function renderStats(s) {
  var st = s.stats, rows = [];
  rows.push(["model", s.model.layout], ["jobs", "done " + st.jobs.done + ", failed " + st.jobs.failed + ", cancelled " + st.jobs.cancelled + ", queued " + st.jobs.queued]);
  rows.push(["engine load", (st.engineLoad * 100).toFixed(0) + "% of " + secs(st.uptime_s)]);
  rows.push(["throughput", (st.throughput.jobsPerSecond * 3600).toFixed(1) + " jobs/h over the last " + secs(st.throughput.window_s)]);
  if (s.recentStepsPerSecond.length) rows.push(["denoising", s.recentStepsPerSecond.slice(0, 5).map(function (v) { return v.toFixed(2); }).join(", ") + " steps/s (last jobs)"]);
  if (st.latency.submitToStartMean_s !== null) rows.push(["queue wait", "mean " + secs(st.latency.submitToStartMean_s) + ", max " + secs(st.latency.submitToStartMax_s)]);
  var m = s.memory || {};
  if (m.process) rows.push(["server process", bytes(m.process.rss) + " resident (" + bytes(m.process.rssAtStart) + " at start)"]);
  (m.devices || []).forEach(function (d) {
    var t = bytes(d.total - d.free) + " of " + bytes(d.total) + " used";
    if (d.allocated !== undefined) t += "; allocated " + bytes(d.allocated) + ", peak " + bytes(d.peakAllocated) + ", reserved " + bytes(d.reserved);
    rows.push([d.device === "cpu" ? "host memory" : d.device + (d.name ? " (" + d.name + ")" : ""), t]);
  });
  if (m.promptCache) rows.push(["prompt cache", bytes(m.promptCache.bytes) + ", " + (m.promptCache.hits || 0) + " hits, " + (m.promptCache.misses || 0) + " misses"]);
  var dl = $("stats"); dl.replaceChildren();
  rows.forEach(function (r) { dl.append(el("dt", "", r[0]), el("dd", "", r[1])); });
}

function render(s) {
  $("version").textContent = s.version;
  renderRunning(s.running, s.now);
  renderQueue(s.queued, s.stats.queueDepth, s.now);
  document.title = (s.running ? (s.running.stage === "denoise" ? "step " + s.running.step + "/" + s.running.totalSteps : s.running.stage || "running") + " \u00b7 " : "") + "wanlab serve";
  renderRecent(s.recent);
  renderStats(s);
  document.body.dataset.updated = String(s.now);
}

function signedOut() {
  $("conn").textContent = "signed out"; $("conn").className = "pill off";
  $("running").replaceChildren(el("p", "failed", "The server no longer knows this browser (it restarted with a new token): open the link it printed at start."));
}

var polling = false;
function poll() {
  if (polling) return;
  polling = true;
  fetch("/v1/status", { cache: "no-store", credentials: "same-origin" }).then(function (r) {
    if (r.status === 401) { signedOut(); return; }
    if (!r.ok) throw new Error("status " + r.status);
    return r.json().then(function (s) { render(s); if ($("conn").className !== "pill live") { $("conn").textContent = "live"; $("conn").className = "pill live"; } });
  }).catch(function () { $("conn").textContent = "server unreachable"; $("conn").className = "pill off"; })
    .then(function () { polling = false; });
}
poll();
setInterval(poll, 1000);
var events = new EventSource("/v1/events");
["queued", "started", "done", "failed", "cancelled", "requeued"].forEach(function (t) { events.addEventListener(t, poll); });
events.addEventListener("progress", function (e) {
  var d = JSON.parse(e.data);
  if (current && current.id === d.id && d.progress && d.progress.stage === "denoise") {
    $("bar").firstChild.style.width = (d.step / d.totalSteps * 100).toFixed(1) + "%";
    $("progress-text").textContent = "denoise: step " + d.step + "/" + d.totalSteps + " \\u00b7 ETA " + secs(d.progress.eta);
  }
  if (d.preview) poll();
});
`;

/** The status page of a signed-in browser; `nonce` allows its inline script and style. */
export function statusPage(version: string, nonce: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wanlab serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="${nonce}">${style}</style>
</head><body>
<header><h1>wanlab serve</h1><span class="muted" id="version">${escapeHtml(version)}</span><span class="pill" id="conn">connecting…</span></header>
<main>
<section id="running-section"><h2>Running</h2><div id="running"><p class="muted">…</p></div></section>
<section id="stats-section"><h2>Memory and throughput</h2><dl id="stats"></dl></section>
<section id="queue-section"><h2>Queue <span id="queue-count" class="muted"></span></h2>
<table id="queue"><thead><tr><th>#</th><th>prompt</th><th>size</th><th>sampling</th><th>seed</th><th>waiting</th></tr></thead><tbody></tbody></table></section>
<section id="recent-section"><h2>Recent jobs</h2><div id="recent" class="grid"></div></section>
</main>
<script nonce="${nonce}">${script}</script>
</body></html>
`;
}

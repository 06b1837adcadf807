#!/usr/bin/env zx
// A plotly report of GPU benchmark results: the JSON that `wanlab-engine bench dit|t2v` writes
// (bench/results/DATE-DEVICE/), optionally against a baseline directory of the same benches.
//
//   scripts/bench-report.mjs [DIR] [--baseline DIR] [--out DIR] [--label L] [--baseline-label L] [--inline]
//
// DIR defaults to bench/results/2026-11-26-h200-kernels (the newest); report.html is written there (or into --out). DIR
// may also be the results.tgz native/tools/gpu-check.sh returns (the report goes beside it).
// Charts: (a) seconds per DiT forward, wanlab vs the DiffSynth-Studio peer (PyTorch eager), per
// config and per run (baseline / optimised); (b) achieved TFLOP/s against the measured 8192³ bf16
// matmul peak; (c) device peak memory per stage, predicted (the memory model) vs measured, per
// t2v run; (d) the full 50-step estimate against the FLOP bound; (e) the DiT block's elementwise
// passes (bench elementwise): ATen, the own kernel replacing one, one pass at the measured copy
// bandwidth. Every figure also comes as a
// table, so the page reads without JavaScript. plotly.js: --inline embeds plotly.js-cartesian-dist-min
// (1.4 MB); otherwise the page loads it from this checkout's node_modules, then from the plotly CDN.
// Exit: 0 ok, 1 unreadable results, 2 usage.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { $, fs, os, parseArgv, path } from "zx";

const help = "usage: bench-report.mjs [DIR] [--baseline DIR] [--out DIR] [--label L] [--baseline-label L] [--inline]";
const root = fileURLToPath(new URL("..", import.meta.url));

class Usage extends Error {}

/** Every bench JSON of a results directory (or of the results.tgz gpu-check.sh returns), by kind. */
async function readResults(dir) {
  if (!(await fs.pathExists(dir))) throw new Usage(`results directory ${dir} does not exist`);
  if (dir.endsWith(".tgz")) {
    const unpacked = await fs.mkdtemp(path.join(os.tmpdir(), "wanlab-results-"));
    await $`tar xzf ${dir} -C ${unpacked}`;
    return { ...(await readResults(unpacked)), dir };
  }
  const out = { dir, dit: [], t2v: [], matmul: [], elementwise: [] };
  for (const name of (await fs.readdir(dir)).filter((n) => n.endsWith(".json")).sort()) {
    let j;
    try {
      j = JSON.parse(await fs.readFile(path.join(dir, name), "utf8"));
    } catch (e) {
      throw new Error(`${path.join(dir, name)}: ${e.message}`);
    }
    j.file = name;
    if (j.bench === "dit" && j.ours) out.dit.push(j);
    else if (j.bench === "t2v") out.t2v.push(j);
    else if (j.bench === "matmul") out.matmul.push(j);
    else if (j.bench === "elementwise" && j.ops) out.elementwise.push(j);
    if (j.bench === "t2v" && j.matmul) out.matmul.push({ ...j.matmul, file: `${name} (matmul)` });
  }
  if (!out.dit.length && !out.t2v.length) throw new Error(`${dir} holds no bench dit or t2v JSON`);
  return out;
}

const resolution = (h, w) => (h === 480 && w === 832 ? "480p" : h === 720 && w === 1280 ? "720p" : `${h}×${w}`);
const ditConfig = (j) => `${j.dims} ${resolution(j.input.height, j.input.width)}`;
const t2vConfig = (j) => `${j.dims} ${resolution(j.video.height, j.video.width)}`;
/** A t2v run: its config, whether DiT blocks stream from the host (the persistent budget), and
 * what else sets it apart: a memory budget, float8 linears, the text encoder on the CPU or
 * offloaded, tiling, video-to-video. */
const count = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : String(n));
const t2vRun = (j) => {
  const p = j.placement ?? {};
  const tags = [
    p.memory_budget_bytes > 0 ? `budget ${(p.memory_budget_bytes / 1e9).toFixed(1)} GB` : "",
    p.dit_f8_params > 0 ? "float8 linears" : "",
    String(p.t5 ?? "").startsWith("cpu") ? "T5 on CPU" : p.t5_offload ? "T5 offloaded" : "",
    j.video?.tiled ? "tiled" : "",
    j.v2v_strength > 0 ? `video-to-video ${j.v2v_strength}` : "",
  ].filter(Boolean);
  return `${t2vConfig(j)}, ${p.dit_offloaded_params > 0 ? `${count(p.dit_resident_params)} params resident (rest streamed)` : "all resident"}` +
    (tags.length ? ` · ${tags.join(" · ")}` : "");
};
/** A run's name on a chart axis: two lines. */
const axis = (k) => k.replace(", ", "<br>");
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const fmt = (x, digits = 3) => (x === undefined || x === null || Number.isNaN(x) ? "–" : typeof x === "number" ? x.toPrecision(digits) : String(x));
const gb = (b) => (b === undefined ? undefined : b / 1e9);

function table(head, rows) {
  return `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>\n${rows
    .map((r) => `<tr>${r.map((c, i) => `<td${i ? ' class="n"' : ""}>${esc(c)}</td>`).join("")}</tr>`)
    .join("\n")}</table>`;
}

/** The figures and tables of one report. `runs`: [{ label, results }], the baseline first. */
function buildReport(runs) {
  const figs = [];
  const configs = [...new Set(runs.flatMap((r) => r.results.dit.map(ditConfig)))];
  const dit = (r, c) => r.results.dit.find((j) => ditConfig(j) === c);

  // (a) seconds per DiT forward
  const a = [];
  for (const r of runs) {
    a.push({ type: "bar", name: `wanlab (${r.label})`, x: configs, y: configs.map((c) => dit(r, c)?.ours.median_s ?? null) });
    a.push({ type: "bar", name: `DiffSynth-Studio peer, PyTorch eager (${r.label})`, x: configs, y: configs.map((c) => dit(r, c)?.peer?.median_s ?? null) });
  }
  const aRows = [];
  for (const c of configs)
    for (const r of runs) {
      const j = dit(r, c);
      if (j) aRows.push([c, r.label, fmt(j.ours.median_s, 4), fmt(j.peer?.median_s, 4), fmt(j.ratio_peer_over_ours), fmt(j.rel_l2_ours_vs_peer, 2), j.ours.impl]);
    }
  figs.push({
    title: "(a) seconds per DiT forward (one CFG branch, median): wanlab vs the DiffSynth-Studio peer",
    data: a, layout: { barmode: "group", yaxis: { title: { text: "seconds per forward" } } },
    table: table(["config", "run", "wanlab s", "peer s", "peer / wanlab", "rel L2 vs peer", "wanlab build"], aRows),
  });

  // (b) achieved TFLOP/s against the matmul peak
  const b = [];
  const bRows = [];
  const t2vConfigs = (r) => r.results.t2v.filter((j) => !(j.placement?.dit_offloaded_params > 0));
  const stepName = (j) => `${t2vRun(j)}: t2v step`;
  const xs = [...configs, ...new Set(runs.flatMap((r) => t2vConfigs(r).map((j) => axis(stepName(j)))))];
  for (const r of runs) {
    b.push({ type: "bar", name: `wanlab DiT forward (${r.label})`, x: configs, y: configs.map((c) => { const j = dit(r, c); return j ? j.flops / j.ours.median_s / 1e12 : null; }) });
    b.push({ type: "bar", name: `DiffSynth-Studio peer DiT forward (${r.label})`, x: configs, y: configs.map((c) => { const j = dit(r, c); return j?.peer ? j.flops / j.peer.median_s / 1e12 : null; }) });
    const steps = t2vConfigs(r);
    if (steps.length) b.push({ type: "bar", name: `wanlab t2v step, cond + uncond (${r.label})`, x: steps.map((j) => axis(stepName(j))), y: steps.map((j) => j.step_tflops_per_s) });
    for (const c of configs) {
      const j = dit(r, c);
      if (j) bRows.push([`${c} DiT forward`, r.label, fmt(j.flops / j.ours.median_s / 1e12, 4), j.peer ? fmt(j.flops / j.peer.median_s / 1e12, 4) : "–"]);
    }
    for (const j of steps) bRows.push([stepName(j), r.label, fmt(j.step_tflops_per_s, 4), "–", fmt(j.peak_tflops_per_s, 4), `${(100 * j.step_fraction_of_peak).toFixed(1)} %`]);
  }
  const peaks = runs.map((r) => ({ label: r.label, ms: r.results.matmul.map((m) => m.tflops_per_s) })).filter((p) => p.ms.length);
  for (const p of peaks) {
    const peak = median(p.ms);
    b.push({ type: "scatter", mode: "lines", name: `8192³ bf16 matmul peak, median of ${p.ms.length} (${p.label}): ${peak.toFixed(1)} TFLOP/s`,
      x: xs, y: xs.map(() => peak), line: { dash: "dash" } });
    bRows.push([`8192³ bf16 matmul (${p.ms.length} runs, min–max ${Math.min(...p.ms).toFixed(1)}–${Math.max(...p.ms).toFixed(1)})`, p.label, "–", "–", fmt(peak, 4), "100 %"]);
  }
  figs.push({
    title: "(b) achieved TFLOP/s vs the measured dense bf16 matmul peak of the same GPU",
    data: b, layout: { barmode: "group", yaxis: { title: { text: "TFLOP/s" } } },
    table: table(["what", "run", "wanlab TFLOP/s", "peer TFLOP/s", "matmul peak TFLOP/s", "fraction of peak"], bRows),
  });

  // (c) per-stage device peak memory, predicted vs measured (the runs that carry predictions)
  const stages = ["encode", "denoise", "decode"];
  const withPred = runs.flatMap((r) => r.results.t2v.filter((j) => j.predicted).map((j) => ({ r, j })));
  const cx = [withPred.flatMap(({ j }) => stages.map(() => t2vRun(j))), withPred.flatMap(() => stages)];
  const measured = (j, s) => { const d = j.device_peak_bytes?.[s]; return d ? Math.max(...Object.values(d)) : null; };
  const reserved = (j, s) => { const d = j.device_peak_reserved_bytes?.[s]; return d ? Math.max(...Object.values(d)) : null; };
  const cTraces = [];
  const labels = [...new Set(withPred.map(({ r }) => r.label))];
  for (const label of labels) {
    const sel = withPred.filter(({ r }) => r.label === label);
    const x = [sel.flatMap(({ j }) => stages.map(() => axis(t2vRun(j)))), sel.flatMap(() => stages)];
    const sfx = labels.length > 1 ? ` (${label})` : "";
    cTraces.push({ type: "bar", name: `predicted (memory model)${sfx}`, x, y: sel.flatMap(({ j }) => stages.map((s) => j.predicted[`${s}_peak_bytes`] ?? null)) });
    cTraces.push({ type: "bar", name: `measured (CUDA allocator peak)${sfx}`, x, y: sel.flatMap(({ j }) => stages.map((s) => measured(j, s))) });
    // What the allocator held from the driver at its largest: the slack a budget's reserve covers.
    if (sel.some(({ j }) => j.device_peak_reserved_bytes))
      cTraces.push({ type: "bar", name: `reserved (CUDA allocator cache)${sfx}`, x, y: sel.flatMap(({ j }) => stages.map((s) => reserved(j, s))) });
  }
  const cRows = withPred.flatMap(({ r, j }) => stages.map((s) => [t2vRun(j), r.label, s, fmt(gb(j.predicted[`${s}_peak_bytes`]), 4), fmt(gb(measured(j, s)), 4),
    fmt(j.predicted_over_measured?.[s], 4), fmt(gb(reserved(j, s) ?? undefined), 4)]));
  figs.push({
    title: "(c) device peak memory per stage: predicted (wanlab inspect's memory model) vs measured, per t2v run",
    data: cTraces, layout: { barmode: "group", xaxis: { type: "multicategory" }, yaxis: { title: { text: "bytes" }, tickformat: ".3s", ticksuffix: "B" } },
    table: table(["run", "results", "stage", "predicted GB", "measured GB", "predicted / measured", "reserved GB"], cRows),
    empty: cx[0].length ? undefined : "no t2v result carries `predicted`",
  });

  // (d) full-run estimate vs the FLOP bound
  const runKeys = [...new Set(runs.flatMap((r) => r.results.t2v.map(t2vRun)))];
  const t2v = (r, k) => r.results.t2v.find((j) => t2vRun(j) === k);
  const d = [];
  for (const r of runs)
    d.push({ type: "bar", name: `wanlab full-run estimate (${r.label})`, x: runKeys.map(axis), y: runKeys.map((k) => t2v(r, k)?.full_estimate_s ?? null) });
  const last = runs[runs.length - 1];
  d.push({ type: "bar", name: `FLOP bound at the matmul peak (${last.label})`, x: runKeys.map(axis), y: runKeys.map((k) => (t2v(last, k) ?? runs.map((r) => t2v(r, k)).find(Boolean))?.full_flop_bound_s ?? null) });
  const dRows = runKeys.flatMap((k) => runs.map((r) => [k, r.label, t2v(r, k)]).filter(([, , j]) => j).map(([k, label, j]) =>
    [k, label, String(j.full_steps), fmt(j.step_median_s, 4), fmt(j.encode_s, 3), fmt(j.decode_s, 3), fmt(j.full_estimate_s, 4), fmt(j.full_flop_bound_s, 4), fmt(j.full_over_flop_bound, 3)]));
  figs.push({
    title: "(d) a full video (50 steps): estimate (encode + 50 × median step + decode) vs the FLOP bound",
    data: d, layout: { barmode: "group", yaxis: { title: { text: "seconds" } } },
    table: table(["run", "results", "steps", "s/step", "encode s", "decode s", "estimate s", "FLOP bound s", "estimate / bound"], dRows),
  });

  // (e) the DiT block's elementwise passes: ATen, the own kernel that replaces one, and one pass
  // at the copy bandwidth measured in the same call (what any kernel could reach)
  const ewConfig = (j) => `${j.dim === 1536 ? "1.3B" : j.dim === 5120 ? "14B" : `dim ${j.dim}`}, ${j.tokens} tokens`;
  const ewRuns = runs.filter((r) => r.results.elementwise.length);
  const e = [];
  const eRows = [];
  for (const r of ewRuns)
    for (const j of r.results.elementwise) {
      // each pass with the own kernel that replaces it, if any
      const passes = j.ops.filter((o) => o.fused_at_copy_bandwidth_s !== undefined)
        .map((o) => ({ o, k: (j.own_kernels ?? []).find((k) => k.replaces === o.op) }));
      if (r === ewRuns[ewRuns.length - 1]) {
        const sfx = ` (${ewConfig(j)}${ewRuns.length > 1 ? `, ${r.label}` : ""})`;
        const x = passes.map(({ o }) => o.op);
        e.push({ type: "bar", name: `ATen${sfx}`, x, y: passes.map(({ o }) => o.median_s * 1e3) });
        if (passes.some(({ k }) => k)) e.push({ type: "bar", name: `own kernel${sfx}`, x, y: passes.map(({ k }) => (k ? k.median_s * 1e3 : null)) });
        e.push({ type: "bar", name: `one pass at copy bandwidth${sfx}`, x, y: passes.map(({ o }) => o.fused_at_copy_bandwidth_s * 1e3) });
      }
      for (const { o, k } of passes)
        eRows.push([o.op, ewConfig(j), r.label, String(o.per_block), fmt(o.median_s * 1e3, 3), fmt(k ? k.median_s * 1e3 : undefined, 3),
          fmt(o.fused_at_copy_bandwidth_s * 1e3, 3), fmt(o.achieved_gb_per_s, 4), fmt(k?.achieved_gb_per_s, 4), fmt(j.copy_gb_per_s, 4)]);
    }
  figs.push({
    title: "(e) the DiT block's elementwise passes (bench elementwise): ATen, own kernel, one pass at the measured copy bandwidth",
    data: e, layout: { barmode: "group", yaxis: { title: { text: "ms per call" } } },
    table: table(["pass", "config", "run", "per block", "ATen ms", "own kernel ms", "at copy bandwidth ms", "ATen GB/s", "own GB/s", "copy GB/s"], eRows),
    empty: e.length ? undefined : "no bench elementwise JSON in these results",
  });
  return figs;
}

function html(runs, figs, plotlyTag) {
  const devices = [...new Set(runs.flatMap((r) => [...r.results.dit, ...r.results.t2v].map((j) => j.device)))].join(", ");
  const spec = JSON.stringify(figs.map((f) => ({ data: f.data, layout: { margin: { t: 20 }, legend: { font: { size: 11 } }, ...f.layout } }))).replace(/</g, "\\u003c");
  const sections = figs.map((f, i) => `<h4>${esc(f.title)}</h4>
${f.empty ? `<p>${esc(f.empty)}</p>` : `<div id="f${i}" class="fig"></div>`}
${f.table}`).join("\n");
  return `<!doctype html><meta charset="utf-8"><title>wanlab GPU benchmarks — ${esc(devices)}</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:1em auto}.fig{width:100%;height:460px}table{border-collapse:collapse;font-size:12px;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:2px 6px}td.n{text-align:right}th{background:#f4f4f4}</style>
<h3>wanlab GPU benchmarks — ${esc(devices)}</h3>
<p>Generated by scripts/bench-report.mjs from ${runs.map((r) => `<code>${esc(path.relative(root, r.results.dir) || r.results.dir)}</code> (${esc(r.label)}: ${esc([...r.results.dit, ...r.results.t2v, ...r.results.matmul.filter((m) => !m.file.includes("(matmul)"))].map((j) => j.file).join(", "))})`).join(" and ")}.
One DiT forward is one CFG branch; a t2v step runs two (cond and uncond). FLOPs are counted by the formula in each dit JSON (<code>flops_formula</code>).</p>
${sections}
${plotlyTag}
<script>if (window.Plotly) { const figs = ${spec}; figs.forEach((f, i) => { const el = document.getElementById("f" + i); if (el) Plotly.newPlot(el, f.data, f.layout, { displaylogo: false }); }); }</script>
`;
}

async function main() {
  const argv = parseArgv(process.argv.slice(2), { boolean: ["inline", "help"], string: ["baseline", "out", "label", "baseline-label"] });
  if (argv.help) return console.log(help);
  const known = new Set(["_", "baseline", "out", "label", "baseline-label", "inline", "help"]);
  for (const k of Object.keys(argv)) if (!known.has(k)) throw new Usage(`unknown option --${k}\n${help}`);
  if (argv._.length > 1) throw new Usage(`expected at most one results directory, got ${argv._.join(" ")}\n${help}`);
  for (const k of ["baseline", "out", "label", "baseline-label"]) if (argv[k] !== undefined && (typeof argv[k] !== "string" || !argv[k])) throw new Usage(`--${k} needs a value`);
  const dir = path.resolve(String(argv._[0] ?? path.join(root, "bench", "results", "2026-11-26-h200-kernels")));
  const runs = [];
  if (argv.baseline) runs.push({ label: argv["baseline-label"] ?? "baseline", results: await readResults(path.resolve(argv.baseline)) });
  runs.push({ label: argv.label ?? (argv.baseline ? "optimised" : path.basename(dir, ".tgz")), results: await readResults(dir) });
  const figs = buildReport(runs);
  const plotlyPath = createRequire(import.meta.url).resolve("plotly.js-cartesian-dist-min");
  const version = JSON.parse(await fs.readFile(path.join(path.dirname(plotlyPath), "package.json"), "utf8")).version;
  const out = path.resolve(argv.out ?? (dir.endsWith(".tgz") ? path.dirname(dir) : dir));
  await fs.mkdirp(out);
  const cdn = `https://cdn.plot.ly/plotly-cartesian-${version}.min.js`;
  const plotlyTag = argv.inline
    ? `<script>${(await fs.readFile(plotlyPath, "utf8")).replace(/<\/script/gi, "<\\/script")}</script>`
    : `<script src="${esc(path.relative(out, plotlyPath).split(path.sep).join("/"))}"></script>
<script>if (!window.Plotly) document.write('<script src="${cdn}"><\\/script>');</script>`;
  const file = path.join(out, "report.html");
  await fs.writeFile(file, html(runs, figs, plotlyTag));
  console.log(file);
}

await main().catch((e) => {
  console.error(`bench-report.mjs: ${e.message}`);
  process.exitCode = e instanceof Usage ? 2 : 1;
});

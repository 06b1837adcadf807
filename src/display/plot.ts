// Plotly charts as notebook output: the plotly MIME bundle (JupyterLab with the plotly renderer,
// VS Code) and an HTML fallback that draws with plotly.js — the plotly.js-cartesian-dist-min
// bundle (bar, scatter, heatmap: what wanlab draws), inlined once per kernel session, gzipped, no
// CDN — for exporters and viewers that only know HTML.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import type { GenerateResult, MemoryPlanReport } from "../shared/lab.js";
import { makeDisplayable, type Displayable, type MimeBundle } from "./mime.js";

// Image grids of videos sit beside the charts: wan.grid(results), wan.compare(a, b).
export { compare, grid, type Grid, type GridOptions, type VideoLike } from "./grid.js";

export interface Trace {
  type?: "bar" | "scatter" | "heatmap" | "box";
  x?: unknown[];
  y?: unknown[];
  z?: unknown[][];
  name?: string;
  mode?: string;
  [key: string]: unknown;
}

export interface Figure extends Displayable {
  data: Trace[];
  layout: Record<string, unknown>;
}

let plotlyGzip: string | undefined;
/** plotly.js, gzipped and base64-encoded once: 4.9 MB of source travels as 2 MB. */
function plotlyJsGzip(): string {
  plotlyGzip ??= gzipSync(readFileSync(createRequire(import.meta.url).resolve("plotly.js-cartesian-dist-min")), { level: 9 }).toString("base64");
  return plotlyGzip;
}

/** Marks the one output that carries plotly.js (tests count it). */
export const plotlyCarrierId = "wanlab-plotly-js";

/** The script that defines window.Plotly from the gzipped library (the browser's DecompressionStream). */
function plotlyLoader(): string {
  return (
    `<script type="text/javascript" id="${plotlyCarrierId}">(function(){if(window.Plotly||window.__wanlabPlotly)return;window.__wanlabPlotly=1;` +
    `var b=atob("${plotlyJsGzip()}"),a=new Uint8Array(b.length);for(var i=0;i<b.length;i++)a[i]=b.charCodeAt(i);` +
    `new Response(new Blob([a]).stream().pipeThrough(new DecompressionStream("gzip"))).text().then(function(src){` +
    `var s=document.createElement("script");s.textContent=src;document.head.appendChild(s);});})();</script>`
  );
}

const shipped = new Set<string>();

/** What a chart says when plotly.js never arrives (the output that carried it was replaced). */
const waiting = "waiting for plotly.js: the first chart of the kernel session carries it; restart the kernel and run all cells to draw this chart";

/** Only the buttons a static chart needs: a short modebar stays clear of the title. */
const plotConfig = { responsive: true, displaylogo: false, modeBarButtons: [["toImage", "zoom2d", "pan2d", "resetScale2d"]] };

function html(fig: { data: Trace[]; layout: Record<string, unknown> }, session: string): string {
  const id = `wanlab-plot-${randomBytes(6).toString("hex")}`;
  // Every chart in a saved notebook must render on its own page load, so the library goes with the
  // first chart of each kernel session and the others wait for window.Plotly.
  const lib = shipped.has(session) ? "" : plotlyLoader();
  shipped.add(session);
  const spec = JSON.stringify({ data: fig.data, layout: fig.layout }).replace(/</g, "\\u003c");
  return (
    `<div id="${id}" style="width:100%;max-width:720px;height:${Number(fig.layout.height ?? 360)}px"></div>${lib}` +
    `<script type="text/javascript">(function(){var s=${spec},n=0;function draw(){if(window.Plotly){window.Plotly.newPlot("${id}",s.data,s.layout,${JSON.stringify(plotConfig)});}` +
    `else{if(++n===200)document.getElementById("${id}").textContent=${JSON.stringify(waiting)};setTimeout(draw,50);}}draw();})();</script>`
  );
}

const session = randomBytes(4).toString("hex");

/** The title at the top left, below the band where the modebar appears on hover. */
function placedTitle(title: unknown): Record<string, unknown> | undefined {
  if (title === undefined) return undefined;
  const t = typeof title === "string" ? { text: title } : (title as Record<string, unknown>);
  return { x: 0, xref: "container", xanchor: "left", y: 1, yref: "container", yanchor: "top", pad: { t: 30, l: 12 }, font: { size: 15 }, ...t };
}

const titleText = (layout: Record<string, unknown>) => String((layout.title as { text?: string } | undefined)?.text ?? layout.title ?? "");

/** A figure from traces and a layout; shown as a chart when it is a cell's value. */
export function figure(data: Trace[], layout: Record<string, unknown> = {}, plain?: string): Figure {
  const title = placedTitle(layout.title);
  const fig: { data: Trace[]; layout: Record<string, unknown> } = {
    data,
    layout: { height: 360, margin: { t: title ? 64 : 40, r: 20, b: 50, l: 60 }, ...layout, ...(title ? { title } : {}) },
  };
  const text = () => plain ?? `Figure: ${titleText(fig.layout)} (${fig.data.length} trace${fig.data.length === 1 ? "" : "s"})`;
  const bundle = (): MimeBundle => ({
    "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout, config: plotConfig },
    "text/html": html(fig, session),
    "text/plain": text(),
  });
  return makeDisplayable(fig, bundle, text) as Figure;
}

export function bar(x: unknown[], y: unknown[], layout: Record<string, unknown> = {}, trace: Partial<Trace> = {}): Figure {
  return figure([{ type: "bar", x, y, ...trace }], layout);
}

export function line(series: { name: string; x: unknown[]; y: unknown[] }[], layout: Record<string, unknown> = {}): Figure {
  return figure(series.map((s) => ({ type: "scatter", mode: "lines+markers", ...s })), layout);
}

export function heatmap(z: number[][], x: unknown[], y: unknown[], layout: Record<string, unknown> = {}): Figure {
  return figure([{ type: "heatmap", z, x, y, colorscale: "Viridis" }], layout);
}

// ---- per-rank charts from a generation's timings (lab.stats() data: result.timings.ranks) ----

type Timings = GenerateResult["timings"];
const timingsOf = (x: GenerateResult | Timings): Timings => ("timings" in x ? x.timings : x);
type Rank = NonNullable<Timings["ranks"]>[number];
/** "rank 0 (cpu:0)" where the engine names the device. */
const rankLabel = (c: Rank, i: number) => `rank ${typeof c.rank === "number" ? c.rank : i}${typeof c.device === "string" ? ` (${c.device})` : ""}`;
/** peak_bytes is -1 where the engine could not measure it. */
const measuredPeak = (c: Rank) => typeof c.peak_bytes === "number" && c.peak_bytes >= 0;

/** A chart that says why there is nothing to draw (rather than an empty axis). */
export function emptyFigure(title: string, why: string): Figure {
  return figure(
    [],
    {
      title: { text: title },
      height: 200,
      xaxis: { visible: false },
      yaxis: { visible: false },
      annotations: [{ text: why, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 13, color: "#777" } }],
    },
    `Figure: ${title} — ${why}`,
  );
}

/**
 * Compute vs communication per rank (stacked seconds). Communication is what the rank spent blocked
 * in collectives: transfers hidden behind compute (ring passes, Ulysses head groups) count as compute.
 * compute_s where the engine reports it; otherwise derived as denoise_s − comm_s and labelled so.
 */
export function communication(r: GenerateResult | Timings, layout: Record<string, unknown> = {}): Figure {
  const t = timingsOf(r);
  const ranks = t.ranks ?? [];
  const title = "compute vs communication per rank";
  if (ranks.length === 0) return emptyFigure(title, "no per-rank timings: this generation ran on one rank (open with devices: \"cpu:0-1\", …)");
  const measured = ranks.every((c) => typeof c.compute_s === "number");
  const compute = ranks.map((c) => (measured ? (c.compute_s as number) : Math.max(0, t.denoise_s - c.comm_s)));
  const x = ranks.map(rankLabel);
  return figure(
    [
      { type: "bar", name: measured ? "compute" : "compute (denoise − comm, derived)", x, y: compute, marker: { color: "#4a90d9" } },
      {
        type: "bar", name: "communication (blocked)", x, y: ranks.map((c) => c.comm_s), marker: { color: "#d9534f" },
        text: ranks.map((c) => `${(c.bytes_sent / 2 ** 20).toFixed(2)} MiB, ${c.collectives} collectives`), textposition: "none", hoverinfo: "x+y+text",
      },
    ],
    { title: { text: title }, barmode: "stack", yaxis: { title: { text: "seconds (denoising)" } }, ...layout },
  );
}

/** Peak memory per rank (MiB) where the engine reports it (timings.ranks[i].peak_bytes). */
export function memory(r: GenerateResult | Timings, layout: Record<string, unknown> = {}): Figure {
  const ranks = timingsOf(r).ranks ?? [];
  const title = "peak memory per rank";
  if (ranks.length === 0) return emptyFigure(title, "no per-rank timings: this generation ran on one rank");
  if (!ranks.every(measuredPeak))
    return emptyFigure(title, "peak memory per rank is not measured by this engine build or device (timings.ranks[i].peak_bytes)");
  const method = ranks.find((c) => typeof c.peak_method === "string")?.peak_method;
  return figure(
    [{ type: "bar", name: method ? `peak (${method})` : "peak", x: ranks.map(rankLabel), y: ranks.map((c) => (c.peak_bytes as number) / 2 ** 20), marker: { color: "#5cb85c" } }],
    { title: { text: title }, yaxis: { title: { text: "MiB" } }, ...layout },
  );
}

// ---- the memory model's plan (lab.memoryPlan) ----

const stages = ["encode", "denoise", "decode"] as const;
const gb = (bytes: number) => bytes / 1e9;

/**
 * What a generation is predicted to hold on its device per stage (stacked: weights kept there, DiT
 * blocks streamed in, an offloaded text encoder brought in to encode, activations), the budget as a line, and where a finished generation on a
 * CUDA device is given, its measured peaks as markers (timings.device_peak_bytes).
 */
export function memoryPlan(plan: MemoryPlanReport, measured?: GenerateResult | Timings, layout: Record<string, unknown> = {}): Figure {
  const x = stages.map((s) => s);
  const each = (bytes: number) => x.map(() => gb(bytes));
  const parts: [string, number[], string][] = [
    ["DiT weights", each(plan.dit_resident_bytes), "#4a90d9"],
    ["DiT blocks streamed in", [0, gb(plan.dit_streamed_bytes), 0], "#9cc3ec"],
    ["text encoder", each(plan.t5_bytes), "#8e6bbf"],
    ["text encoder brought in", [gb(plan.t5_streamed_bytes ?? 0), 0, 0], "#c4b0e0"],
    ["VAE", each(plan.vae_bytes), "#5cb85c"],
    ["activations", [plan.t5_activation_bytes, plan.dit_activation_bytes, plan.vae_activation_bytes].map(gb), "#f0ad4e"],
  ];
  const data: Trace[] = parts
    .filter(([, y]) => y.some((v) => v > 0))
    .map(([name, y, color]) => ({ type: "bar", name, x, y, marker: { color } }));
  if (plan.budget_bytes > 0)
    data.push({ type: "scatter", mode: "lines", name: `budget ${gb(plan.budget_bytes).toFixed(2)} GB`, x, y: each(plan.budget_bytes), line: { color: "#d9534f", dash: "dash" } });
  const peaks = measured ? timingsOf(measured).device_peak_bytes : undefined;
  if (peaks) {
    const y = stages.map((s) => peaks[s]?.[plan.device]);
    if (y.every((v) => typeof v === "number"))
      data.push({ type: "scatter", mode: "markers", name: "measured peak", x, y: y.map((v) => gb(v!)), marker: { color: "#222", size: 10, symbol: "diamond" } });
  }
  const verdict = plan.budget_bytes > 0 ? (plan.fits ? " — fits the budget" : ` — ${plan.problem}`) : "";
  const host = plan.host_bytes > 0 ? ` · host ${gb(plan.host_bytes).toFixed(2)} GB` : "";
  const title = `predicted memory on ${plan.device}: peak ${gb(plan.peak_bytes).toFixed(2)} GB${host}`;
  const plain = `${title} (encode ${gb(plan.encode_peak_bytes).toFixed(2)}, denoise ${gb(plan.denoise_peak_bytes).toFixed(2)}, ` +
    `decode ${gb(plan.decode_peak_bytes).toFixed(2)} GB)${verdict}`;
  return figure(data, { title: { text: title }, barmode: "stack", yaxis: { title: { text: "GB (live tensors)" } }, ...layout }, plain);
}

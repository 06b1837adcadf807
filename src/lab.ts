// The engine as a notebook uses it: open() and generate() as in engine.ts, plus a load bar, a live
// progress bar (per-rank status on a device group, optional latent previews), the kernel's ■ as an
// AbortSignal, results that show themselves (inline mp4 + GIF) and stats(). The same interface
// attaches to a running `wanlab serve` (connect(), or open({ server: true })), so a kernel restart
// does not unload the model. Outside the kernel it behaves exactly like the engine (no display, no
// SIGINT routing).
import { connect as connectClient, connectFor, type Client, type ConnectOptions, type RemoteResult } from "./client/index.js";
import { open as openEngine, type EngineLab, type OpenOptions } from "./engine.js";
import { CancelledError, type GenerateOptions, type GenerateResult, type Lab, type MemoryPlanReport, type ModelInfo } from "./shared/lab.js";
import { refuseUnknownParams, resolveParams, type GenerateParams } from "./params.js";
import type { JobOptions } from "./shared/jobs.js";
import { inKernel, interruptible } from "./display/interrupt.js";
import { notebookLoad } from "./display/load.js";
import { inspectValue, makeDisplayable, type Displayable } from "./display/mime.js";
import { figure, memoryPlan as memoryPlanFigure, type Figure } from "./display/plot.js";
import { notebookProgress, type RankRow } from "./display/progress.js";
import { encodeVideo, videoBundle, type EncodedVideo } from "./display/video.js";
import { continuation, notebookFork, refuseServerFork, serverContinuation, type ForkOptions, type NotebookFork } from "./lab-fork.js";
import type { ForkedRun } from "./engine.js";

export type { ForkOptions, NotebookFork } from "./lab-fork.js";

export interface NotebookResult extends GenerateResult, Displayable {
  /** The mp4 / GIF / poster bytes the display uses (encoded once, after generation). */
  encoded?: EncodedVideo;
}

export interface NotebookOpenOptions extends OpenOptions {
  /** Attach to a running `wanlab serve` instead of loading in-process: true finds it through
   * server.json; or where it is ({ url, token } or { runtimeDir }). `model`, when given, must be
   * the server's. */
  server?: boolean | ConnectOptions;
}

export interface NotebookLab extends Lab {
  /** With `stopAtStep`: runs the first steps only and gives back the fork (latents and what a
   * resume needs, docs/forks.md); a server-attached lab refuses it (its jobs run to the end). */
  generate(params: GenerateParams, options: ForkOptions): Promise<NotebookFork>;
  generate(params: GenerateParams, options?: GenerateOptions): Promise<NotebookResult>;
  /** Continues a fork to the end: generate({ ...run.params, ...changes, resume: run.state }).
   * Unchanged parameters give the uninterrupted run's latents bit for bit. A server-attached lab
   * resumes the fork's file (`run.file`, written with ForkOptions.saveTensors). */
  resume(run: ForkedRun & { file?: string }, changes?: Partial<GenerateParams>, options?: GenerateOptions): Promise<NotebookResult>;
  /** "in-process", or the URL of the server it is attached to. */
  readonly where: string;
  /** Every finished generation of this lab, oldest first. */
  readonly history: readonly NotebookResult[];
  /** Time per denoising step and per component of the last generation (or `result`'s). */
  stats(result?: GenerateResult): Figure;
  /** What a generation with these parameters would need per device (the memory model) and
   * whether it fits the budget; nothing runs. As a cell's value it shows as its chart. */
  memoryPlan(params: Omit<GenerateParams, "prompt">): Promise<MemoryPlanReport & Displayable>;
}

/** A notebook lab attached to `wanlab serve`: close() detaches, the server keeps the model loaded. */
export interface ServerLab extends NotebookLab {
  /** The server's client: jobs, queue, server stats, shutdown. */
  readonly client: Client;
  generate(params: GenerateParams, options: ForkOptions): Promise<never>;
  generate(params: GenerateParams & Pick<JobOptions, "output">, options?: GenerateOptions): Promise<NotebookResult & RemoteResult>;
  resume(run: ForkedRun & { file?: string }, changes?: Partial<GenerateParams> & Pick<JobOptions, "output">, options?: GenerateOptions): Promise<NotebookResult & RemoteResult>;
}

/** A memory plan that shows itself as its chart; its fields stay a plain object. */
function shownPlan(p: MemoryPlanReport): MemoryPlanReport & Displayable {
  const fig = memoryPlanFigure(p);
  return makeDisplayable(p, () => fig.mimeBundle(), () => inspectValue(fig));
}

/** Charts of one generation's timings: seconds per denoising step, and encode / denoise / decode. */
export function statsFigure(r: GenerateResult): Figure {
  const steps = r.timings.step_s;
  const skipped = new Set(r.timings.tea_cache_skipped_steps ?? []);
  const p = r.params;
  // Memory per stage on the DiT's device: the memory model's prediction, and on CUDA the
  // allocator's measured peak beside it.
  const stages = ["encode", "denoise", "decode"] as const;
  const predicted = r.timings.predicted_peak_bytes, measured = r.timings.device_peak_bytes;
  const device = predicted ? Object.keys(predicted.encode)[0] : undefined;
  const memory = device
    ? [
      { type: "bar" as const, name: `predicted, ${device}`, x: [...stages], y: stages.map((s) => predicted![s][device]! / 1e9), xaxis: "x3", yaxis: "y3", marker: { color: "#9cc3ec" } },
      ...(measured?.encode?.[device] !== undefined
        ? [{ type: "bar" as const, name: `measured, ${device}`, x: [...stages], y: stages.map((s) => measured[s][device]! / 1e9), xaxis: "x3", yaxis: "y3", marker: { color: "#222" } }]
        : []),
    ]
    : [];
  // Each subplot's title above its own domain (plotly has no subplot titles of its own).
  const domains: [string, [number, number]][] = [
    ["seconds per denoising step", memory.length ? [0, 0.42] : [0, 0.55]],
    ["seconds per component", memory.length ? [0.5, 0.72] : [0.65, 1]],
    ...(memory.length ? [["memory per stage (GB)", [0.8, 1]] as [string, [number, number]]] : []),
  ];
  const subplotTitles = domains.map(([text, [a, b]]) => ({
    text, showarrow: false, xref: "paper", yref: "paper", x: (a + b) / 2, y: 1, xanchor: "center", yanchor: "bottom", yshift: 6, font: { size: 12, color: "#444" },
  }));
  return figure(
    [
      // TeaCache's skipped steps (the blocks' residual reused) in grey
      { type: "bar", name: "s per step", x: steps.map((_, i) => i + 1), y: steps, xaxis: "x", yaxis: "y",
        marker: { color: steps.map((_, i) => (skipped.has(i) ? "#bbb" : "#4a90d9")) } },
      {
        type: "bar",
        name: "s per component",
        x: [r.timings.encode_cached ? `text encoder (${r.timings.encode_cached} cached)` : "text encoder", "DiT (denoise)", "VAE decode"],
        y: [r.timings.encode_s, r.timings.denoise_s, r.timings.decode_s],
        xaxis: "x2",
        yaxis: "y2",
        marker: { color: ["#f0ad4e", "#4a90d9", "#5cb85c"] },
      },
      ...memory,
    ],
    {
      title: { text: `${p.width}×${p.height}, ${p.numFrames} frames, ${p.numInferenceSteps} steps, seed ${p.seed}` },
      showlegend: false,
      barmode: "group",
      height: 380,
      margin: { t: 96, r: 20, b: 60, l: 60 },
      annotations: subplotTitles,
      xaxis: { title: { text: skipped.size ? `denoising step (${skipped.size} skipped by TeaCache, grey)` : "denoising step" },
        domain: domains[0]![1] },
      yaxis: { title: { text: "seconds" } },
      xaxis2: { domain: domains[1]![1] },
      yaxis2: { anchor: "x2", title: { text: "seconds" } },
      ...(memory.length ? { xaxis3: { domain: domains[2]![1] }, yaxis3: { anchor: "x3", title: { text: `GB (${memory.length > 1 ? "predicted | measured" : "predicted"})` } } } : {}),
    },
  );
}

function describe(r: GenerateResult): string {
  const p = r.params;
  return `seed ${p.seed}, ${p.numInferenceSteps} steps, cfg ${p.cfgScale}, shift ${p.sigmaShift}`;
}

async function displayable(r: GenerateResult): Promise<NotebookResult> {
  if (!inKernel()) return makeDisplayable(r, () => ({ "text/plain": describe(r) }), () => `GenerateResult (${describe(r)})`);
  // Encoding happens here, not at display time: a cell's value is printed synchronously.
  const encoded = await encodeVideo(r.video);
  const bundle = await videoBundle(r.video, encoded, describe(r));
  const out = makeDisplayable(r, () => bundle, () => String(bundle["text/plain"])) as NotebookResult;
  Object.defineProperty(out, "encoded", { value: encoded, enumerable: false });
  makeDisplayable(r.video, () => bundle, () => String(bundle["text/plain"]));
  Object.defineProperty(r.video, "encoded", { value: encoded, enumerable: false });
  return out;
}

/** "cpu:0-3" → cpu:0 … cpu:3; "cuda:0,2" → cuda:0, cuda:2; "cuda:0x4" (4 ranks sharing GPU 0) →
 * cuda:0 four times; "cpu" → cpu; [] when it does not parse. */
export function expandDevices(devices: string): string[] {
  const m = /^(\w+)(?::(.+))?$/.exec(devices.trim());
  if (!m) return [];
  if (m[2] === undefined) return [m[1]!];
  const shared = /^(\d+)x(\d+)$/.exec(m[2].trim());
  if (shared) return m[1] !== "cuda" ? [] : Array.from({ length: Number(shared[2]) }, () => `${m[1]}:${Number(shared[1])}`);
  const out: string[] = [];
  for (const part of m[2].split(",")) {
    const r = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!r) return [];
    for (let i = Number(r[1]); i <= Number(r[2] ?? r[1]); i++) out.push(`${m[1]}:${i}`);
  }
  return out;
}

/** The ranks of a layout: global rank g = cfg_index · sp + ring_index · ulysses + ulysses_index. */
export function rankRows(parallel: ModelInfo["parallel"], devices?: string): RankRow[] {
  if (!parallel || parallel.devices <= 1) return [];
  const { ulysses: U, ring: R, cfg: C } = parallel;
  const names = devices ? expandDevices(devices) : [];
  const rows: RankRow[] = [];
  for (let g = 0; g < parallel.devices; g++) {
    const u = g % U, r = Math.floor(g / U) % R, c = Math.floor(g / (U * R));
    const role = [U > 1 ? `ulysses ${u}/${U}` : "", R > 1 ? `ring ${r}/${R}` : "", C > 1 ? (c === 0 ? "cfg cond" : "cfg uncond") : ""].filter(Boolean).join(" · ");
    rows.push({ rank: g, device: names.length === parallel.devices ? names[g]! : names.length ? `${names[g % names.length]} (node ${Math.floor(g / names.length)})` : `rank ${g}`, role });
  }
  return rows;
}

function layoutText(p: ModelInfo["parallel"], devices?: string): string {
  if (!p || p.devices <= 1) return "1 rank";
  return `${p.devices} ranks${devices ? ` on ${devices}` : ""}: ulysses ${p.ulysses} × ring ${p.ring}${p.cfg > 1 ? " × cfg 2" : ""}`;
}

/** generate() with the notebook's progress, ■ and inline results, over any Lab (engine or client). */
function notebookGenerate<R extends GenerateResult>(
  lab: { generate(params: GenerateParams, options?: GenerateOptions): Promise<R> },
  context: { ranks: RankRow[]; previews: boolean; history: NotebookResult[]; inProcess: boolean },
) {
  return async function generate(params: GenerateParams, options: GenerateOptions = {}): Promise<R & NotebookResult> {
    // A mistyped key is refused as the server refuses it (the server checks its own requests).
    if (context.inProcess) refuseUnknownParams(params);
    if (!inKernel()) {
      const r = (await displayable(await lab.generate(params, options))) as R & NotebookResult;
      context.history.push(r);
      return r;
    }
    resolveParams(params); // a parameter error is reported as itself, before any bar appears
    const note = options.preview && !context.previews ? "no latent previews through the server (in-process engine only)" : undefined;
    const progress = notebookProgress("wanlab", { ranks: context.ranks, note });
    const { signal, release } = interruptible(options.signal);
    const t0 = Date.now();
    try {
      const r = await lab.generate(params, {
        ...options,
        signal,
        onProgress: (e) => {
          progress.onProgress(e);
          options.onProgress?.(e);
        },
      });
      progress.finish(`done in ${((Date.now() - t0) / 1000).toFixed(1)}s (${describe(r)})`, true, r.timings);
      const out = (await displayable(r)) as R & NotebookResult;
      context.history.push(out);
      return out;
    } catch (e) {
      if (e instanceof CancelledError) {
        const where = `cancelled at step ${progress.step}/${progress.total || params.numInferenceSteps || "?"}`;
        progress.finish(`${where}; the model is still loaded`, false);
        throw new CancelledError(`${where}; the model is still loaded`, e);
      }
      progress.finish(`failed: ${(e as Error).message}`, false);
      throw e;
    } finally {
      release();
    }
  };
}

function statsOf(history: NotebookResult[]) {
  return function stats(result?: GenerateResult): Figure {
    const r = result ?? history.at(-1);
    if (!r) throw new Error("stats: nothing generated yet");
    return statsFigure(r);
  };
}

/**
 * Loads a model like engine.open() (in the kernel with a load bar: the native load with the device
 * group, then the tokenizer), or with `server` attaches to a running `wanlab serve` (see connect()).
 */
export async function open(options: NotebookOpenOptions & { server: true | ConnectOptions }): Promise<ServerLab>;
export async function open(options?: NotebookOpenOptions): Promise<NotebookLab>;
export async function open(options: NotebookOpenOptions = {}): Promise<NotebookLab> {
  const { server, ...engineOptions } = options;
  if (server) {
    for (const k of ["devices", "ulysses", "ring", "cfgParallel", "transport", "rendezvous", "nnodes", "nodeRank", "tokenizer"] as const)
      if (engineOptions[k] !== undefined) throw new Error(`open: '${k}' cannot be combined with server (the server's layout is fixed by \`wanlab serve\`)`);
    return connect(server === true ? {} : server, options.model);
  }
  const devices = options.devices ?? "cpu";
  const group = expandDevices(devices).length > 1 || (options.nnodes ?? 1) > 1;
  const load = inKernel()
    ? notebookLoad("wanlab load", [
        { stage: "model", label: group ? `weights, modules, device group ${devices} (threads, rendezvous, process groups)` : "weights (memory-mapped, checked), modules" },
        { stage: "tokenizer", label: "tokenizer.json" },
      ])
    : undefined;
  const t0 = performance.now();
  let lab: EngineLab;
  try {
    lab = await openEngine({
      ...engineOptions,
      onLoad: (e) => {
        load?.onLoad(e);
        options.onLoad?.(e);
      },
    });
  } catch (e) {
    load?.finish(`failed: ${(e as Error).message}`, false);
    throw e;
  }
  const p = lab.info.parallel;
  load?.finish(`loaded ${lab.info.layout} model in ${((performance.now() - t0) / 1000).toFixed(1)}s · ${layoutText(p, devices)}`, true);
  const history: NotebookResult[] = [];
  const ranks = rankRows(p, devices);
  const whole = notebookGenerate(lab, { ranks, previews: true, history, inProcess: true });
  const fork = notebookFork(lab, ranks);
  const generate = (async (params: GenerateParams, options: GenerateOptions | ForkOptions = {}) =>
    "stopAtStep" in options && options.stopAtStep !== undefined ? fork(params, options) : whole(params, options)) as NotebookLab["generate"];
  return {
    info: lab.info,
    where: "in-process",
    history,
    generate,
    resume: async (run, changes, options) => whole(continuation(run, changes), options),
    stats: statsOf(history),
    memoryPlan: async (params) => shownPlan(lab.memoryPlan(params)),
    close: lab.close,
    [Symbol.asyncDispose]: lab.close,
  };
}

/**
 * Attaches to a running `wanlab serve` (found through server.json in the runtime directory unless
 * url and token are given): the notebook lab's interface over the server's queue. close()
 * detaches; the server and its loaded model keep running. `model`, when given, must be the
 * server's.
 */
export async function connect(options: ConnectOptions = {}, model?: string): Promise<ServerLab> {
  const load = inKernel() ? notebookLoad("wanlab connect", [{ stage: "server", label: "server.json → GET /v1/health" }]) : undefined;
  load?.onLoad({ stage: "server", state: "start" });
  let client: Client;
  try {
    client = model !== undefined ? await connectFor(model, options) : await connectClient(options);
  } catch (e) {
    load?.finish(`failed: ${(e as Error).message}`, false);
    throw e;
  }
  load?.onLoad({ stage: "server", state: "done" });
  const p = client.info.parallel;
  load?.finish(`attached to ${client.url}: ${client.info.layout} model ${client.info.dir} · ${layoutText(p)}; close() detaches, the server keeps it loaded`, true);
  const history: NotebookResult[] = [];
  const whole = notebookGenerate(client, { ranks: rankRows(p), previews: false, history, inProcess: false });
  const generate = (async (params: GenerateParams & Pick<JobOptions, "output">, options: GenerateOptions | ForkOptions = {}) =>
    "stopAtStep" in options && options.stopAtStep !== undefined ? refuseServerFork() : whole(params, options)) as ServerLab["generate"];
  return {
    info: client.info,
    where: client.url,
    client,
    history,
    generate,
    resume: async (run, changes, options) => whole(serverContinuation(run, changes), options),
    stats: statsOf(history),
    memoryPlan: async (params) => shownPlan(await client.memoryPlan(params)),
    close: client.close,
    [Symbol.asyncDispose]: client.close,
  };
}

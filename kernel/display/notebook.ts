// The engine as a notebook uses it: open() and generate() as in engine.ts, plus a live progress bar,
// the kernel's ■ as an AbortSignal, results that show themselves (inline mp4 + GIF) and stats().
// Outside the kernel it behaves exactly like the engine (no display, no SIGINT routing).
import { CancelledError, open as openEngine, type GenerateOptions, type GenerateResult, type Lab, type OpenOptions } from "../engine.js";
import { resolveParams, type GenerateParams } from "../params.js";
import { inKernel, interruptible } from "./interrupt.js";
import { makeDisplayable, type Displayable } from "./mime.js";
import { figure, type Figure } from "./plot.js";
import { notebookProgress } from "./progress.js";
import { encodeVideo, videoBundle, type EncodedVideo } from "./video.js";

export interface NotebookResult extends GenerateResult, Displayable {
  /** The mp4 / GIF / poster bytes the display uses (encoded once, after generation). */
  encoded?: EncodedVideo;
}

export interface NotebookLab extends Lab {
  generate(params: GenerateParams, options?: GenerateOptions): Promise<NotebookResult>;
  /** Every finished generation of this lab, oldest first. */
  readonly history: readonly NotebookResult[];
  /** Time per denoising step and per component of the last generation (or `result`'s). */
  stats(result?: GenerateResult): Figure;
}

/** Charts of one generation's timings: seconds per denoising step, and encode / denoise / decode. */
export function statsFigure(r: GenerateResult): Figure {
  const steps = r.timings.step_s;
  const p = r.params;
  return figure(
    [
      { type: "bar", name: "s per step", x: steps.map((_, i) => i + 1), y: steps, xaxis: "x", yaxis: "y", marker: { color: "#4a90d9" } },
      {
        type: "bar",
        name: "s per component",
        x: ["text encoder", "DiT (denoise)", "VAE decode"],
        y: [r.timings.encode_s, r.timings.denoise_s, r.timings.decode_s],
        xaxis: "x2",
        yaxis: "y2",
        marker: { color: ["#f0ad4e", "#4a90d9", "#5cb85c"] },
      },
    ],
    {
      title: { text: `${p.width}×${p.height}, ${p.numFrames} frames, ${p.numInferenceSteps} steps, seed ${p.seed}` },
      showlegend: false,
      grid: { rows: 1, columns: 2, pattern: "independent" },
      xaxis: { title: { text: "denoising step" }, domain: [0, 0.55] },
      yaxis: { title: { text: "seconds" } },
      xaxis2: { domain: [0.65, 1] },
      yaxis2: { anchor: "x2", title: { text: "seconds" } },
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
  return out;
}

/** Loads a model like engine.open(); in the kernel, generations show progress and results inline. */
export async function open(options: OpenOptions = {}): Promise<NotebookLab> {
  const lab = await openEngine(options);
  const history: NotebookResult[] = [];

  async function generate(params: GenerateParams, options: GenerateOptions = {}): Promise<NotebookResult> {
    if (!inKernel()) {
      const r = await displayable(await lab.generate(params, options));
      history.push(r);
      return r;
    }
    resolveParams(params); // a parameter error is reported as itself, before any bar appears
    const progress = notebookProgress("wanlab");
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
      progress.finish(`done in ${((Date.now() - t0) / 1000).toFixed(1)}s (${describe(r)})`, true);
      const out = await displayable(r);
      history.push(out);
      return out;
    } catch (e) {
      if (e instanceof CancelledError) {
        const where = `cancelled at step ${progress.step}/${progress.total || params.numInferenceSteps || "?"}`;
        progress.finish(`${where}; the model is still loaded`, false);
        throw new CancelledError(`${where}; the model is still loaded`);
      }
      progress.finish(`failed: ${(e as Error).message}`, false);
      throw e;
    } finally {
      release();
    }
  }

  function stats(result?: GenerateResult): Figure {
    const r = result ?? history.at(-1);
    if (!r) throw new Error("stats: nothing generated yet");
    return statsFigure(r);
  }

  return {
    info: lab.info,
    history,
    generate,
    stats,
    close: lab.close,
    [Symbol.asyncDispose]: lab.close,
  };
}

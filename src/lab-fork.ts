// Forked runs in a notebook lab: generate(params, { stopAtStep }) runs the first steps and stops
// there, undecoded, giving back a NotebookFork (its latents and what a resume needs);
// resume(run, changes) continues it to the end with the same or changed prompt, CFG, LoRAs or
// TeaCache. An in-process lab resumes from the state in memory; a lab attached to a server resumes
// from the fork's file (the job field `resume`), so a fork meant for a server is written to one
// (`saveTensors`) by an in-process lab or `wanlab generate --stop-at-step K --save-tensors FILE`.
import type { EngineLab, ForkedRun } from "./engine.js";
import { refuseUnknownParams, type GenerateParams } from "./params.js";
import { CancelledError, type GenerateOptions } from "./shared/lab.js";
import { inKernel, interruptible } from "./display/interrupt.js";
import { escapeHtml, makeDisplayable, type Displayable } from "./display/mime.js";
import { notebookProgress, type RankRow } from "./display/progress.js";

/** generate()'s options for a fork: stop after step `stopAtStep` (1 .. steps-1). `saveTensors`
 * writes the fork file (tensor `latents` and the metadata "wanlab.fork", docs/forks.md). */
export interface ForkOptions extends Omit<GenerateOptions, "returnTensors"> {
  stopAtStep: number;
}

/** A run stopped after a step: pass it to lab.resume(run, changes) to continue it. */
export interface NotebookFork extends ForkedRun, Displayable {
  /** The fork file written (ForkOptions.saveTensors): what a server-attached lab resumes from. */
  file?: string;
}

/** The parameters that continue `run`: its own as used (seed included), then `changes`, resuming
 * from its state (or, for a server, from `from`, its fork file). */
export function continuation(run: ForkedRun, changes: Partial<GenerateParams> = {}, from: GenerateParams["resume"] = run.state): GenerateParams {
  // Resolved defaults that mean "none" ("" and []) are left out: the request gives them back.
  const carried = Object.entries(run.params).filter(([k, v]) => k !== "resume" && v !== undefined && v !== "" && !(Array.isArray(v) && v.length === 0));
  return { ...(Object.fromEntries(carried) as GenerateParams), ...changes, resume: from };
}

/** What a server-attached lab sends for resume(run, changes): the fork's file, or a clear refusal. */
export function serverContinuation(run: ForkedRun & { file?: string }, changes?: Partial<GenerateParams>): GenerateParams {
  if (!run.file)
    throw new Error(
      "resume: a lab attached to a server resumes fork files only (the job field 'resume'), and this fork was not written to one; " +
        "fork with { stopAtStep, saveTensors: FILE } on an in-process lab (or `wanlab generate --stop-at-step K --save-tensors FILE`)",
    );
  return continuation(run, changes, run.file);
}

/** Refuses generate(params, { stopAtStep }) on a server-attached lab: the server's jobs run to the end. */
export function refuseServerFork(): never {
  throw new Error(
    "stopAtStep: a lab attached to a server cannot stop a run (its jobs run to the end); fork on an in-process lab " +
      "with { stopAtStep, saveTensors: FILE } or `wanlab generate --stop-at-step K --save-tensors FILE`, then lab.resume() it here",
  );
}

function shownFork(run: ForkedRun, file?: string): NotebookFork {
  const s = run.state;
  const text = `fork at step ${s.fromStep}/${s.steps} · seed ${s.seed} · latents [${s.latents.shape.join(", ")}]` +
    ` · ${(run.timings.encode_s + run.timings.denoise_s).toFixed(2)}s${file ? ` · ${file}` : ""}; lab.resume(run, changes) continues it`;
  const target: ForkedRun & { file?: string } = { ...run, ...(file ? { file } : {}) };
  return makeDisplayable(target, () => ({ "text/plain": text, "text/html": `<pre>${escapeHtml(text)}</pre>` }), () => text);
}

/** generate(params, { stopAtStep }) of an in-process notebook lab (in the kernel with its progress bar). */
export function notebookFork(lab: EngineLab, ranks: RankRow[]) {
  return async function fork(params: GenerateParams, options: ForkOptions): Promise<NotebookFork> {
    const { stopAtStep, ...rest } = options;
    refuseUnknownParams(params);
    if (!inKernel()) return shownFork(await lab.fork(params, stopAtStep, rest), rest.saveTensors);
    const progress = notebookProgress("wanlab fork", { ranks });
    const { signal, release } = interruptible(rest.signal);
    try {
      const run = await lab.fork(params, stopAtStep, {
        ...rest,
        signal,
        onProgress: (e) => {
          progress.onProgress(e);
          rest.onProgress?.(e);
        },
      });
      progress.finish(`stopped after step ${run.state.fromStep}/${run.state.steps} in ${(run.timings.encode_s + run.timings.denoise_s).toFixed(1)}s`, true);
      return shownFork(run, rest.saveTensors);
    } catch (e) {
      const message = e instanceof CancelledError ? `cancelled at step ${progress.step}; the model is still loaded` : `failed: ${(e as Error).message}`;
      progress.finish(message, false);
      throw e;
    } finally {
      release();
    }
  };
}

// What the status page shows of jobs as they run, beyond the Job record: each job's latest
// progress event (stage, step, elapsed, ETA) and its latest latent preview as a PNG (the
// engine's latents projected to RGB, src/display/preview.ts), and the denoising speed of the
// jobs that finished. Fed by the queue's events; the engine sends latents every
// previewEvery(steps) denoising steps (src/server/jobs.ts asks for them).
import type { ProgressEvent } from "../engine.js";
import { latentPreview } from "../display/preview.js";
import type { JobEvent, Queue } from "./jobs.js";

/** A progress event without its latents (what the page and the event stream carry). */
export type Progress = Omit<ProgressEvent, "latents">;

export interface Preview {
  png: Buffer;
  /** The denoising step it shows, of `total`. */
  step: number;
  total: number;
  /** Which latent frames it shows, side by side. */
  frames: number[];
}

export interface LiveView {
  progress(id: string): Progress | undefined;
  preview(id: string): Preview | undefined;
  /** Denoising steps per second of the last jobs that finished (newest first), and of each job. */
  speed(id: string): number | undefined;
  recentSpeeds(): number[];
  stop(): void;
}

/** How often the engine sends latents for a job of `steps` denoising steps: about 25 previews a job. */
export function previewEvery(steps: number): number {
  return Math.max(1, Math.floor(steps / 25));
}

/** The progress fields of an event, without the latents it may carry. */
export function progressOnly(p: ProgressEvent): Progress {
  return { stage: p.stage, step: p.step, total: p.total, elapsed: p.elapsed, eta: p.eta };
}

export interface LiveViewOptions {
  /** A new preview at most this often per job (its last step always); default 400 ms. */
  previewEveryMs?: number;
  /** Jobs whose progress and preview are kept after they end (default 16). */
  keep?: number;
  now?: () => number;
}

export function watchLive(events: Queue["events"], o: LiveViewOptions = {}): LiveView {
  const now = o.now ?? Date.now;
  const minMs = o.previewEveryMs ?? 400;
  const keep = o.keep ?? 16;
  const progress = new Map<string, Progress>();
  const previews = new Map<string, Preview & { at: number }>();
  const speeds = new Map<string, number>();
  const finished: string[] = [];

  function forget(id: string): void {
    finished.push(id);
    while (finished.length > keep) {
      const old = finished.shift()!;
      progress.delete(old);
      previews.delete(old);
      speeds.delete(old);
    }
  }

  const listener = (e: JobEvent) => {
    const id = e.job.id;
    if (e.type === "started") {
      progress.delete(id);
      previews.delete(id);
    } else if (e.type === "progress") {
      const p = e.progress;
      progress.set(id, progressOnly(p));
      if (p.stage === "denoise" && p.step > 0 && p.elapsed > 0) speeds.set(id, p.step / p.elapsed);
      const last = previews.get(id);
      if (p.latents && (!last || p.step === p.total || now() - last.at >= minMs)) {
        try {
          const img = latentPreview(p.latents, { maxFrames: 4, targetHeight: 128 });
          previews.set(id, { png: img.png, step: p.step, total: p.total, frames: img.frames, at: now() });
        } catch {
          /* latents of another shape than Wan2.1's: no preview, the job goes on */
        }
      }
    } else if (e.type === "done" || e.type === "failed" || e.type === "cancelled") {
      forget(id);
    }
  };
  events.on("event", listener);
  return {
    progress: (id) => progress.get(id),
    preview: (id) => previews.get(id),
    speed: (id) => speeds.get(id),
    recentSpeeds: () => finished.filter((id) => speeds.has(id)).reverse().map((id) => speeds.get(id)!),
    stop: () => events.off("event", listener),
  };
}

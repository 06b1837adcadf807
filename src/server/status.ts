// GET /v1/status: everything the status page shows, in one answer small enough to poll every
// second: the running job with its progress and preview, the queue with each job's key
// parameters, the last jobs that ended (with their video's route), queue counts, throughput and
// memory. Prompts and paths are data: the page writes them as text, never as markup.
import type { MemoryPlanReport } from "../engine.js";
import type { GenerateParams } from "../params.js";
import type { Job, Queue, QueueStats } from "./jobs.js";
import type { LiveView, Progress } from "./live.js";

/** The parameters a person tells jobs apart by. */
export interface KeyParams {
  prompt: string;
  height: number;
  width: number;
  numFrames: number;
  steps: number;
  cfgScale: number;
  sigmaShift: number;
  seed: string;
  teaCache?: number;
  inputVideo?: boolean;
  strength?: number;
}

export interface JobSummary {
  id: string;
  state: Job["state"];
  params: KeyParams;
  submittedAt: number;
  startedAt?: number;
  endedAt?: number;
  step: number;
  totalSteps: number;
  stage?: Job["stage"];
  error?: string;
  /** The route of its video (done jobs). */
  video?: string;
  /** Denoising steps per second (measured by the progress events). */
  stepsPerSecond?: number;
}

export interface RunningSummary extends JobSummary {
  progress?: Progress;
  /** The latest latent preview: its route (with the step, so a new one is a new address) and step. */
  preview?: { url: string; step: number; total: number; frames: number[] };
  /** The memory model's prediction for it on the engine's device. */
  plan?: { device: string; peakBytes: number; hostBytes: number; budgetBytes: number };
}

export interface StatusReport {
  version: string;
  model: { layout: string; placement?: unknown };
  now: number;
  running: RunningSummary | null;
  /** The first `queuedShown` waiting jobs, in order (stats.queueDepth counts them all). */
  queued: JobSummary[];
  /** The last jobs that ended, newest first. */
  recent: JobSummary[];
  stats: QueueStats;
  /** Denoising steps per second of the last finished jobs, newest first. */
  recentStepsPerSecond: number[];
  memory: Record<string, unknown>;
}

export interface StatusSource {
  queue: Queue;
  live?: LiveView;
  version: string;
  model: { layout: string; placement?: unknown };
  memory: () => Record<string, unknown>;
  plan: (params: GenerateParams) => MemoryPlanReport;
}

/** How many ended jobs the page lists. */
export const recentCount = 12;
/** How many waiting jobs it lists. */
export const queuedShown = 50;

export function keyParams(p: Job["params"]): KeyParams {
  return {
    prompt: p.prompt, height: p.height, width: p.width, numFrames: p.numFrames, steps: p.numInferenceSteps,
    cfgScale: p.cfgScale, sigmaShift: p.sigmaShift, seed: p.seed,
    ...(p.teaCacheL1Thresh > 0 ? { teaCache: p.teaCacheL1Thresh } : {}),
    ...(p.inputVideo ? { inputVideo: true, strength: p.denoisingStrength } : {}),
  };
}

function summary(j: Job, live?: LiveView): JobSummary {
  const video = j.outputs?.some((p) => p.endsWith("/video.mp4")) ? `/v1/jobs/${j.id}/files/video.mp4` : undefined;
  const speed = live?.speed(j.id);
  return {
    id: j.id, state: j.state, params: keyParams(j.params), submittedAt: j.submittedAt,
    startedAt: j.startedAt, endedAt: j.endedAt, step: j.step, totalSteps: j.totalSteps, stage: j.stage,
    ...(j.error !== undefined ? { error: j.error } : {}),
    ...(video ? { video } : {}),
    ...(speed !== undefined ? { stepsPerSecond: speed } : {}),
  };
}

/** Builds the reports; the memory plan of each running job is computed once. */
export function statusReporter(s: StatusSource): () => StatusReport {
  let planned: { id: string; plan?: RunningSummary["plan"] } | undefined;
  const planOf = (j: Job): RunningSummary["plan"] => {
    if (planned?.id !== j.id) {
      let plan: RunningSummary["plan"];
      try {
        const r = s.plan({ ...j.params, seed: BigInt(j.params.seed) });
        plan = { device: r.device, peakBytes: r.peak_bytes, hostBytes: r.host_bytes, budgetBytes: r.budget_bytes };
      } catch {
        plan = undefined; // the engine cannot plan now (a model file changed): the page shows none
      }
      planned = { id: j.id, plan };
    }
    return planned.plan;
  };
  return () => {
    const jobs = s.queue.list();
    const run = jobs.find((j) => j.state === "running");
    let running: RunningSummary | null = null;
    if (run) {
      const pv = s.live?.preview(run.id);
      running = {
        ...summary(run, s.live),
        progress: s.live?.progress(run.id),
        ...(pv ? { preview: { url: `/v1/jobs/${run.id}/preview?step=${pv.step}`, step: pv.step, total: pv.total, frames: pv.frames } } : {}),
        plan: planOf(run),
      };
    }
    const ended = jobs.filter((j) => j.state === "done" || j.state === "failed" || j.state === "cancelled")
      .sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0))
      .slice(0, recentCount);
    return {
      version: s.version,
      model: s.model,
      now: Date.now(),
      running,
      queued: s.queue.queued().slice(0, queuedShown).map((j) => summary(j)),
      recent: ended.map((j) => summary(j, s.live)),
      stats: s.queue.stats(),
      recentStepsPerSecond: s.live?.recentSpeeds() ?? [],
      memory: s.memory(),
    };
  };
}

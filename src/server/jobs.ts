// The job queue: handlers validate and enqueue, one consumer feeds the engine. Every state
// change is journalled before it is announced, so what a client saw survives a crash.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CancelledError, type CancelledAt, type Lab, type ProgressEvent } from "../engine.js";
import { ParamError, resolveParams, type ResolvedParams } from "../params.js";
import type { Journal, JobState, ReplayedJob } from "./journal.js";
import { checkOutputFolders, commitOutputs, confine, openJobPlace, paramsToJson, removeScratch, type JobPlace, type Manifest, type ResolvedJson } from "./outputs.js";
import type { JobOptions, JobRequest } from "./schema.js";

export interface Job {
  id: string;
  state: JobState;
  /** Denoising step reached (totalSteps once done). */
  step: number;
  totalSteps: number;
  stage?: ProgressEvent["stage"];
  error?: string;
  outputs?: string[];
  params: ResolvedJson;
  options: JobOptions;
  /** Milliseconds since the epoch. */
  submittedAt: number;
  startedAt?: number;
  endedAt?: number;
  /** Engine attempts, counting transient-error retries and restarts. */
  attempts: number;
  cancelling?: boolean;
}

export type JobEvent =
  | { type: "started" | "done"; job: Job }
  /** client: who submitted it ("127.0.0.1 (curl/8.5.0)"), absent for a job restored from the journal. */
  | { type: "queued"; job: Job; client?: string }
  /** field: the request field the error is about, when it names one (a ParamError). */
  | { type: "failed"; job: Job; field?: string }
  /** at: where the engine stopped (the CancelledError's stage, step, block...); absent while queued. */
  | { type: "cancelled"; job: Job; at?: CancelledAt }
  | { type: "requeued"; job: Job; reason?: string }
  | { type: "progress"; job: Job; progress: ProgressEvent }
  | { type: "retry"; job: Job; error: string; delayMs: number };

export interface RetryPolicy {
  /** Retries of a transient engine error (out of memory, device busy) before the job fails. */
  maxRetries: number;
  /** First backoff; each retry doubles it. */
  backoffMs: number;
}

/** Test seam (ServeOptions.faults, injected by tests): fail this fraction of engine calls
 * (transient ones are retried, fatal ones not). */
export interface Faults {
  transient: number;
  fatal: number;
}

/** "transient=P,fatal=P" (the form test/serve-launcher.ts and scripts/loadtest.mjs --faults take). */
export function parseFaults(spec: string | undefined): Faults | undefined {
  if (!spec) return undefined;
  const f: Faults = { transient: 0, fatal: 0 };
  for (const part of spec.split(",")) {
    const [k, v] = part.split("=");
    const n = Number(v);
    if ((k !== "transient" && k !== "fatal") || !(n >= 0 && n <= 1)) throw new Error(`faults: expected transient=P,fatal=P with P in [0, 1], got '${part}'`);
    f[k] = n;
  }
  return f;
}

/** Errors worth another try: the engine ran out of memory or a device was busy. Never bad inputs. */
export function isTransient(e: unknown): boolean {
  if (e instanceof ParamError || e instanceof CancelledError) return false;
  const code = (e as { code?: string }).code;
  if (code === "WANLAB_TRANSIENT" || code === "ENOMEM" || code === "EAGAIN") return true;
  return /out of memory|CUDA error: (out of memory|device busy)|resource temporarily unavailable/i.test(String((e as Error)?.message));
}

export interface QueueOptions {
  lab: Lab;
  journal: Journal;
  /** Root of every job's files. */
  outputs: string;
  model: { dir: string; layout: string; fingerprint: string };
  version: string;
  retry?: Partial<RetryPolicy>;
  faults?: Faults;
  /** Checks a request against the engine before it is queued (the memory budget); throws a
   * ParamError to refuse it. */
  admit?: (params: ResolvedParams) => void;
  /** How long DELETE of a running job waits for the engine to stop before answering 202
   * (cancelling) instead of 200 (cancelled); default 2 s. */
  cancelWaitMs?: number;
  /** How long a forced stop (grace over, or a second signal) waits for the engine after its
   * cancel before giving up on it; default 2 s. */
  stopWaitMs?: number;
  /** Log lines (failed jobs, journal errors); default stderr. */
  log?: (line: string) => void;
  /** Ask the engine for the latents every `previewEvery(steps)` denoising steps (progress events
   * then carry them: the status page's previews, src/server/live.ts); default none. */
  previewEvery?: (steps: number) => number;
}

export interface QueueStats {
  uptime_s: number;
  jobs: Record<JobState, number>;
  queueDepth: number;
  running?: string;
  /** Fraction of uptime the engine spent on jobs. */
  engineLoad: number;
  throughput: { jobsPerSecond: number; done: number; window_s: number };
  latency: { submitToStartMean_s: number | null; submitToStartMax_s: number | null; started: number };
  retries: number;
}

export interface Queue {
  readonly events: EventEmitter<{ event: [JobEvent] }>;
  /** Validates (ParamError naming the field), journals, enqueues; `client` is for the console. */
  submit(request: JobRequest, client?: string): Promise<Job>;
  get(id: string): Job | undefined;
  list(): Job[];
  queued(): Job[];
  /** Queued: leaves the queue now. Running: journals the request, cancels the engine and waits
   * up to cancelWaitMs for it to stop. A second call while one is under way shares its answer. */
  cancel(id: string): Promise<Job | undefined>;
  /** Puts journalled jobs back: queued ones in order, an interrupted one once. */
  restore(jobs: ReplayedJob[]): Promise<void>;
  stats(): QueueStats;
  /** Stops taking jobs; the running one gets `graceMs` to finish, then is re-queued in the
   * journal and cancelled in the engine, which gets stopWaitMs to stop. Calling it again while
   * it waits ends the grace now. Resolves with the job the engine still runs, if it did not stop. */
  drain(graceMs: number): Promise<{ abandoned?: Job }>;
}

const newId = () => `${Date.now().toString(36)}-${randomBytes(5).toString("hex")}`;

export function createQueue(o: QueueOptions): Queue {
  const retry: RetryPolicy = { maxRetries: 3, backoffMs: 250, ...o.retry };
  const events = new EventEmitter<{ event: [JobEvent] }>();
  events.setMaxListeners(0);
  const jobs = new Map<string, Job>();
  const waiting: Job[] = [];
  let current: { job: Job; controller: AbortController; requeue: boolean; forced: boolean; finished: Promise<void> } | undefined;
  let stopping = false;
  let draining: Promise<{ abandoned?: Job }> | undefined;
  let forceNow: (() => void) | undefined;
  const cancelling = new Map<string, Promise<Job>>();
  const log = o.log ?? ((line: string) => console.error(line));
  const cancelWaitMs = o.cancelWaitMs ?? 2000;
  const stopWaitMs = o.stopWaitMs ?? 2000;
  const started = Date.now();
  let busyMs = 0;
  let retries = 0;
  const doneTimes: number[] = [];
  const latencies: number[] = [];

  const emit = (e: JobEvent) => events.emit("event", e);

  /** e: what stopped it (the field of a ParamError, where a CancelledError stopped), for the console. */
  function end(job: Job, state: "done" | "failed" | "cancelled", extra: Partial<Job> = {}, e?: unknown): void {
    Object.assign(job, { state, endedAt: Date.now(), cancelling: undefined }, extra);
    if (state === "done") doneTimes.push(job.endedAt!);
    if (state === "done") emit({ type: state, job });
    else if (state === "failed") emit({ type: state, job, field: e instanceof ParamError ? e.field : undefined });
    else emit({ type: state, job, at: e instanceof CancelledError ? { stage: e.stage, step: e.step, steps: e.steps, block: e.block, blocks: e.blocks, chunk: e.chunk, chunks: e.chunks, layer: e.layer, layers: e.layers } : undefined });
  }

  /** Resolves once the job is done, failed or cancelled, or after `ms`. */
  function settled(job: Job, ms: number): Promise<void> {
    if (["done", "failed", "cancelled"].includes(job.state)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        events.off("event", listener);
        resolve();
      };
      const listener = (e: JobEvent) => {
        if (e.job === job && (e.type === "done" || e.type === "failed" || e.type === "cancelled" || e.type === "requeued")) finish();
      };
      const timer = setTimeout(finish, ms);
      events.on("event", listener);
    });
  }

  async function run(job: Job, controller: AbortController, self: { requeue: boolean; forced: boolean }): Promise<void> {
    const t0 = Date.now();
    job.attempts++;
    job.state = "running";
    job.startedAt = t0;
    latencies.push((t0 - job.submittedAt) / 1000);
    await o.journal.append({ t: "start", id: job.id, at: t0, attempt: job.attempts });
    emit({ type: "started", job });
    for (let tries = 0; ; tries++) {
      let place: JobPlace | undefined;
      try {
        place = await openJobPlace(o.outputs, job.options.output, job.id);
        const tmp = place.scratch;
        if (o.faults) {
          const r = Math.random();
          if (r < o.faults.fatal) throw new Error("injected engine failure (test seam: faults)");
          if (r < o.faults.fatal + o.faults.transient) throw Object.assign(new Error("injected: CUDA out of memory (test seam: faults)"), { code: "WANLAB_TRANSIENT" });
        }
        const tg = Date.now();
        const result = await o.lab.generate(
          { ...job.params, seed: BigInt(job.params.seed) },
          {
            signal: controller.signal,
            saveTensors: job.options.saveTensors ? join(tmp, "tensors.safetensors") : undefined,
            preview: o.previewEvery ? { every: o.previewEvery(job.totalSteps) } : undefined,
            onProgress: (p) => {
              job.stage = p.stage;
              if (p.stage === "denoise") job.step = p.step;
              emit({ type: "progress", job, progress: p });
            },
          },
        );
        const tw = Date.now();
        const at = (ms: number) => new Date(ms).toISOString();
        const outputs = await commitOutputs(place, result, (files): Manifest => ({
          producer: "wanlab",
          id: job.id,
          model: o.model,
          engine: { wanlab: o.version, node: process.version, platform: `${process.platform}-${process.arch}` },
          params: job.params,
          video: { file: files.video, width: result.video.width, height: result.video.height, numFrames: result.video.numFrames, fps: job.options.fps ?? result.video.fps, crf: job.options.crf ?? 5 },
          tensors: files.tensors,
          parallel: o.lab.info.parallel,
          promptTokens: result.promptTokens,
          attempts: job.attempts + tries,
          timings: {
            submitted: at(job.submittedAt), started: at(t0), finished: at(Date.now()),
            queue_s: (t0 - job.submittedAt) / 1000, generate_s: (tw - tg) / 1000, write_s: (Date.now() - tw) / 1000,
            engine: result.timings,
          },
          ranks: [{ rank: 0, device: "cpu", timings: result.timings }],
        }), { fps: job.options.fps, crf: job.options.crf, tensors: job.options.saveTensors === true });
        await o.journal.append({ t: "done", id: job.id, at: Date.now(), outputs });
        end(job, "done", { outputs, step: job.totalSteps });
        return;
      } catch (e) {
        if (place) await place.discard().catch(() => undefined);
        const message = (e as Error)?.message ?? String(e);
        if (controller.signal.aborted || e instanceof CancelledError) {
          if (self.forced) return; // a forced stop journalled it as re-queued already
          if (self.requeue) {
            await o.journal.append({ t: "requeue", id: job.id, at: Date.now(), reason: "server shutdown" });
            Object.assign(job, { state: "queued", step: 0, stage: undefined, cancelling: undefined });
            waiting.unshift(job);
            emit({ type: "requeued", job, reason: "server shutdown; it runs again when the server restarts" });
          } else {
            await o.journal.append({ t: "cancelled", id: job.id, at: Date.now(), reason: message });
            end(job, "cancelled", { error: message }, e);
          }
          return;
        }
        if (isTransient(e) && tries < retry.maxRetries) {
          const delayMs = retry.backoffMs * 2 ** tries;
          retries++;
          await o.journal.append({ t: "retry", id: job.id, at: Date.now(), attempt: tries + 1, error: message });
          emit({ type: "retry", job, error: message, delayMs });
          try {
            await sleep(delayMs, undefined, { signal: controller.signal });
          } catch {
            /* cancelled while waiting: the next pass sees the aborted signal */
          }
          continue;
        }
        const error = isTransient(e) ? `${message} (gave up after ${tries} retries)` : message;
        await o.journal.append({ t: "failed", id: job.id, at: Date.now(), error });
        end(job, "failed", { error }, e);
        return;
      } finally {
        await place?.close();
      }
    }
  }

  function pump(): void {
    if (current || stopping) return;
    const job = waiting.shift();
    if (!job) return;
    const controller = new AbortController();
    const self = { job, controller, requeue: false, forced: false, finished: Promise.resolve() };
    const t0 = Date.now();
    self.finished = run(job, controller, self)
      .catch((e) => {
        // the journal itself failed (disk full?): the job cannot be recorded, say so loudly
        log(`wanlab serve: job ${job.id}: ${(e as Error).message}`);
        if (job.state === "running") end(job, "failed", { error: `server error: ${(e as Error).message}` });
      })
      .finally(() => {
        busyMs += Date.now() - t0;
        current = undefined;
        setImmediate(pump);
      });
    current = self;
  }

  function enqueue(job: Job): void {
    jobs.set(job.id, job);
    waiting.push(job);
  }

  return {
    events,
    async submit(request, client) {
      const { output, fps, crf, saveTensors, ...params } = request;
      const resolved = resolveParams(params);
      o.admit?.(resolved);
      const options: JobOptions = { output, fps, crf, saveTensors };
      confine(o.outputs, output);
      await checkOutputFolders(o.outputs, output);
      const job: Job = {
        id: newId(), state: "queued", step: 0, totalSteps: resolved.numInferenceSteps,
        params: paramsToJson(resolved), options, submittedAt: Date.now(), attempts: 0,
      };
      await o.journal.append({ t: "submit", id: job.id, at: job.submittedAt, params: job.params, options });
      enqueue(job);
      emit({ type: "queued", job, client });
      setImmediate(pump);
      return job;
    },
    get: (id) => jobs.get(id),
    list: () => [...jobs.values()],
    queued: () => [...waiting],
    cancel(id) {
      const job = jobs.get(id);
      if (!job) return Promise.resolve(undefined);
      const under = cancelling.get(id);
      if (under) return under; // a second DELETE while the first is journalled gets the same answer
      const c = current;
      const work = (async () => {
        const i = waiting.indexOf(job);
        if (i >= 0) {
          waiting.splice(i, 1);
          job.cancelling = true;
          await o.journal.append({ t: "cancelled", id, at: Date.now(), reason: "cancelled while queued" });
          end(job, "cancelled", { error: "cancelled while queued" });
        } else if (c?.job === job && job.state === "running") {
          job.cancelling = true;
          c.controller.abort(); // the engine's cancel, at once
          // journalled before it is answered: after a crash the job stays cancelled
          await o.journal.append({ t: "cancel", id, at: Date.now() });
          await settled(job, cancelWaitMs);
        }
        return job;
      })();
      cancelling.set(id, work);
      void work.finally(() => cancelling.delete(id)).catch(() => undefined);
      return work;
    },
    async restore(replayed) {
      for (const r of replayed) {
        const job: Job = {
          id: r.id, state: r.state, step: r.state === "done" ? r.params.numInferenceSteps : 0, totalSteps: r.params.numInferenceSteps,
          params: r.params, options: r.options, submittedAt: r.submittedAt, startedAt: r.startedAt, endedAt: r.endedAt,
          attempts: r.attempts, error: r.error, outputs: r.outputs,
        };
        // a crash while it ran leaves its scratch folder; it is rewritten by a retry, removed otherwise
        if (r.state === "running" || (r.state === "queued" && r.startedAt !== undefined)) {
          await removeScratch(o.outputs, r.options.output, r.id).catch((e) => log(`wanlab serve: job ${r.id}: could not remove its scratch folder: ${(e as Error).message}`));
        }
        if (r.cancelRequested && (r.state === "queued" || r.state === "running")) {
          // cancelled by a DELETE that was acknowledged; the server stopped before the engine did
          const error = "cancelled while running (the server stopped before the engine did; not run again)";
          await o.journal.append({ t: "cancelled", id: r.id, at: Date.now(), reason: error });
          Object.assign(job, { state: "cancelled", error, endedAt: Date.now() });
          jobs.set(job.id, job);
          emit({ type: "cancelled", job });
        } else if (r.state === "queued") {
          enqueue(job);
          emit({ type: "requeued", job, reason: "after a restart (queued in the journal)" });
        } else if (r.state === "running") {
          // The server stopped while this job ran: one more try, then it is failed with the reason.
          if (r.interrupted <= 1) {
            await o.journal.append({ t: "requeue", id: r.id, at: Date.now(), reason: "the server stopped while the job ran; retrying once", interrupted: true });
            job.state = "queued";
            enqueue(job);
            emit({ type: "requeued", job, reason: "after a restart (the server stopped while it ran; it runs once more)" });
          } else {
            const error = `interrupted ${r.interrupted} times: the server stopped while the job ran (not retried again)`;
            await o.journal.append({ t: "failed", id: r.id, at: Date.now(), error });
            Object.assign(job, { state: "failed", error, endedAt: Date.now() });
            jobs.set(job.id, job);
            emit({ type: "failed", job });
          }
        } else jobs.set(job.id, job);
      }
      setImmediate(pump);
    },
    stats() {
      const now = Date.now();
      const counts: Record<JobState, number> = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 };
      for (const j of jobs.values()) counts[j.state]++;
      const window = Math.min(60, (now - started) / 1000);
      const recent = doneTimes.filter((t) => t >= now - window * 1000).length;
      const busy = busyMs + (current ? now - (current.job.startedAt ?? now) : 0);
      return {
        uptime_s: (now - started) / 1000,
        jobs: counts,
        queueDepth: waiting.length,
        running: current?.job.id,
        engineLoad: now > started ? Math.min(1, busy / (now - started)) : 0,
        throughput: { jobsPerSecond: window > 0 ? recent / window : 0, done: doneTimes.length, window_s: window },
        latency: {
          submitToStartMean_s: latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : null,
          submitToStartMax_s: latencies.length ? Math.max(...latencies) : null,
          started: latencies.length,
        },
        retries,
      };
    },
    drain(graceMs) {
      if (draining) {
        if (graceMs === 0) forceNow?.();
        return draining;
      }
      stopping = true;
      draining = (async () => {
        const c = current;
        if (!c) return {};
        let timer: NodeJS.Timeout | undefined;
        const forced = new Promise<"forced">((resolve) => {
          forceNow = () => resolve("forced");
          timer = setTimeout(forceNow, graceMs);
        });
        const outcome = await Promise.race([c.finished.then(() => "finished" as const), forced]);
        clearTimeout(timer);
        forceNow = undefined;
        if (outcome === "finished" || ["done", "failed", "cancelled"].includes(c.job.state)) return {};
        // The grace is over (or a second signal came): the job goes back to the queue in the
        // journal (it runs again when the server restarts), the engine is told to cancel, and it
        // gets stopWaitMs to return before the server stops without it.
        c.requeue = true;
        c.forced = true;
        c.controller.abort();
        const job = c.job;
        try {
          await o.journal.append({ t: "requeue", id: job.id, at: Date.now(), reason: "server shutdown: the grace period ended while it ran" });
          Object.assign(job, { state: "queued", step: 0, stage: undefined, cancelling: undefined });
          emit({ type: "requeued", job, reason: "server shutdown: the grace period ended while it ran" });
        } catch (e) {
          log(`wanlab serve: job ${job.id}: could not journal its re-queueing: ${(e as Error).message}`);
        }
        let wait: NodeJS.Timeout | undefined;
        const stopped = await Promise.race([c.finished.then(() => true), new Promise<boolean>((r) => (wait = setTimeout(() => r(false), stopWaitMs)))]);
        clearTimeout(wait); // a pending timer would hold the process for the rest of it
        return stopped ? {} : { abandoned: job };
      })();
      return draining;
    },
  };
}

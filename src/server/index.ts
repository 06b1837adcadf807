// `wanlab serve`: one model loaded once, a journalled job queue over HTTP.
//
//   const server = await serve({ model: "/models/Wan2.1-T2V-1.3B", port: 0 });
//   console.log(server.url);      // http://127.0.0.1:PORT; server.json says the same, with the token
//   await server.close();         // finishes (or re-queues) the running job, removes server.json
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { freemem, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { open, refuseOverBudget, type DeviceMemoryNow, type MemoryPlanReport, type OpenOptions } from "../engine.js";
import { defaultModel, wanlabHome } from "../models.js";
import { ParamError, resolveParams, type ResolvedParams } from "../params.js";
import { formatBytes } from "../terminal/format.js";
import { buildApp } from "./app.js";
import { clip, timestamp, watchJobs } from "./console.js";
import { createQueue, type Faults, type RetryPolicy } from "./jobs.js";
import { previewEvery, watchLive } from "./live.js";
import { openJournal, readJournal, repairJournal, replay } from "./journal.js";
import { modelFingerprint } from "./outputs.js";
import { checkRuntimeDir, processStart, readServerFile, removeServerFile, runtimeDir, serverFile, staleReason, writeServerFile } from "./runtime.js";
import { checkInputVideoPath } from "../video/read.js";
import { checkForkFile } from "../fork.js";

export { runtimeDir, readServerFile, serverFile, type ServerInfo } from "./runtime.js";
export { jobBodySchema, paramSchemas, type JobOptions, type JobRequest } from "./schema.js";
export type { Job, JobEvent, QueueStats } from "./jobs.js";

export interface ServeOptions {
  /** Model directory; default: the embedded tiny model. */
  model?: string;
  /** Default 127.0.0.1. Anything not loopback needs `allowRemote`. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  allowRemote?: boolean;
  /** Where job files and journal.jsonl go; default $WANLAB_HOME/outputs. */
  outputs?: string;
  /** Where server.json goes; default runtimeDir(). */
  runtimeDir?: string;
  /** How long shutdown waits for the running job before re-queueing it (default 30 s). */
  graceMs?: number;
  /**
   * Without a budget (parallel.budget), refuse at submit every job whose predicted peak is over
   * the device's memory (CUDA: the card's total) or the host's (a CPU engine, and the host part
   * beside a GPU: MemAvailable when the server started, before it loaded the model, capped by
   * the cgroup's memory.max). Default true; false is `serve --budget none`.
   */
  guard?: boolean;
  /** How long a forced stop (the grace over, or a second signal) waits for the engine to return
   * after its cancel before the server stops without it (default 2 s). */
  stopWaitMs?: number;
  /** How long DELETE of a running job waits for it to be cancelled before answering 202
   * (default 2 s). */
  cancelWaitMs?: number;
  retry?: Partial<RetryPolicy>;
  bodyLimit?: number;
  /** Test seam: fail this fraction of engine calls (default none). */
  faults?: Faults;
  /** Log lines (default: stderr). */
  log?: (line: string) => void;
  /** No line per job event (accepted, started, progress, done, failed, cancelled, re-queued;
   * src/server/console.ts); the server's own lines (start, stop, warnings) stay. */
  quiet?: boolean;
  /** Sequence-parallel device group for the engine (src/engine.ts OpenOptions). */
  parallel?: { devices?: string; ulysses?: number; ring?: number; cfgParallel?: boolean; timeoutS?: number; logDir?: string; logLevel?: "error" | "warn" | "info" | "debug";
    /** Several nodes (one process each): node 0 serves HTTP and publishes every job to the others,
     * which run them in its device group (runServer makes nodes 1.. followers). */
    rendezvous?: string; nnodes?: number; nodeRank?: number;
    /** Compute placement and memory (OpenOptions dtype, t5Device, t5Offload, vaeDevice, persistentParams, budget). */
    dtype?: "f32" | "bf16" | "f16"; t5Device?: string; t5Offload?: boolean; vaeDevice?: string; persistentParams?: number; shardWeights?: boolean;
    budget?: OpenOptions["budget"]; budgetVideo?: OpenOptions["budgetVideo"] };
}

/** The options a test injects into a server that runs as its own process (`wanlab serve` started
 * by test/serve-launcher.ts); what serve() is given itself wins. */
export type TestSeams = Pick<ServeOptions, "faults" | "stopWaitMs" | "cancelWaitMs">;
let testSeams: TestSeams = {};

/** Test-only: every serve() in this process from now on takes `seams` as its defaults. The
 * production command never calls it; test/serve-launcher.ts does, before it runs the CLI. */
export function injectTestSeams(seams: TestSeams): void {
  testSeams = { ...seams };
}

export interface Server {
  url: string;
  token: string;
  model: string;
  outputs: string;
  runtimeFile: string;
  /** Graceful: stop accepting, finish or re-queue the running job, remove server.json. */
  close(options?: { graceMs?: number }): Promise<void>;
  /** Resolves once the server has stopped (by close() or POST /v1/shutdown); engineBusy: the
   * engine did not return within 2 s of its cancel (a forced stop), so it was not closed and
   * the process should exit (runServer does). */
  readonly closed: Promise<{ engineBusy: boolean }>;
}

/** The host memory a CPU engine may use: MemAvailable now (MemTotal-free memory the kernel can
 * give without swapping), capped by the cgroup v2 limit when there is one. */
export function hostMemoryLimit(): { bytes: number; what: string } {
  let bytes = freemem();
  let what = "the host's available memory";
  try {
    const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"));
    if (m) {
      bytes = Number(m[1]) * 1024;
      what = "the host's available memory (MemAvailable when the server started)";
    }
  } catch {
    /* not Linux: os.freemem() */
  }
  try {
    const max = readFileSync("/sys/fs/cgroup/memory.max", "utf8").trim();
    if (/^\d+$/.test(max) && Number(max) < bytes) {
      bytes = Number(max);
      what = "this container's memory limit (cgroup memory.max)";
    }
  } catch {
    /* no cgroup v2 limit */
  }
  return { bytes, what };
}

/**
 * The default guard of a server without a budget: why a plan is over the memory the job would
 * run in, or "" when it fits. `devices` are the CUDA devices in use (none on a CPU engine).
 */
export function guardProblem(p: Pick<ResolvedParams, "height" | "width" | "numFrames">, plan: MemoryPlanReport, host: { bytes: number; what: string }, devices: DeviceMemoryNow[]): string {
  const video = `${p.height}x${p.width}x${p.numFrames}`;
  const stages = `encode ${formatBytes(plan.encode_peak_bytes)}, denoise ${formatBytes(plan.denoise_peak_bytes)}, decode ${formatBytes(plan.decode_peak_bytes)}`;
  const optOut = "make the video smaller (or tiled), or start the server with --budget BYTES to plan for it, or --budget none to accept such jobs anyway";
  const card = devices.find((d) => d.device === plan.device) ?? (plan.device.startsWith("cuda") ? devices[0] : undefined);
  if (card) {
    if (plan.peak_bytes > card.total_bytes) {
      return `a ${video} generation is predicted to need ${formatBytes(plan.peak_bytes)} on ${plan.device} (${stages}), more than the device's ${formatBytes(card.total_bytes)} (${card.name}); ${optOut}`;
    }
    if (plan.host_bytes > host.bytes) {
      return `a ${video} generation is predicted to need ${formatBytes(plan.host_bytes)} of host memory beside ${plan.device}, more than ${host.what}, ${formatBytes(host.bytes)}; ${optOut}`;
    }
    return "";
  }
  if (plan.peak_bytes > host.bytes) {
    return `a ${video} generation is predicted to need ${formatBytes(plan.peak_bytes)} on ${plan.device} (${stages}), more than ${host.what}, ${formatBytes(host.bytes)}; ${optOut}`;
  }
  return "";
}

const loopback = new Set(["127.0.0.1", "::1", "localhost"]);

export function isLoopback(host: string): boolean {
  return loopback.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

export async function serve(o: ServeOptions = {}): Promise<Server> {
  const log = o.log ?? ((line: string) => console.error(line));
  const host = o.host ?? "127.0.0.1";
  if (!isLoopback(host)) {
    if (!o.allowRemote) throw new Error(`host ${host} is not a loopback address; listening on it needs --allow-remote (anyone who can reach it and holds the token can run jobs)`);
    log(`wanlab serve: WARNING: listening on ${host}, not loopback: any machine that can reach it and has the token can run jobs and read outputs`);
  }
  const rtDir = o.runtimeDir ?? runtimeDir();
  await checkRuntimeDir(rtDir);
  const existing = await readServerFile(rtDir).catch(() => undefined);
  if (existing && existing.pid !== process.pid) {
    const stale = staleReason(existing);
    if (!stale) throw new Error(`another wanlab server (pid ${existing.pid}) is running at ${existing.url}; stop it, or set WANLAB_RUNTIME_DIR to run a second one`);
    log(`wanlab serve: ${serverFile(rtDir)} is stale (${stale}); replacing it`);
  }
  const model = resolve(o.model ?? (await defaultModel()));
  const outputs = resolve(o.outputs ?? join(wanlabHome(), "outputs"));
  await mkdir(outputs, { recursive: true });
  // measured before the model is loaded: the plans count the model's weights
  const hostLimit = hostMemoryLimit();

  log(`wanlab serve: loading ${model}`);
  const t0 = Date.now();
  const lab = await open({ model, ...o.parallel });
  const fingerprint = await modelFingerprint(model);
  log(`wanlab serve: ${lab.info.layout} model loaded in ${((Date.now() - t0) / 1000).toFixed(1)}s (${fingerprint.slice(0, 19)}…)`);

  const guard = o.guard !== false && o.parallel?.budget === undefined;
  const guarded = (p: Pick<ResolvedParams, "height" | "width" | "numFrames">, plan: MemoryPlanReport): MemoryPlanReport => {
    if (!guard || !plan.fits) return plan;
    const problem = guardProblem(p, plan, hostLimit, lab.deviceMemory());
    return problem ? { ...plan, fits: false, problem } : plan;
  };
  if (guard) log(`wanlab serve: no --budget: jobs predicted over ${lab.deviceMemory().length ? "the device's memory or " : ""}${hostLimit.what} (${formatBytes(hostLimit.bytes)}) are refused at submit; --budget none accepts them`);

  const stopWaitMs = o.stopWaitMs ?? testSeams.stopWaitMs ?? 2000;
  const journalPath = join(outputs, "journal.jsonl");
  const torn = await repairJournal(journalPath);
  if (torn) log(`wanlab serve: ${journalPath} ended in a torn record (${torn.bytes} bytes: a crash while it was written, never acknowledged); cut off, the bytes kept in ${torn.aside}`);
  const replayed = replay(await readJournal(journalPath));
  const journal = await openJournal(journalPath);
  const version = packageVersion();
  const queue = createQueue({
    lab, journal, outputs, version,
    model: { dir: model, layout: lab.info.layout, fingerprint },
    retry: o.retry,
    faults: o.faults ?? testSeams.faults,
    log,
    stopWaitMs,
    cancelWaitMs: o.cancelWaitMs ?? testSeams.cancelWaitMs,
    previewEvery,
    admit: (p) => {
      if (p.inputVideo) checkInputVideoPath(p.inputVideo);  // read on this machine, when the job runs
      // A fork file is read on this machine too: it must fit this model, the video and the steps.
      if (p.resume) checkForkFile(p.resume, { ...p, model: lab.info.dit_fingerprint, zDim: Number(lab.info.vae.z_dim) });
      let plan: MemoryPlanReport;
      try {
        plan = lab.memoryPlan(p);
      } catch (e) {
        if (e instanceof ParamError) throw e;
        // not the request's fault: the engine cannot take jobs now (e.g. a model file changed
        // since it was loaded); 503 with the engine's reason, logged, and the server stays up
        log(`wanlab serve: refused a job: ${(e as Error).message}`);
        throw Object.assign(new Error((e as Error).message), { statusCode: 503 });
      }
      refuseOverBudget(plan);
      const g = guarded(p, plan);
      if (!g.fits) throw new ParamError("budget", g.problem);
    },
  });
  const resumed = replayed.filter((j) => j.state === "queued" || j.state === "running").length;
  if (resumed) log(`wanlab serve: resuming ${resumed} job(s) from ${journalPath}`);
  if (!o.quiet) watchJobs(queue.events, { log });
  const live = watchLive(queue.events);
  await queue.restore(replayed);

  const token = randomBytes(32).toString("base64url");
  let stopping = false;
  let closing: Promise<void> | undefined;
  // src/native.ts registerFatalCleanup, where this build of the engine has it
  const nativeModule = (await import("../native.js")) as Record<string, unknown>;
  const fatalCleanup = typeof nativeModule.registerFatalCleanup === "function" ? (nativeModule.registerFatalCleanup as (paths: string[]) => void) : undefined;
  const clearFatalCleanup = () => {
    try {
      fatalCleanup?.([]);
    } catch {
      /* an engine without it */
    }
  };
  let resolveClosed!: (v: { engineBusy: boolean }) => void;
  const closed = new Promise<{ engineBusy: boolean }>((r) => (resolveClosed = r));
  const memoryAtStart = process.memoryUsage().rss;

  const app = buildApp({
    token, queue, live, bodyLimit: o.bodyLimit,
    info: { ...lab.info, dir: model, fingerprint, version },
    shutdown: () => void close(),
    stopping: () => stopping,
    onRefused: o.quiet ? undefined : (client, error, field) => log(`wanlab serve: ${timestamp(Date.now())} refused a job from ${client}: ${clip(error, 300)}${field ? ` (field ${field})` : ""}`),
    plan: (p) => guarded(resolveParams(p), lab.memoryPlan(p)),
    memory: () => ({
      process: { ...process.memoryUsage(), rssAtStart: memoryAtStart },
      // The host first (pinned offload and CPU ranks live there), then each CUDA device in use.
      devices: [{ device: "cpu", total: totalmem(), free: freemem() },
        ...lab.deviceMemory().map((d) => ({ device: d.device, name: d.name, total: d.total_bytes, free: d.free_bytes,
          allocated: d.allocated_bytes, peakAllocated: d.peak_allocated_bytes, reserved: d.reserved_bytes }))],
      // Host memory held by prompt embeddings, and how often a request found its prompts there.
      promptCache: lab.promptCache(),
    }),
  });

  async function close(options: { graceMs?: number } = {}): Promise<void> {
    if (closing) {
      if (options.graceMs === 0) void queue.drain(0); // a second signal: re-queue the running job now
      return closing;
    }
    closing = (async () => {
      stopping = true;
      const graceMs = options.graceMs ?? o.graceMs ?? 30_000;
      const running = queue.list().find((j) => j.state === "running");
      log(running && graceMs > 0
        ? `wanlab serve: stopping: job ${running.id} gets up to ${graceMs / 1000} s to finish (--grace), then it is cancelled and re-queued; a second signal does that now`
        : "wanlab serve: stopping");
      const { abandoned } = await queue.drain(graceMs);
      if (running && running.state === "queued") log(`wanlab serve: job ${running.id} re-queued in the journal; it runs again when the server restarts`);
      // requests in flight get half a second to be answered; then every connection is closed
      // (an event stream or a keep-alive socket would hold close() for seconds)
      const appClosed = app.close();
      const cut = setTimeout(() => app.server.closeAllConnections(), 250);
      await appClosed;
      clearTimeout(cut);
      await journal.close();
      if (abandoned) {
        // the engine is still inside a step: closing it now would wait for it; the process exits
        log(`wanlab serve: the engine did not return within ${stopWaitMs / 1000} s of its cancel; stopping without it`);
      } else {
        lab.endRequests(); // the following nodes (multi-node serve) return
        await lab.close();
      }
      await removeServerFile(rtDir);
      clearFatalCleanup();
      log("wanlab serve: stopped");
      resolveClosed({ engineBusy: abandoned !== undefined });
    })();
    return closing;
  }

  let address: string;
  try {
    address = await app.listen({ host, port: o.port ?? 0 });
  } catch (e) {
    await journal.close();
    await lab.close();
    throw e;
  }
  const port = (app.server.address() as { port: number }).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  void address;
  const runtimeFile = await writeServerFile({ url, token, pid: process.pid, pidStart: processStart(process.pid), model }, rtDir);
  // A fatal signal inside the engine (SIGBUS: a mapped weights file truncated underneath)
  // removes server.json on the way down (src/native.ts, where the engine provides it).
  try {
    fatalCleanup?.([runtimeFile]);
  } catch (e) {
    log(`wanlab serve: WARNING: a fatal engine signal would leave ${runtimeFile} behind: ${(e as Error).message}`);
  }
  return { url, token, model, outputs, runtimeFile, close, closed };
}

/**
 * The `wanlab serve` command's life: serve, print `listening on URL`, stop gracefully on
 * SIGINT/SIGTERM (a second signal re-queues the running job at once) or POST /v1/shutdown.
 */
export async function runServer(o: ServeOptions): Promise<number> {
  if ((o.parallel?.nodeRank ?? 0) > 0) return runFollower(o);
  const server = await serve(o);
  console.log(`listening on ${server.url}`);
  console.error(`wanlab serve: token and URL in ${server.runtimeFile}; outputs in ${server.outputs}`);
  console.error(`wanlab serve: status page: ${server.url}/?token=${server.token}  (the link signs a browser in: keep it private)`);
  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals > 1) console.error("wanlab serve: second signal: cancelling and re-queueing the running job now");
    void server.close({ graceMs: signals > 1 ? 0 : undefined });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const { engineBusy } = await server.closed;
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  // The engine's worker thread would keep the process alive until its step ends: the journal
  // and server.json are done with, so exit now.
  if (engineBusy) process.exit(0);
  return 0;
}

/**
 * Nodes 1.. of a multi-node `wanlab serve`: load the model into the shared device group and run
 * each job node 0 publishes, until node 0 stops (it ends the request stream) or a signal comes.
 * No HTTP here: jobs, outputs and the journal live on node 0.
 */
export async function runFollower(o: ServeOptions): Promise<number> {
  const p = o.parallel ?? {};
  const model = resolve(o.model ?? (await defaultModel()));
  console.error(`wanlab serve: node ${p.nodeRank} of ${p.nnodes}: loading ${model}, joining ${p.rendezvous}`);
  const lab = await open({ model, ...p });
  console.log(`following node 0 at ${p.rendezvous}`);
  const onSignal = () => lab.stopFollowing();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const s = await lab.follow();
    console.error(`wanlab serve: node ${p.nodeRank}: ran ${s.followed} job(s)${s.failed.length ? `, ${s.failed.length} failed (node 0 reports why)` : ""}; stopping`);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await lab.close();
  }
  return 0;
}

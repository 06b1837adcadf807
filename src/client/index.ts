// The client of `wanlab serve`, with the in-process engine's interface: code written against
// `open()` runs against a shared server by calling `connect()` instead.
//
//   const lab = await connect();          // finds the server through server.json
//   const r = await lab.generate({ prompt: "a cat", seed: 42 }, { signal, onProgress });
//   await r.video.save("cat.mp4");        // r.outputs: the server's files (absolute paths)
//
// generate() submits a job, follows its server-sent events (progress per step), and returns
// when it is done; aborting the signal cancels the job (DELETE) and rejects with CancelledError.
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve as resolvePath } from "node:path";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { CancelledError, defaultFps, framesTensor, type GenerateOptions, type GenerateResult, type Lab, type MemoryPlanReport, type ModelInfo, type ProgressEvent, type Video } from "../shared/lab.js";
import { ParamError, type GenerateParams, type ResolvedParams } from "../params.js";
import { findFfmpeg, writeMp4, writePngFrames } from "../video/ffmpeg.js";
import { collect } from "../shared/process.js";
import { readServerFile, runtimeDir } from "../server/runtime.js";
import type { JobOptions } from "../shared/jobs.js";
import type { QueueStats } from "../server/jobs.js";

export type JobState = "queued" | "running" | "done" | "failed" | "cancelled";

/** GET /v1/jobs/ID. */
export interface JobView {
  id: string;
  state: JobState;
  step: number;
  totalSteps: number;
  error?: string;
  outputs?: string[];
  stage?: ProgressEvent["stage"];
  attempts: number;
  cancelling?: boolean;
  submittedAt: number;
  startedAt?: number;
  endedAt?: number;
  params: Omit<ResolvedParams, "seed"> & { seed: string };
  options: JobOptions;
}

/** One server-sent event. */
export interface JobEventMessage {
  type: "queued" | "started" | "progress" | "retry" | "requeued" | "done" | "failed" | "cancelled";
  id: string;
  state: JobState;
  step: number;
  totalSteps: number;
  progress?: ProgressEvent;
  error?: string;
  outputs?: string[];
}

export interface ConnectOptions {
  /** Server URL and token; default: read from server.json in `runtimeDir`. */
  url?: string;
  token?: string;
  /** Where server.json is; default $WANLAB_RUNTIME_DIR, $XDG_RUNTIME_DIR/wanlab, ~/.local/share/wanlab/runtime. */
  runtimeDir?: string;
}

export type SubmitParams = GenerateParams & JobOptions;

export interface RemoteResult extends GenerateResult {
  /** The job id and the server's files (absolute paths on the server's machine). */
  id: string;
  outputs: string[];
  manifest: Record<string, unknown>;
}

export interface Client extends Lab {
  readonly url: string;
  generate(params: GenerateParams & Pick<JobOptions, "output">, options?: GenerateOptions): Promise<RemoteResult>;
  /** Submits without waiting: 202 { id, state }. */
  submit(params: SubmitParams): Promise<{ id: string; state: JobState }>;
  job(id: string): Promise<JobView>;
  jobs(state?: JobState): Promise<JobView[]>;
  queue(): Promise<{ running: JobView | null; queued: JobView[] }>;
  cancel(id: string): Promise<JobView>;
  /** Follows one job's events until it ends; resolves with its final state (never throws for failed/cancelled). */
  wait(id: string, options?: { signal?: AbortSignal; onEvent?: (e: JobEventMessage) => void }): Promise<JobView>;
  /** Every job's events, until the signal aborts or the server stops. */
  events(options?: { signal?: AbortSignal }): AsyncGenerator<JobEventMessage>;
  /** A file of a finished job (video.mp4, manifest.json, tensors.safetensors). */
  download(id: string, name: string): Promise<Buffer>;
  health(): Promise<{ status: string; model: string; layout: string; fingerprint: string; version: string; info: ModelInfo }>;
  stats(): Promise<QueueStats & { memory: Record<string, unknown> }>;
  /** What a job with these parameters would need per device and whether it fits the server's
   * --budget (POST /v1/plan; nothing is queued). */
  memoryPlan(params: Omit<GenerateParams, "prompt">): Promise<MemoryPlanReport>;
  /** Asks the server to stop gracefully. */
  shutdown(): Promise<void>;
}

/** A non-2xx answer; `status` is the HTTP status. */
export class ServerError extends Error {
  override name = "ServerError";
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const terminal = new Set(["done", "failed", "cancelled"]);

async function* sse(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

/** [F, H, W, 3] RGB bytes of an mp4, through ffmpeg. */
async function decodeFrames(mp4: Buffer, width: number, height: number): Promise<Uint8Array> {
  const ffmpeg = await findFfmpeg();
  const tmp = join(tmpdir(), `wanlab-${randomBytes(6).toString("hex")}.mp4`);
  await writeFile(tmp, mp4);
  try {
    const r = await collect(ffmpeg.path, ["-hide_banner", "-loglevel", "error", "-i", tmp, "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${width}x${height}`, "-"]);
    if (r.code !== 0) throw new Error(`decoding the job's mp4: ffmpeg exited with ${r.code}: ${r.stderr.trim()}`);
    return new Uint8Array(r.stdout);
  } finally {
    await rm(tmp, { force: true });
  }
}

async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${randomBytes(6).toString("hex")}.partial`);
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** connect(), checking that the server serves `model` when one is named (the CLI's `generate --server`). */
export async function connectFor(model: string | undefined, options: ConnectOptions = {}): Promise<Client> {
  const client = await connect(options);
  if (model !== undefined && model !== "" && resolvePath(model) !== client.info.dir) {
    await client.close();
    throw new Error(`the server at ${client.url} serves ${client.info.dir}, not ${resolvePath(model)}; drop --model or start a server for it`);
  }
  return client;
}

/** Connects to a running `wanlab serve` (found through server.json unless url and token are given). */
export async function connect(options: ConnectOptions = {}): Promise<Client> {
  const dir = options.runtimeDir ?? runtimeDir();
  let url = options.url;
  let token = options.token;
  const fromFile = url === undefined;
  async function locate(): Promise<void> {
    const info = await readServerFile(dir);
    if (!info) throw new Error(`no wanlab server is running: ${join(dir, "server.json")} does not exist (start one with \`wanlab serve\`)`);
    url = info.url;
    token = info.token;
  }
  if (fromFile) await locate();
  if (token === undefined) throw new Error("connect: a url needs its token");
  const streams = new Set<AbortController>();
  let closed = false;

  async function http(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const res = await fetch(`${url}${path}`, {
      method,
      signal,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body, (_k, v) => (typeof v === "bigint" ? v.toString() : v)),
    });
    if (!res.ok) {
      const j = (await res.json().catch(() => ({}))) as { error?: string; field?: string };
      const message = j.error ?? `${method} ${path}: HTTP ${res.status}`;
      if (res.status === 400 && j.field) throw new ParamError(j.field, message);
      throw new ServerError(res.status, message, j.field);
    }
    return res;
  }
  const json = async <T>(method: string, path: string, body?: unknown): Promise<T> => (await (await http(method, path, body)).json()) as T;

  let health: Awaited<ReturnType<Client["health"]>>;
  try {
    health = await json("GET", "/v1/health");
  } catch (e) {
    if (e instanceof ServerError) throw e;
    const where = fromFile ? ` (from ${join(dir, "server.json")}: a stale file if that server died)` : "";
    throw new Error(`cannot reach the wanlab server at ${url}${where}: ${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message}`);
  }

  async function wait(id: string, o: { signal?: AbortSignal; onEvent?: (e: JobEventMessage) => void } = {}): Promise<JobView> {
    const deadline = () => Date.now() + 120_000;
    let giveUp = deadline();
    for (;;) {
      const controller = new AbortController();
      const stop = () => controller.abort();
      o.signal?.addEventListener("abort", stop, { once: true });
      streams.add(controller);
      try {
        const res = await http("GET", `/v1/jobs/${id}/events`, undefined, controller.signal);
        giveUp = deadline();
        for await (const m of sse(res.body!)) {
          const e = { type: m.event, ...JSON.parse(m.data) } as JobEventMessage;
          o.onEvent?.(e);
          if (terminal.has(e.type)) return await json<JobView>("GET", `/v1/jobs/${id}`);
        }
      } catch (e) {
        if (o.signal?.aborted || closed) throw e;
        if (e instanceof ServerError && e.status !== 503) throw e;
      } finally {
        o.signal?.removeEventListener("abort", stop);
        streams.delete(controller);
      }
      // The stream broke (the server restarting?): look again, then follow on.
      if (Date.now() > giveUp) throw new Error(`lost the server while waiting for job ${id}`);
      await sleep(250);
      if (fromFile) await locate().catch(() => undefined);
    }
  }

  async function download(id: string, name: string): Promise<Buffer> {
    return Buffer.from(await (await http("GET", `/v1/jobs/${id}/files/${encodeURIComponent(name)}`)).arrayBuffer());
  }

  async function generate(params: GenerateParams & Pick<JobOptions, "output">, options: GenerateOptions = {}): Promise<RemoteResult> {
    if (closed) throw new Error("generate: the client is closed");
    if (options.returnTensors) throw new ParamError("returnTensors", "returnTensors is not available through the server; use saveTensors: PATH");
    options.signal?.throwIfAborted();
    const { id } = await json<{ id: string }>("POST", "/v1/jobs", { ...params, ...(options.saveTensors ? { saveTensors: true } : {}) });
    const onAbort = () => void http("DELETE", `/v1/jobs/${id}`).catch(() => undefined);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let job: JobView;
    try {
      job = await wait(id, { onEvent: (e) => e.type === "progress" && e.progress && options.onProgress?.(e.progress) });
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
    if (job.state === "cancelled") throw new CancelledError(job.error ?? `job ${id} was cancelled`);
    if (job.state === "failed") throw new Error(`job ${id} failed: ${job.error}`);
    const manifest = JSON.parse((await download(id, "manifest.json")).toString("utf8")) as {
      video: { width: number; height: number; numFrames: number; fps: number; crf: number };
      promptTokens: number;
      timings: { engine: GenerateResult["timings"] };
    };
    const mp4 = await download(id, "video.mp4");
    if (options.saveTensors) await writeAtomic(options.saveTensors, await download(id, "tensors.safetensors"));
    const { width, height, numFrames, fps, crf } = manifest.video;
    const frames = await decodeFrames(mp4, width, height);
    const video: Video = {
      frames, width, height, numFrames, fps: fps ?? defaultFps,
      async save(path, o = {}) {
        // the server's encoding as it is, unless other settings are asked for
        if ((o.fps ?? fps) === fps && (o.crf ?? crf) === crf) await writeAtomic(path, mp4);
        else await writeMp4(frames, { width, height, frames: numFrames, fps: o.fps ?? fps, crf: o.crf ?? crf, out: path });
        return path;
      },
      saveFrames: (dir) => writePngFrames(frames, { width, height, frames: numFrames, dir }),
      tensor: () => framesTensor(frames, numFrames, height, width),
    };
    return {
      id, outputs: job.outputs ?? [], manifest: manifest as unknown as Record<string, unknown>,
      video,
      params: { ...job.params, seed: BigInt(job.params.seed) },
      promptTokens: manifest.promptTokens,
      timings: manifest.timings.engine,
    };
  }

  async function close(): Promise<void> {
    closed = true;
    for (const c of streams) c.abort();
  }

  return {
    get url() {
      return url!;
    },
    info: { ...health.info, dir: health.model },
    generate,
    submit: (p) => json("POST", "/v1/jobs", p),
    job: (id) => json("GET", `/v1/jobs/${id}`),
    jobs: async (state) => (await json<{ jobs: JobView[] }>("GET", `/v1/jobs${state ? `?state=${state}` : ""}`)).jobs,
    queue: () => json("GET", "/v1/queue"),
    cancel: async (id) => {
      try {
        return await json<JobView>("DELETE", `/v1/jobs/${id}`);
      } catch (e) {
        if (e instanceof ServerError && e.status === 409) return json<JobView>("GET", `/v1/jobs/${id}`);
        throw e;
      }
    },
    wait,
    async *events(o = {}) {
      const controller = new AbortController();
      const stop = () => controller.abort();
      o.signal?.addEventListener("abort", stop, { once: true });
      streams.add(controller);
      try {
        const res = await http("GET", "/v1/events", undefined, controller.signal);
        for await (const m of sse(res.body!)) yield { type: m.event, ...JSON.parse(m.data) } as JobEventMessage;
      } catch (e) {
        if (!controller.signal.aborted) throw e;
      } finally {
        o.signal?.removeEventListener("abort", stop);
        streams.delete(controller);
      }
    },
    download,
    health: () => json("GET", "/v1/health"),
    stats: () => json("GET", "/v1/stats"),
    memoryPlan: (p) => json("POST", "/v1/plan", p),
    shutdown: async () => void (await http("POST", "/v1/shutdown")),
    close,
    [Symbol.asyncDispose]: close,
  };
}

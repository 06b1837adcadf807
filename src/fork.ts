// Forked runs: a run stopped after step k hands back its latents and what a continuation needs
// (ForkState); a later generation resumes from them (GenerateParams.resume) with the same or other
// prompts, CFG scale or TeaCache. A fork file is what `wanlab generate --stop-at-step K
// --save-tensors FILE` writes: the float32 tensor `latents` and the state as the JSON metadata
// key "wanlab.fork" (native/src/pipeline/fork.h says what it holds).
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { open as openFile } from "node:fs/promises";
import { ParamError } from "./params.js";
import type { Tensor } from "./shared/lab.js";

/** Where a run stopped: enough to resume it on the same model. */
export interface ForkState {
  /** [16, f, h/8, w/8] float32: the sampler's state after `fromStep` steps. */
  latents: Tensor;
  /** Steps already run (the step it stopped after). */
  fromStep: number;
  /** The schedule's length. */
  steps: number;
  /** The schedule's sigmas: a resume with another schedule is refused. */
  sigmas: number[];
  /** The DiT's fingerprint: a resume on another model is refused. */
  model: string;
  /** The seed of the run (a decimal string). */
  seed: string;
}

/** What a resume needs: the latents and the step; `sigmas` and `model`, when given, are checked. */
export type ResumeState = Pick<ForkState, "latents" | "fromStep"> & Partial<Pick<ForkState, "sigmas" | "model">>;

/** The fork state of a stopped run from the engine's JSON (native fork_state) and its latents. */
export function forkStateOf(json: string, latents: Tensor): ForkState {
  const s = JSON.parse(json) as { step: number; steps: number; sigmas: number[]; model: string; seed: string };
  return { latents, fromStep: s.step, steps: s.steps, sigmas: s.sigmas, model: s.model, seed: s.seed };
}

interface ForkFileHeader {
  /** The metadata "wanlab.fork", parsed. */
  meta: { step: number; steps: number; sigmas: number[]; model: string; seed: string; shape?: number[] };
  json: string;
  shape: number[];
  /** Where the float32 latents lie in the file, and how many bytes. */
  offset: number;
  bytes: number;
}

/** A fork file's header, read synchronously (the latents are not read); errors name the file and
 * what is missing or malformed. */
function readForkHeader(path: string): ForkFileHeader {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`resume: cannot read ${path}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a folder" : (e as Error).message}`);
  }
  try {
    const { size } = fstatSync(fd);
    if (!fstatSync(fd).isFile()) throw new Error(`resume: cannot read ${path}: not a regular file`);
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new Error(`resume: ${path} is not a safetensors file (too short)`);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > 64 << 20 || 8 + headerLen > size) throw new Error(`resume: ${path} is not a safetensors file (its header length ${headerLen} does not fit its ${size} bytes)`);
    const headerBuf = Buffer.alloc(headerLen);
    readSync(fd, headerBuf, 0, headerLen, 8);
    let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
    try {
      header = JSON.parse(headerBuf.toString("utf8"));
    } catch {
      throw new Error(`resume: ${path} is not a safetensors file (its header is not JSON)`);
    }
    const meta = (header.__metadata__ ?? {}) as Record<string, string>;
    if (typeof meta["wanlab.fork"] !== "string")
      throw new Error(`resume: ${path} holds no fork state (metadata "wanlab.fork"): write one with --stop-at-step K --save-tensors FILE`);
    const t = header.latents as { dtype: string; shape: number[]; data_offsets: [number, number] } | undefined;
    if (!t || t.dtype !== "F32" || !Array.isArray(t.shape) || t.shape.length !== 4)
      throw new Error(`resume: ${path} has no float32 tensor 'latents' of 4 dimensions`);
    const [begin, end] = t.data_offsets;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== n * 4 || 8 + headerLen + end > size) throw new Error(`resume: ${path}: tensor 'latents' does not fit the file`);
    let parsed: ForkFileHeader["meta"];
    try {
      parsed = JSON.parse(meta["wanlab.fork"]);
    } catch {
      throw new Error(`resume: ${path}: its fork state (metadata "wanlab.fork") is not JSON`);
    }
    if (!Number.isInteger(parsed?.step) || !Number.isInteger(parsed.steps) || typeof parsed.model !== "string")
      throw new Error(`resume: ${path}: its fork state (metadata "wanlab.fork") lacks step, steps or model`);
    return { meta: parsed, json: meta["wanlab.fork"], shape: t.shape, offset: 8 + headerLen + begin, bytes: end - begin };
  } finally {
    closeSync(fd);
  }
}

/** Reads a fork file; errors name the file and what is missing or malformed. */
export async function readForkFile(path: string): Promise<ForkState> {
  const h = readForkHeader(path);
  const fh = await openFile(path, "r");
  try {
    const bytes = Buffer.alloc(h.bytes);
    await fh.read(bytes, 0, bytes.length, h.offset);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    return forkStateOf(h.json, { data, shape: h.shape });
  } finally {
    await fh.close();
  }
}

/** What checkForkFile compares a fork file with: the request's video and schedule length, and the
 * engine's DiT fingerprint (ModelInfo.dit_fingerprint) and latent channels (the VAE's z_dim). */
export interface ForkFileExpectation {
  height: number;
  width: number;
  numFrames: number;
  numInferenceSteps: number;
  model: string;
  zDim: number;
}

/**
 * Checks a fork file before a request that resumes it is queued (the server's submit): readable,
 * a fork state, latents of the request's shape, the engine's model and the request's number of
 * steps. Errors are ParamErrors on "resume" naming the file and the mismatch; the schedule's
 * sigmas are compared when the run starts (the engine computes them).
 */
export function checkForkFile(path: string, want: ForkFileExpectation): void {
  let h: ForkFileHeader;
  try {
    h = readForkHeader(path);
  } catch (e) {
    throw new ParamError("resume", (e as Error).message);
  }
  const need = [want.zDim, (want.numFrames - 1) / 4 + 1, want.height / 8, want.width / 8];
  if (h.meta.model !== want.model)
    throw new ParamError("resume", `resume: ${path} comes from another model (${h.meta.model}), this engine's is ${want.model}`);
  if (h.shape.join() !== need.join())
    throw new ParamError("resume", `resume: ${path} holds latents of shape [${h.shape.join(", ")}], this request's video needs [${need.join(", ")}] (z, frames, height/8, width/8)`);
  if (h.meta.steps !== want.numInferenceSteps)
    throw new ParamError("resume", `resume: ${path} was stopped in a schedule of ${h.meta.steps} steps, this request's has ${want.numInferenceSteps} (the schedule must be the same)`);
  if (h.meta.step < 0 || h.meta.step >= h.meta.steps)
    throw new ParamError("resume", `resume: ${path} stopped after step ${h.meta.step}, outside its schedule's ${h.meta.steps} steps`);
}

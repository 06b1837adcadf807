// Forked runs: a run stopped after step k hands back its latents and what a continuation needs
// (ForkState); a later generation resumes from them (GenerateParams.resume) with the same or other
// prompts, CFG scale or TeaCache. A fork file is what `wanlab generate --stop-at-step K
// --save-tensors FILE` writes: the float32 tensor `latents` and the state as the JSON metadata
// key "wanlab.fork" (native/src/pipeline/fork.h says what it holds).
import { open as openFile } from "node:fs/promises";
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

/** Reads a fork file; errors name the file and what is missing or malformed. */
export async function readForkFile(path: string): Promise<ForkState> {
  const fh = await openFile(path, "r").catch((e: NodeJS.ErrnoException) => {
    throw new Error(`resume: cannot read ${path}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  });
  try {
    const { size } = await fh.stat();
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || (await fh.read(lenBuf, 0, 8, 0)).bytesRead !== 8) throw new Error(`resume: ${path} is not a safetensors file (too short)`);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > 64 << 20 || 8 + headerLen > size) throw new Error(`resume: ${path} is not a safetensors file (its header length ${headerLen} does not fit its ${size} bytes)`);
    const headerBuf = Buffer.alloc(headerLen);
    await fh.read(headerBuf, 0, headerLen, 8);
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
    const bytes = Buffer.alloc(end - begin);
    await fh.read(bytes, 0, bytes.length, 8 + headerLen + begin);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    return forkStateOf(meta["wanlab.fork"], { data, shape: t.shape });
  } finally {
    await fh.close();
  }
}

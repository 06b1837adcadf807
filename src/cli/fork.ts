// `wanlab generate --stop-at-step K --save-tensors FILE`: the first K steps of a generation on a
// local engine, written as a fork file (latents and what `--resume FILE` needs), no video.
import { rm } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { CancelledError, open, type OpenOptions } from "../engine.js";
import { resolveParams, type GenerateParams } from "../params.js";
import { checkOutputFile, commitFile, tempBeside } from "../fs/safe-output.js";
import { terminalProgress } from "../terminal/progress.js";
import { cliEnvRendezvous } from "./launch.js";
import { UsageError } from "./parse.js";

export interface ForkRunOptions {
  model: string;
  params: GenerateParams;
  stopAtStep: number;
  /** The fork file (--save-tensors). */
  saveTensors?: string;
  overwrite?: boolean;
  server?: boolean;
  /** The local engine's options, as a whole run of `wanlab generate` opens it (the device group,
   * its layout and transport, the compute placement). */
  parallel?: OpenOptions;
}

/** "1000,750,500,250" as numbers (--timesteps); the values' ranges are resolveParams'. */
export function numberList(flag: string, v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  const items = String(v).split(",");
  const out = items.map((s) => (/^\s*[0-9.eE+-]+\s*$/.test(s) ? Number(s) : NaN));
  const bad = out.findIndex((n) => !Number.isFinite(n));
  if (bad >= 0) throw new UsageError(`--${flag} must be comma-separated numbers like 1000,750,500,250; item ${bad + 1} is '${items[bad]}'`);
  return out;
}

/** Runs to step K and writes the fork file; 0 when written, 130 when cancelled. */
export async function runFork(o: ForkRunOptions): Promise<number> {
  if (o.server) throw new UsageError("--stop-at-step runs on a local engine, not --server");
  if (o.saveTensors === undefined) throw new UsageError("--stop-at-step needs --save-tensors FILE, where the fork is written");
  const p = resolveParams(o.params);
  if (o.stopAtStep >= p.numInferenceSteps)
    throw new UsageError(`--stop-at-step must be below the ${p.numInferenceSteps} steps, got ${o.stopAtStep}`);
  // --rendezvous env:// (torchrun, Slurm): this process's rank and the group from the environment;
  // every node runs the steps, node 0 writes the fork file.
  const parallel = o.parallel?.rendezvous === "env://" ? cliEnvRendezvous(o.parallel) : o.parallel;
  const target = parallel?.nodeRank ? undefined : checkOutputFile(o.saveTensors, { flag: "--save-tensors", overwrite: o.overwrite === true });
  const lab = await open({ model: o.model, ...parallel });
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  const bar = terminalProgress("fork");
  const tmp = target !== undefined ? tempBeside(target) : undefined;
  try {
    const run = await lab.fork(o.params, o.stopAtStep, {
      signal: controller.signal,
      saveTensors: tmp,
      onProgress: (e) => bar.update(e.stage === "denoise" ? e.step / Math.max(1, o.stopAtStep) : 0, `${e.stage} ${e.step}/${e.total}`),
    });
    if (target === undefined || tmp === undefined) {
      bar.done(`stopped after step ${run.state.fromStep}/${run.state.steps}`);
      console.error(`node ${parallel!.nodeRank} of ${parallel!.nnodes}: done (node 0 writes the fork file)`);
      return 0;
    }
    await commitFile(tmp, target, { flag: "--save-tensors", overwrite: o.overwrite === true });
    bar.done(`stopped after step ${run.state.fromStep}/${run.state.steps}, seed ${run.params.seed}`);
    console.log(resolvePath(target));
    console.error(`wrote ${resolvePath(target)}: continue it with --resume ${o.saveTensors}`);
    return 0;
  } catch (e) {
    if (e instanceof CancelledError) {
      bar.done(e.message);
      return 130;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
    if (tmp !== undefined) await rm(tmp, { force: true });
    await lab.close();
  }
}

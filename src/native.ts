// The native addon (native/binding/addon.cpp), loaded once and typed. Every function returns a
// Promise: the work runs on a worker thread and the event loop stays free.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export interface NativeAddon {
  inspect(dir: string, options: Record<string, unknown>): Promise<string>;
  /** native/src/tools/doctor.h: the JSON of `wanlab-engine doctor`. */
  doctor(): Promise<string>;
  makeModel(out: string, options: Record<string, unknown>, onProgress?: (message: string, fraction: number) => void): Promise<string>;
  benchLoad(dir: string, options: { mmap: boolean; touch: boolean }): Promise<string>;
  /** Synchronous; see registerFatalCleanup below. */
  registerFatalCleanup(paths: string[]): void;
  /** Loads a model into a resident engine (src/engine.ts wraps it). */
  openEngine(dir: string, options?: { devices?: string; ulysses?: number; ring?: number; cfgParallel?: boolean; timeoutS?: number; rendezvous?: string; nnodes?: number; nodeRank?: number; logDir?: string; logLevel?: string;
    dtype?: string; t5Device?: string; t5Offload?: boolean; vaeDevice?: string; persistentParams?: number; shardWeights?: boolean;
    budget?: number | "auto"; budgetVideo?: { height?: number; width?: number; numFrames?: number; tiled?: boolean } }): Promise<unknown>;
}

/** Where the build puts the addon (cmake-js --out native/build). */
export const addonPath = fileURLToPath(new URL("../../native/build/Release/wanlab.node", import.meta.url));

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  if (!existsSync(addonPath)) {
    throw new Error(`wanlab: the native engine is not built (${addonPath} is missing); run \`npm run build\``);
  }
  addon = createRequire(import.meta.url)(addonPath) as NativeAddon;
  return addon;
}

/**
 * The files to remove if the process dies of a fatal SIGBUS: a memory-mapped model file truncated
 * under a running engine (native/src/common/mapped_file.h). The engine then writes one line to
 * stderr naming the file, unlinks these paths and exits with status 135. Each call replaces the
 * earlier list ([] clears it); at most 8 paths; relative ones are resolved against the current
 * working directory at the call. A server registers its server.json.
 */
export function registerFatalCleanup(paths: string[]): void {
  if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string")) {
    throw new TypeError("registerFatalCleanup: paths must be an array of strings");
  }
  native().registerFatalCleanup(paths);
}

// Shared test helpers: run the CLI as a user would, in scratch directories.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "./safetensors.js";
import type { RunningServer } from "./serve.js";

export const root = fileURLToPath(new URL("../../", import.meta.url));
export const cliPath = join(root, "bin", "wanlab.js");

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function wanlab(args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A scratch directory removed when the test file finishes. */
export function scratch(prefix = "wanlab-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A scratch directory with the tiny model in it (`model`), made before the file's tests; then
 * `open(model)` opens what the tests share (a lab), closed after them. `open` typically also
 * stores what it opened in the test file's own variable.
 */
export function tinyModelFixture(prefix: string, open: (model: string) => Promise<{ close(): Promise<void> }>): { dir: string; model: string } {
  const dir = scratch(prefix);
  const model = join(dir, "tiny");
  let opened: { close(): Promise<void> } | undefined;
  before(async () => {
    const r = wanlab(["make-tiny", model]);
    assert.equal(r.status, 0, r.stderr);
    opened = await open(model);
  });
  after(async () => opened?.close());
  return { dir, model };
}

/** Runs `start` before the enclosing describe's tests and stops the server it started (SIGTERM)
 * after them. `start` typically also stores the server in the test file's own variable. */
export function serverFixture(start: () => Promise<RunningServer>): void {
  let s: RunningServer | undefined;
  before(async () => {
    s = await start();
  });
  after(async () => {
    s?.child.kill("SIGTERM");
    await s?.exited;
  });
}

/** The forked-run case (test/fork*.test.ts): 4 steps with CFG on the tiny model, to stop and resume. */
export const forkCase = { prompt: "a red fox in snow", negativePrompt: "blurry", seed: 7, height: 32, width: 32, numFrames: 5, numInferenceSteps: 4, cfgScale: 4 };

/** The same float32 values bit for bit (their bytes: NaN payloads and signed zeros count). */
export function sameFloats(a: Float32Array, b: Float32Array): boolean {
  const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return bytes(a).equals(bytes(b));
}

/** The latents a run saved in a tensors file (saveTensors, --save-tensors). */
export function latentsOf(file: string): Float32Array {
  return readSafetensors(file).tensors.latents!.f32!;
}

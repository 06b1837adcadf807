// The CLI as a new user meets it: generate without --model (the embedded model, said so on
// stderr), a progress bar under a pseudo-terminal cleared before an error, and `inspect --budget`
// (100 columns, advice that leaves out what the flags given already do, exit 1 when nothing fits).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { cliPath, scratch, wanlab } from "./helpers.js";

const dir = scratch();
const model = join(dir, "tiny");

before(() => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
});

/** Runs the CLI under a pseudo-terminal (util-linux `script`): what the terminal received. */
function inTerminal(args: string[], env: Record<string, string> = {}): { status: number; output: string } {
  const command = [process.execPath, cliPath, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const r = spawnSync("script", ["-qec", command, "/dev/null"], { encoding: "utf8", env: { ...process.env, COLUMNS: "120", ...env } });
  assert.equal(r.error, undefined, "util-linux `script` runs the CLI under a pseudo-terminal");
  return { status: r.status ?? -1, output: r.stdout };
}

/** The lines a terminal shows: each line's text after its last carriage return, escapes removed. */
function shown(output: string): string[] {
  return output.split("\n").map((l) => l.replace(/\r$/, "").split("\r").pop()!.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ""));
}

describe("generate without --model", () => {
  test("uses the embedded tiny model and says so in one stderr line, with its random weights", () => {
    const out = join(dir, "embedded.mp4");
    const r = wanlab(["generate", "--prompt", "x", "--seed", "1", "--steps", "1", "--height", "16", "--width", "16", "--num-frames", "1", "--output", out],
      { WANLAB_HOME: join(dir, "home") });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), out);
    const notes = r.stderr.split("\n").filter((l) => l.includes("embedded tiny model"));
    assert.deepEqual(notes, ["wanlab generate: no --model: using the embedded tiny model; its weights are random, so the video is noise-like"]);
    const meta = JSON.parse(readFileSync(`${out}.json`, "utf8")) as { model: string; params: { numInferenceSteps: number } };
    assert.equal(meta.model, join(dir, "home", "models", "wan2.1-t2v-tiny"));
    assert.equal(meta.params.numInferenceSteps, 1);
  });

  test("a bad value is refused before the embedded model is made or loaded", () => {
    const r = wanlab(["generate", "--prompt", "x", "--height", "17"], { WANLAB_HOME: join(dir, "home-refused") });
    assert.equal(r.status, 2);
    assert.doesNotMatch(r.stderr, /embedded|loading/);
  });
});

describe("progress bars under a terminal", () => {
  test("the load bar is cleared before the error, which stands on its own line", () => {
    const missing = join(dir, "no-such-model");
    const r = inTerminal(["generate", "--model", missing, "--prompt", "x"]);
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /loading \[/, "a bar was drawn");
    const lines = shown(r.output).filter((l) => l.includes("wanlab generate:"));
    assert.deepEqual(lines, [`wanlab generate: model directory ${missing} does not exist`], JSON.stringify(r.output));
  });
});

describe("inspect --budget", () => {
  const args = ["inspect", model, "--devices", "cuda:0", "--height", "64", "--width", "64", "--num-frames", "5"];

  test("a budget that fits exits 0; the report fits 100 columns and labels the frame search's cap", () => {
    const r = wanlab([...args, "--budget", "1G"]);
    assert.equal(r.status, 0, r.stderr);
    for (const line of r.stdout.split("\n")) assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
    assert.match(r.stdout, /^ {2}budget 1\.00 GB +fits$/m);
    assert.match(r.stdout, /^ {2}longest video within the budget \(searched up to 1001 frames\)$/m);
  });

  test("nothing fits: exit 1, the reason on stderr, advice in 100 columns", () => {
    const r = wanlab([...args, "--budget", "1K"]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, "wanlab inspect: the budget 1.00 kB does not fit this video, not even with every DiT block streamed\n");
    assert.match(r.stdout, /^ {2}budget 1\.00 kB +does not fit$/m);
    const advice = r.stdout.slice(r.stdout.indexOf("does not fit even")).replace(/\s+/g, " ");
    assert.match(advice, /try --t5-device cpu or --t5-offload, --tiled, more devices/);
    for (const line of r.stdout.split("\n")) assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
    assert.equal(wanlab([...args, "--budget", "1K", "--json"]).status, 1);
  });

  test("the advice leaves out what the flags given already do", () => {
    const r = wanlab([...args, "--budget", "1K", "--t5-device", "cpu", "--tiled"]);
    assert.equal(r.status, 1);
    const advice = r.stdout.slice(r.stdout.indexOf("does not fit even")).replace(/\s+/g, " ");
    assert.match(advice, /try more devices \(--devices cuda:0,1\), a smaller video/);
    assert.doesNotMatch(advice, /--t5-device|--t5-offload|--tiled/);
    const offload = wanlab([...args.map((a) => (a === "cuda:0" ? "cuda:0,1" : a)), "--budget", "1K", "--t5-offload"]);
    assert.equal(offload.status, 1, offload.stderr);
    const offloadAdvice = offload.stdout.slice(offload.stdout.indexOf("does not fit even")).replace(/\s+/g, " ");
    assert.match(offloadAdvice, /try --tiled, --shard-weights, more ranks, a smaller video/);
  });
});

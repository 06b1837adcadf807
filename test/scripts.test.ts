// The zx scripts (scripts/batch.mjs, sweep.mjs, bench.mjs) against the tiny model, as CI runs
// them: one against a running server found through server.json, the others starting their own.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { root, scratch, wanlab } from "./helpers.js";
import { startServer, type RunningServer } from "./serve.js";

const dir = scratch("wanlab-scripts-");
const model = join(dir, "tiny");
const size = ["--height", "16", "--width", "16", "--num-frames", "1"];
let s: RunningServer;

before(async () => {
  assert.equal(wanlab(["make-tiny", model]).status, 0);
  s = await startServer(["--model", model, "--outputs", join(dir, "served")], join(dir, "run"));
});
after(async () => {
  s.child.kill("SIGTERM");
  await s.exited;
});

function script(name: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [join(root, "scripts", name), ...args], { encoding: "utf8", cwd: dir, env: { ...process.env, CI: "1", ...env } });
}

test("batch.mjs: a prompts file and a JSONL file against the running server, with an index", () => {
  writeFileSync(join(dir, "prompts.txt"), "a cat\n# skipped\n\nA dog on a beach\n");
  let r = script("batch.mjs", ["--prompts", "prompts.txt", "--out", "b1", "--steps", "1", ...size], { WANLAB_RUNTIME_DIR: join(dir, "run") });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /using the server at/);
  const index = JSON.parse(readFileSync(join(dir, "b1", "index.json"), "utf8"));
  assert.deepEqual(index.jobs.map((j: { line: number; state: string }) => [j.line, j.state]), [[1, "done"], [4, "done"]]);
  assert.ok(index.jobs.every((j: { outputs: string[] }) => existsSync(j.outputs[0]!)));
  writeFileSync(join(dir, "p.jsonl"), '{"prompt": "x", "seed": 5}\n{"prompt": "y", "height": 100}\n');
  r = script("batch.mjs", ["--prompts", "p.jsonl", "--out", "b2", "--steps", "1", ...size], { WANLAB_RUNTIME_DIR: join(dir, "run") });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /p\.jsonl:2: height must be a multiple of 16, got 100/);
  r = script("batch.mjs", []);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--prompts FILE is required/);
});

test("sweep.mjs: a 2×2 grid on a server it starts; contact sheet and plotly report", () => {
  const r = script("sweep.mjs", ["--prompt", "a cat", "--cfg", "3,5", "--steps", "1,2", "--model", model, "--outputs", join(dir, "sweep-out"), "--out", "sw", ...size], { WANLAB_RUNTIME_DIR: join(dir, "none") });
  assert.equal(r.status, 0, r.stderr);
  const sweep = JSON.parse(readFileSync(join(dir, "sw", "sweep.json"), "utf8"));
  assert.equal(sweep.runs.length, 4);
  assert.ok(sweep.runs.every((x: { state: string }) => x.state === "done"));
  const probe = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", join(dir, "sw", "contact-sheet.png")], { encoding: "utf8" });
  assert.equal(probe.stdout.trim(), "34,34"); // 2×2 tiles of 16 px, 2 px padding
  assert.match(readFileSync(join(dir, "sw", "sweep.html"), "utf8"), /Plotly\.newPlot/);
  assert.ok(!existsSync(join(dir, "none", "server.json")), "the server it started is gone");
});

test("bench.mjs: sizes × layouts, a refused layout recorded as skipped", () => {
  const r = script("bench.mjs", ["--model", model, "--sizes", "16x16x1", "--layouts", "1x1,2x1", "--steps", "1", "--repeat", "1", "--out", "bench"], { WANLAB_RUNTIME_DIR: join(dir, "none") });
  assert.equal(r.status, 0, r.stderr);
  const b = JSON.parse(readFileSync(join(dir, "bench", "bench.json"), "utf8"));
  assert.equal(b.results[0].layout, "1x1");
  assert.ok(b.results[0].mean.step_s > 0);
  assert.match(b.results[1].skipped, /ulysses/);
  assert.ok(existsSync(join(dir, "bench", "bench.html")));
});

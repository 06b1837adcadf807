// The zx scripts (scripts/batch.mjs, sweep.mjs, bench.mjs) against the tiny model, as CI runs
// them: one against a running server found through server.json, the others starting their own.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
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

/** A w×h crop of a PNG at (x, y) as 8-bit gray pixels. */
function gray(png: string, x: number, y: number, w: number, h: number): Buffer {
  const r = spawnSync("ffmpeg", ["-v", "error", "-i", png, "-vf", `crop=${w}:${h}:${x}:${y}`, "-f", "rawvideo", "-pix_fmt", "gray", "-"]);
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout;
}

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
  for (const [text, message] of [['{"prompt": "x"}\n\n{"prompt": "y",}\n', /^batch\.mjs: bad\.jsonl:3: not JSON: /], ['{"prompt": "x"}\n["y"]\n', /^batch\.mjs: bad\.jsonl:2: not a JSON object of parameters\n$/]] as const) {
    writeFileSync(join(dir, "bad.jsonl"), text);
    r = script("batch.mjs", ["--prompts", "bad.jsonl", "--out", "b2", "--steps", "1", ...size], { WANLAB_RUNTIME_DIR: join(dir, "run") });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
  }
  r = script("batch.mjs", []);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--prompts FILE is required/);
  // flags that would only shape a server started here are refused when one is running already
  r = script("batch.mjs", ["--prompts", "prompts.txt", "--out", "b2", "--budget", "1G", ...size], { WANLAB_RUNTIME_DIR: join(dir, "run") });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^batch\.mjs: --budget: for a server started here \(with --model or --fresh\); the one at http:\S+ is running already\n$/);
  r = script("sweep.mjs", ["--prompt", "a cat", "--url", "http://127.0.0.1:9", "--model", model, "--outputs", "o"]);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr, "sweep.mjs: --model, --outputs: for a server started here, not with --url\n");
});

test("batch.mjs --budget: a line the server predicts over its budget stops the batch before any job is submitted", () => {
  writeFileSync(join(dir, "big.jsonl"), '{"prompt": "fits"}\n{"prompt": "too big", "height": 64, "width": 64, "numFrames": 9}\n');
  const outputs = join(dir, "budget-out");
  const r = script("batch.mjs", ["--prompts", "big.jsonl", "--out", "b3", "--steps", "1", "--model", model, "--outputs", outputs, "--budget", "40M", ...size],
    { WANLAB_RUNTIME_DIR: join(dir, "none") });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /big\.jsonl:2: a 64x64x9 generation is predicted to need 99\.8 MB on cpu .*over the budget of 40\.0 MB/);
  assert.ok(!existsSync(join(dir, "b3", "index.json")));
  const journal = join(outputs, "journal.jsonl");
  assert.ok(!existsSync(journal) || !readFileSync(journal, "utf8").includes('"t":"submit"'), "nothing was submitted");
});

test("batch.mjs: progress lines as jobs finish, each done job's video and manifest gathered under --out", () => {
  writeFileSync(join(dir, "three.txt"), "a cat\n\na dog\na fox\n");
  const r = script("batch.mjs", ["--prompts", "three.txt", "--out", "gathered", "--steps", "2", "--seed", "7", "--height", "32", "--width", "32", "--num-frames", "1"], { WANLAB_RUNTIME_DIR: join(dir, "run") });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("["));
  assert.equal(lines.length, 3, r.stderr);
  lines.forEach((l, i) => assert.match(l, new RegExp(`^\\[${i + 1}/3\\] \\d+\\.\\d+s elapsed${i < 2 ? ", ETA \\d+\\.\\d+s" : ""}, 0 failed: three\\.txt:\\d: done ${join(dir, "gathered", "line-00")}\\d/video\\.mp4$`)));
  const index = JSON.parse(readFileSync(join(dir, "gathered", "index.json"), "utf8"));
  assert.deepEqual(index.jobs.map((j: { line: number; video: string; manifest: string }) => [j.line, j.video, j.manifest]),
    [[1, "line-001/video.mp4", "line-001/manifest.json"], [3, "line-003/video.mp4", "line-003/manifest.json"], [4, "line-004/video.mp4", "line-004/manifest.json"]]);
  for (const j of index.jobs as { id: string; prompt: string; outputs: string[]; video: string; manifest: string }[]) {
    assert.deepEqual(readFileSync(join(dir, "gathered", j.video)), readFileSync(j.outputs[0]!), "the server's video, copied");
    const m = JSON.parse(readFileSync(join(dir, "gathered", j.manifest), "utf8"));
    assert.deepEqual([m.params.prompt, m.params.height, m.params.numInferenceSteps], [j.prompt, 32, 2]);
  }
  let probe = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", join(dir, "gathered", "line-003", "video.mp4")], { encoding: "utf8" });
  assert.equal(probe.stdout.trim(), "32,32");
  // the contact sheet: 2×2 tiles (three used), each labelled "line N, seed 7, prompt" on one line
  assert.equal(index.contactSheet, join(dir, "gathered", "contact-sheet.png"));
  probe = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", index.contactSheet], { encoding: "utf8" });
  assert.equal(probe.stdout.trim(), "514,562");
  const bands = [[0, 256], [258, 256], [0, 538], [258, 538]].map(([x, y]) => gray(index.contactSheet, x!, y!, 256, 24));
  assert.ok(bands.slice(0, 3).every((b) => b.some((v) => v < 100)), "three labelled tiles");
  assert.ok(bands[3]!.every((v) => v > 200), "the unused fourth tile is blank");
});

test("batch.mjs on a terminal: the progress line is redrawn in place, not one line per job", () => {
  writeFileSync(join(dir, "tty.txt"), "a cat\na dog\n");
  const command = [process.execPath, join(root, "scripts", "batch.mjs"), "--prompts", "tty.txt", "--out", "tty", "--steps", "1", ...size].map((a) => `'${a}'`).join(" ");
  // util-linux `script` runs it under a pseudo-terminal (80 columns)
  const r = spawnSync("script", ["-qefc", command, "/dev/null"], { encoding: "utf8", cwd: dir, env: { ...process.env, WANLAB_RUNTIME_DIR: join(dir, "run"), COLUMNS: "80" } });
  assert.equal(r.status, 0, r.stdout);
  assert.match(r.stdout, /\r\x1b\[K\[1\/2\] \d+\.\d+s elapsed, ETA \d+\.\d+s, 0 failed: tty\.txt:1: /);
  assert.match(r.stdout, /\r\x1b\[K\[2\/2\] \d+\.\d+s elapsed, 0 failed: tty\.txt:2: .*\r?\n/);
  assert.doesNotMatch(r.stdout, /\n\[1\/2\]/, "no line of its own for the first job");
});

test("sweep.mjs: a 2×2 grid on a server it starts; contact sheet and plotly report", () => {
  const r = script("sweep.mjs", ["--prompt", "a cat", "--cfg", "3,5", "--steps", "1,2", "--model", model, "--outputs", join(dir, "sweep-out"), "--out", "sw", ...size], { WANLAB_RUNTIME_DIR: join(dir, "none") });
  assert.equal(r.status, 0, r.stderr);
  const sweep = JSON.parse(readFileSync(join(dir, "sw", "sweep.json"), "utf8"));
  assert.equal(sweep.runs.length, 4);
  assert.ok(sweep.runs.every((x: { state: string }) => x.state === "done"));
  // progress as the jobs finish, and each run's video and manifest under --out
  const progress = r.stderr.split("\n").filter((l) => l.startsWith("["));
  assert.deepEqual(progress.map((l) => /^\[(\d)\/4\] \d+\.\d+s elapsed(, ETA \d+\.\d+s)?, 0 failed: cfg \d, shift 5, \d steps, seed 0: done$/.exec(l)?.[1]), ["1", "2", "3", "4"], r.stderr);
  assert.deepEqual(sweep.runs.map((x: { video: string; manifest: string }) => [x.video, x.manifest]), [
    ["runs/00-cfg3-shift5-1steps-seed0/video.mp4", "runs/00-cfg3-shift5-1steps-seed0/manifest.json"],
    ["runs/01-cfg3-shift5-2steps-seed0/video.mp4", "runs/01-cfg3-shift5-2steps-seed0/manifest.json"],
    ["runs/02-cfg5-shift5-1steps-seed0/video.mp4", "runs/02-cfg5-shift5-1steps-seed0/manifest.json"],
    ["runs/03-cfg5-shift5-2steps-seed0/video.mp4", "runs/03-cfg5-shift5-2steps-seed0/manifest.json"],
  ]);
  for (const x of sweep.runs as { cfgScale: number; numInferenceSteps: number; outputs: string[]; video: string; manifest: string }[]) {
    assert.deepEqual(readFileSync(join(dir, "sw", x.video)), readFileSync(x.outputs[0]!), "the server's video, copied");
    const m = JSON.parse(readFileSync(join(dir, "sw", x.manifest), "utf8"));
    assert.deepEqual([m.params.cfgScale, m.params.numInferenceSteps], [x.cfgScale, x.numInferenceSteps]);
  }
  const probe = spawnSync("ffprobe", ["-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", join(dir, "sw", "contact-sheet.png")], { encoding: "utf8" });
  assert.equal(probe.stdout.trim(), "514,562"); // 2×2 tiles: 16 px frames scaled to 256, a 24 px label band under each, 2 px padding
  assert.deepEqual(sweep.runs.map((x: { label: string }) => x.label), ["cfg 3, 1 steps", "cfg 3, 2 steps", "cfg 5, 1 steps", "cfg 5, 2 steps"]);
  const bands = [[0, 256], [258, 256], [0, 538], [258, 538]].map(([x, y]) => gray(join(dir, "sw", "contact-sheet.png"), x!, y!, 256, 24));
  assert.ok(bands.every((b) => b.some((v) => v < 100) && b.some((v) => v > 200)), "each tile has dark text on its white label band");
  assert.notDeepEqual(bands[0], bands[1], "the labels differ");
  assert.match(readFileSync(join(dir, "sw", "sweep.html"), "utf8"), /Plotly\.newPlot/);
  assert.ok(!existsSync(join(dir, "none", "server.json")), "the server it started is gone");
});

test("sweep.mjs: TeaCache thresholds and video-to-video strengths as axes", () => {
  const input = join(dir, "in.mp4");
  const made = spawnSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=15", "-frames:v", "5", "-pix_fmt", "yuv420p", input]);
  assert.equal(made.status, 0, String(made.stderr));
  const r = script("sweep.mjs", ["--prompt", "a cat", "--steps", "4", "--tea-cache", "0,0.1", "--tea-cache-model-id", "Wan2.1-T2V-1.3B",
    "--input-video", input, "--strength", "0.5,1", "--model", model, "--outputs", join(dir, "sweep-tea-out"), "--out", "sw-tea",
    "--height", "16", "--width", "16", "--num-frames", "5"], { WANLAB_RUNTIME_DIR: join(dir, "none") });
  assert.equal(r.status, 0, r.stderr);
  const runs = JSON.parse(readFileSync(join(dir, "sw-tea", "sweep.json"), "utf8")).runs as
    { state: string; teaCacheL1Thresh: number; denoisingStrength: number; inputVideo: string; timings: { engine: { tea_cache_skipped_steps?: number[]; video_encode_s?: number } } }[];
  assert.deepEqual(runs.map((x) => [x.teaCacheL1Thresh, x.denoisingStrength, x.state]), [[0, 0.5, "done"], [0, 1, "done"], [0.1, 0.5, "done"], [0.1, 1, "done"]]);
  assert.ok(runs.every((x) => x.inputVideo === input && x.timings.engine.video_encode_s! > 0));
  // TeaCache on: the tiny model's middle steps reuse the residual (tea_cache_test.cpp checks the decisions)
  assert.deepEqual(runs.map((x) => x.timings.engine.tea_cache_skipped_steps ?? null), [null, null, [1, 2], [1, 2]]);
  const bad = script("sweep.mjs", ["--prompt", "a cat", "--strength", "0.5", "--model", model], { WANLAB_RUNTIME_DIR: join(dir, "none") });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--strength needs --input-video FILE/);
});

test("bench.mjs: sizes × layouts, a refused layout recorded as skipped", () => {
  const r = script("bench.mjs", ["--model", model, "--sizes", "16x16x1", "--layouts", "1x1,2x1", "--steps", "1", "--repeat", "1", "--out", "bench"], { WANLAB_RUNTIME_DIR: join(dir, "none") });
  assert.equal(r.status, 0, r.stderr);
  const b = JSON.parse(readFileSync(join(dir, "bench", "bench.json"), "utf8"));
  assert.equal(b.results[0].layout, "1x1");
  assert.equal(b.results[0].devices, "auto");  // the default: cuda:0 with a GPU, here the CPU
  assert.ok(b.results[0].mean.step_s > 0);
  assert.match(b.results[1].skipped, /ulysses/);
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("["));
  assert.match(lines[0]!, /^\[1\/2\] \d+\.\d+s elapsed, ETA \d+\.\d+s, 0 failed: auto 1x1 16x16x1: \d+\.\d+ s\/step, \d+\.\d+ s\/job$/);
  assert.match(lines[1]!, /^\[2\/2\] \d+\.\d+s elapsed, 0 failed: auto 2x1: skipped \(1 size\): .*ulysses/);
  assert.equal(lines.length, 2);
  assert.ok(existsSync(join(dir, "bench", "bench.html")));
});

test("bench-report.mjs: the committed GPU results as a plotly report, before/after; the committed report is current", () => {
  const results = join(root, "bench", "results", "2026-11-26-h200");
  const baseline = join(root, "bench", "results", "2026-11-26-h200-baseline");
  const r = script("bench-report.mjs", [results, "--baseline", baseline, "--out", "report"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), join(dir, "report", "report.html"));
  const html = readFileSync(join(dir, "report", "report.html"), "utf8");
  const spec = JSON.parse(/const figs = (\[.*?\]);/s.exec(html)![1]!) as { data: { name: string; x: unknown[]; y: (number | null)[] }[] }[];
  assert.equal(spec.length, 5);
  const names = spec.flatMap((f) => f.data.map((t) => t.name));
  for (const n of ["wanlab (baseline)", "wanlab (optimised)", "DiffSynth-Studio peer, PyTorch eager (baseline)", "DiffSynth-Studio peer, PyTorch eager (optimised)",
    "wanlab DiT forward (optimised)", "predicted (memory model)", "measured (CUDA allocator peak)", "wanlab full-run estimate (baseline)",
    "wanlab full-run estimate (optimised)", "FLOP bound at the matmul peak (optimised)"])
    assert.ok(names.includes(n), `trace '${n}' in ${names.join(" | ")}`);
  const ys = (fig: number, name: string) => spec[fig]!.data.find((t) => t.name === name)!.y;
  const json = (d: string, f: string) => JSON.parse(readFileSync(join(d, f), "utf8"));
  // (a) seconds per forward, per config in order 1.3B 480p, 14B 480p, 14B 720p
  for (const [d, label] of [[baseline, "baseline"], [results, "optimised"]] as const) {
    const dits = ["dit_1.3B_480p.json", "dit_14B_480p.json", "dit_14B_720p.json"].map((f) => json(d, f));
    assert.deepEqual(ys(0, `wanlab (${label})`), dits.map((j) => j.ours.median_s));
    assert.deepEqual(ys(0, `DiffSynth-Studio peer, PyTorch eager (${label})`), dits.map((j) => j.peer.median_s));
    assert.deepEqual(ys(1, `wanlab DiT forward (${label})`), dits.map((j) => j.flops / j.ours.median_s / 1e12));
    for (const j of dits) assert.ok(html.includes(`<td class="n">${j.ours.median_s.toPrecision(4)}</td>`), "the table has the numbers");
  }
  // (b) the matmul peak line: the median of the optimised run's three measurements
  const peaks = ["t2v_1.3B_480p.json", "t2v_14B_480p.json", "t2v_14B_480p_budget4G.json"].map((f) => json(results, f).matmul.tflops_per_s).sort((a: number, b: number) => a - b);
  const line = spec[1]!.data.find((t) => t.name.startsWith("8192³ bf16 matmul peak, median of 3 (optimised)"))!;
  assert.ok(line.y.every((y) => y === peaks[1]));
  // (c) predicted vs measured per stage for each t2v run, resident and with the persistent budget
  const t2v = ["t2v_1.3B_480p.json", "t2v_14B_480p.json", "t2v_14B_480p_budget4G.json"].map((f) => json(results, f));
  const stages = ["encode", "denoise", "decode"];
  assert.deepEqual(ys(2, "predicted (memory model)"), t2v.flatMap((j) => stages.map((s) => j.predicted[`${s}_peak_bytes`])));
  assert.deepEqual(ys(2, "measured (CUDA allocator peak)"), t2v.flatMap((j) => stages.map((s) => j.device_peak_bytes[s]["cuda:0"])));
  assert.deepEqual((spec[2]!.data[0]!.x as string[][])[0]!.filter((_, i) => i % 3 === 0),
    ["1.3B 480p<br>all resident", "14B 480p<br>all resident", "14B 480p<br>3.75G params resident (rest streamed)"]);
  // (d) full-run estimates and the FLOP bound
  const est = ys(3, "wanlab full-run estimate (optimised)");
  for (const j of t2v) assert.ok(est.includes(j.full_estimate_s) && ys(3, "FLOP bound at the matmul peak (optimised)").includes(j.full_flop_bound_s));
  assert.ok(ys(3, "wanlab full-run estimate (baseline)").includes(json(baseline, "t2v_1.3B_480p.json").full_estimate_s));
  // the committed report is this one (but for where plotly.js is loaded from)
  const body = (s: string) => s.split("\n").filter((l) => !/^<script( src=|>if \(!window\.Plotly\))/.test(l)).join("\n");
  assert.equal(body(readFileSync(join(results, "report.html"), "utf8")), body(html), "regenerate: node scripts/bench-report.mjs --baseline bench/results/2026-11-26-h200-baseline");
  // gpu-check's results.tgz: a run under a budget with float8 linears, the T5 on the CPU and a
  // tiled decode is named so, and its reserved peaks are drawn; the report goes beside the archive
  const run = json(results, "t2v_1.3B_480p.json");
  run.placement = { ...run.placement, memory_budget_bytes: 3e9, dit_f8_params: 1, t5: "cpu f32", dit_offloaded_params: 5, dit_resident_params: 7e8 };
  run.video.tiled = true;
  run.device_peak_reserved_bytes = { encode: { "cuda:0": 2e9 }, denoise: { "cuda:0": 3.2e9 }, decode: { "cuda:0": 2.9e9 } };
  mkdirSync(join(dir, "gpu-check", "r"), { recursive: true });
  writeFileSync(join(dir, "gpu-check", "r", "t2v_1.3B_480p_budget3G.json"), JSON.stringify(run));
  assert.equal(spawnSync("tar", ["czf", join(dir, "gpu-check", "results.tgz"), "-C", join(dir, "gpu-check", "r"), "."]).status, 0);
  const packed = script("bench-report.mjs", [join(dir, "gpu-check", "results.tgz")]);
  assert.equal(packed.status, 0, packed.stderr);
  assert.equal(packed.stdout.trim(), join(dir, "gpu-check", "report.html"));
  const page = readFileSync(join(dir, "gpu-check", "report.html"), "utf8");
  const figs = JSON.parse(/const figs = (\[.*?\]);/s.exec(page)![1]!) as { data: { name: string; x: unknown[]; y: (number | null)[] }[] }[];
  assert.equal((figs[2]!.data[0]!.x as string[][])[0]![0], "1.3B 480p<br>700.0M params resident (rest streamed) · budget 3.0 GB · float8 linears · T5 on CPU · tiled");
  assert.deepEqual(figs[2]!.data.find((t) => t.name === "reserved (CUDA allocator cache)")!.y, [2e9, 3.2e9, 2.9e9]);
  // usage
  const bad = script("bench-report.mjs", [join(dir, "nope")]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /results directory .*nope does not exist/);
  assert.equal(script("bench-report.mjs", ["--bogus"]).status, 2);
});

test("bench-report.mjs: the own-kernel H200 run against the ATen one; each t2v run its own bar; the committed report is current", () => {
  const results = join(root, "bench", "results", "2026-11-26-h200-kernels");
  const labels = ["--baseline-label", "fused ATen elementwise", "--label", "own RoPE and LayerNorm kernels"];
  const r = script("bench-report.mjs", ["--baseline", join(root, "bench", "results", "2026-11-26-h200"), ...labels, "--out", "report-kernels"]);
  assert.equal(r.status, 0, r.stderr);
  const html = readFileSync(join(dir, "report-kernels", "report.html"), "utf8");
  const spec = JSON.parse(/const figs = (\[.*?\]);/s.exec(html)![1]!) as { data: { name: string; x: string[]; y: (number | null)[] }[] }[];
  // (b): the two resident 1.3B runs (bf16; float8 + T5 offloaded + video-to-video) are two bars
  const steps = spec[1]!.data.find((t) => t.name === "wanlab t2v step, cond + uncond (own RoPE and LayerNorm kernels)")!;
  assert.equal(new Set(steps.x).size, steps.x.length, steps.x.join(" | "));
  const f8 = JSON.parse(readFileSync(join(results, "t2v_1.3B_480p_f8_t5_offload_v2v.json"), "utf8"));
  assert.equal(steps.y[steps.x.indexOf("1.3B 480p<br>all resident · float8 linears · T5 offloaded · video-to-video 0.7: t2v step")], f8.step_tflops_per_s);
  // (e): ATen, the own kernel and one pass at copy bandwidth per elementwise pass, in milliseconds
  const ew = JSON.parse(readFileSync(join(results, "elementwise_1.3B.json"), "utf8")) as
    { ops: { op: string; median_s: number; fused_at_copy_bandwidth_s?: number }[]; own_kernels: { replaces: string; median_s: number }[] };
  const trace = (name: string) => spec[4]!.data.find((t) => t.name === `${name} (1.3B, 32760 tokens, own RoPE and LayerNorm kernels)`)!;
  const rope = "rope complex64 (bf16 in/out)";
  const at = trace("ATen").x.indexOf(rope);
  assert.equal(trace("ATen").y[at], ew.ops.find((o) => o.op === rope)!.median_s * 1e3);
  assert.equal(trace("own kernel").y[at], ew.own_kernels.find((k) => k.replaces === rope)!.median_s * 1e3);
  assert.equal(trace("one pass at copy bandwidth").y[at], ew.ops.find((o) => o.op === rope)!.fused_at_copy_bandwidth_s! * 1e3);
  assert.equal(trace("own kernel").y[trace("ATen").x.indexOf("rms_norm (bf16)")], null);
  const body = (s: string) => s.split("\n").filter((l) => !/^<script( src=|>if \(!window\.Plotly\))/.test(l)).join("\n");
  assert.equal(body(readFileSync(join(results, "report.html"), "utf8")), body(html),
    `regenerate: node scripts/bench-report.mjs --baseline bench/results/2026-11-26-h200 ${labels.map((l) => (l.includes(" ") ? `"${l}"` : l)).join(" ")}`);
});

// `wanlab-engine bench projection` on the CPU at the tiny model's dims (8 heads, so every
// Ulysses degree up to 8 divides them) and a small video: every layout of 1, 2, 4, 8 and 16 GPUs
// in the JSON with its measured and modelled parts, the engine's bytes per step equal to
// src/parallel-model.ts's formula, the anchors and the goals; then the chart
// (scripts/projection.mjs) with plotly inlined and one trace per layout family and anchor; and
// `wanlab bench projection`, which runs it with its flags checked first and writes the chart.
// The CPU's seconds are no GPU figures: the test checks the mechanics, not the speed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";
import { defaultEnginePath } from "../src/bench.js";
import type { ProjectionReport, ProjectionRow } from "../src/bench-projection.js";
import { dimsOf, stepComm } from "../src/parallel-model.js";
import { launchBrowser } from "./browser.js";
import { root, scratch, wanlab } from "./helpers.js";

// The engine's report as src/bench-projection.ts types it, with the modelled part this test reads.
type Row = ProjectionRow & {
  modelled: { step_s: number; bytes_per_step: number; collectives_per_step: number; tokens_per_rank: number; block: Record<string, number> };
};
type Report = Pick<ProjectionReport, "bench" | "device" | "video" | "steps" | "method" | "skipped" | "anchors" | "goals"> & { layouts: Row[] };

const dir = scratch();
const video = ["--dims", "tiny", "--heads", "8", "--height", "128", "--width", "128", "--frames", "9"];
const quick = ["--blocks", "1", "--warmup", "1", "--iters", "1", "--threads", "1"];

function bench(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(defaultEnginePath, ["bench", "projection", ...args], { encoding: "utf8" });
}
function report(args: string[]): Report {
  const r = bench(args);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Report;
}
// The tiny model with 8 heads of 32, as the bench ran it.
const tiny8 = () => ({ ...dimsOf.tiny, numHeads: 8 });
const size = { height: 128, width: 128, numFrames: 9, cfgScale: 5 };

test("bench projection: every layout of 1-16 GPUs, measured and modelled parts, the engine's bytes, anchors and goals", () => {
  const p = report([...video, ...quick, "--steps", "50"]);
  writeFileSync(join(dir, "projection.json"), JSON.stringify(p));
  assert.equal(p.bench, "projection");
  assert.equal(p.device, "cpu");
  assert.equal(p.video.tokens, 3 * 8 * 8);
  assert.match(p.method.measured, /rank 0 of the layout/);
  assert.match(p.method.modelled, /layer count x the passes per step/);
  const names = ["1", "u2", "r2", "cfg", "u4", "r4", "u2r2", "cfg-u2", "cfg-r2", "u8", "r8", "u4r2", "u2r4", "cfg-u4", "cfg-u2r2", "cfg-r4",
    "u8r2", "r16", "u4r4", "cfg-u8", "cfg-u4r2"];
  assert.deepEqual(p.layouts.map((r) => r.layout), names);
  assert.deepEqual(p.skipped, []);
  const base = p.layouts[0]!;
  assert.equal(base.speedup, 1);
  assert.equal(base.efficiency, 1);
  for (const r of p.layouts) {
    const what = `${r.layout}: ${JSON.stringify(r)}`;
    assert.equal(r.gpus, r.ulysses * r.ring * (r.cfg_parallel ? 2 : 1), what);
    assert.ok(r.step_s > 0 && Number.isFinite(r.step_s), what);
    assert.ok(Math.abs(r.total_s - 50 * r.step_s) < 1e-9 * r.total_s, what);
    assert.ok(Math.abs(r.speedup - base.step_s / r.step_s) < 1e-9 * r.speedup, what);
    assert.ok(Math.abs(r.efficiency - r.speedup / r.gpus) < 1e-12, what);
    for (const k of ["block_other_s", "block_attention_s", "block_compute_s", "per_step_s"]) assert.ok(Number(r.measured[k]) > 0, `${what}: measured ${k}`);
    assert.ok(r.exposed_comm_per_step_s >= 0, what);
    assert.ok(Math.abs(r.modelled.step_s - r.step_s) < 1e-12, what);
    // Modelled: the measured part plus what the links leave exposed.
    assert.ok(Math.abs(r.step_s - Number(r.measured.per_step_s) - r.exposed_comm_per_step_s) < 1e-9, what);
    if (r.ring > 1) assert.ok(Number(r.measured.block_ring_merge_s) > 0, `${what}: the ring's merges are timed`);
    // The engine's own count (float32 on the CPU: 4 bytes per element).
    const c = stepComm(tiny8(), { ulysses: r.ulysses, ring: r.ring, cfgParallel: r.cfg_parallel }, size, 4);
    assert.equal(r.modelled.bytes_per_step, c.bytesSent, what);
    assert.equal(r.modelled.collectives_per_step, c.collectives, what);
    assert.equal(r.modelled.tokens_per_rank, c.tokensPerRank, what);
  }
  // CFG-parallel runs the 1-GPU rank's work once per step instead of twice, plus one velocity
  // gather: below 2x, whatever the CPU's timings.
  const cfg = p.layouts.find((r) => r.layout === "cfg")!;
  assert.ok(cfg.efficiency <= 1 && cfg.efficiency > 0.5, JSON.stringify(cfg));
  assert.deepEqual(p.anchors.map((a) => a.gpus), [[1, 2, 4, 8], [1, 8]]);
  assert.deepEqual(p.anchors[0]!.total_s, [1837.9, 945.1, 497.0, 287.9]);
  assert.deepEqual(p.anchors[1]!.speedup, [1, 6.9]);
  assert.equal(p.goals.length, 3);
  for (const g of p.goals) assert.equal(g.label, "projection");
  assert.equal(p.goals[0]!.applies, false);
  assert.match(p.goals[0]!.reason!, /tiny 128x128x9, 50 steps, measured on cpu/);
  assert.equal(typeof p.goals[2]!.pass, "boolean");
});

test("bench projection: sharded layouts add the weights' all-gathers as the engine counts them", () => {
  const p = report([...video, ...quick, "--layouts", "u2-shard,u2r2-shard,cfg-r2-shard"]);
  assert.deepEqual(p.layouts.map((r) => r.layout), ["1", "u2-shard", "u2r2-shard", "cfg-r2-shard"]);
  for (const r of p.layouts.slice(1)) {
    assert.equal(r.shard_weights, true);
    assert.ok(r.modelled.block.shard_comm_s > 0, r.layout);
    const c = stepComm(tiny8(), { ulysses: r.ulysses, ring: r.ring, cfgParallel: r.cfg_parallel, shardWeights: true }, size, 4);
    assert.equal(r.modelled.bytes_per_step, c.bytesSent, r.layout);
    assert.equal(r.modelled.collectives_per_step, c.collectives, r.layout);
  }
});

test("bench projection: measured links from `wanlab doctor --devices ... --json`, a run projected again, and refused input named", () => {
  const links = join(dir, "links.json");
  const measures = ["all_to_all", "all_gather", "send/recv"].flatMap((op) =>
    [[4096, 1e-4], [1 << 20, 2e-3]].map(([bytes, s]) => ({ op, bytes, latency_s: s, bytes_per_s: bytes! / s! })));
  writeFileSync(links, JSON.stringify({ world: 2, node_rank: 0, nodes: [], meet_s: 0, preflight_collectives_s: 0, measures }));
  const p = report([...video, ...quick, "--layouts", "r2", "--links", links]) as Report & { links: { intra_node: { name: string; measured_world: number } } };
  assert.equal(p.links.intra_node.name, links);
  assert.equal(p.links.intra_node.measured_world, 2);
  assert.ok(p.layouts[1]!.modelled.block.ring_comm_s >= 1e-4, JSON.stringify(p.layouts[1]));

  // The first test's measurements projected again over PCIe, for 20 steps: nothing is timed, the
  // measured parts are the same, no layout gets faster on a slower link.
  const first = JSON.parse(readFileSync(join(dir, "projection.json"), "utf8")) as Report;
  const again = report([...video, "--measured", join(dir, "projection.json"), "--link", "pcie4", "--steps", "20"]);
  assert.deepEqual(again.layouts.map((r) => r.layout), first.layouts.map((r) => r.layout));
  again.layouts.forEach((r, i) => {
    const was = first.layouts[i]!;
    assert.deepEqual(r.measured, was.measured, r.layout);
    assert.ok(r.step_s >= was.step_s, `${r.layout}: ${r.step_s} over PCIe, ${was.step_s} over NVLink`);
    assert.ok(Math.abs(r.total_s - 20 * r.step_s) < 1e-9 * r.total_s, r.layout);
  });

  const bad = (args: string[], ...needles: string[]) => {
    const r = bench([...video, ...quick, ...args]);
    assert.notEqual(r.status, 0, args.join(" "));
    for (const n of needles) assert.ok(r.stderr.includes(n), `${args.join(" ")}: '${n}' in ${r.stderr}`);
  };
  bad(["--layouts", "u3x"], "layout 'u3x'", "uNrM");
  bad(["--link", "nvlink9"], "nvlink9", "nvlink4, ib400, pcie4");
  bad(["--measured", join(dir, "projection.json"), "--width", "64"], "it measured tiny with 8 heads at 128x128x9, not tiny with 8 heads at 128x64x9");
  bad(["--links", join(dir, "missing.json")], "cannot read --links", "missing.json");
  writeFileSync(join(dir, "partial.json"), JSON.stringify({ measures: measures.slice(0, 2) }));
  bad(["--links", join(dir, "partial.json")], "no measure of all_gather");
  // A layout the heads do not allow is listed as skipped, with the reason.
  const two = report([...video.slice(0, 2), ...video.slice(4), ...quick, "--layouts", "u4,r2"]);
  assert.deepEqual(two.layouts.map((r) => r.layout), ["1", "r2"]);
  assert.deepEqual(two.skipped.map((s) => s.layout), ["u4"]);
  assert.match(two.skipped[0]!.reason, /ulysses 4 does not divide the 2 heads/);
});

test("scripts/projection.mjs: an offline plotly page with a trace per layout family and per anchor", async (t) => {
  const json = join(dir, "projection.json");
  const r = spawnSync(process.execPath, [join(root, "scripts", "projection.mjs"), json], { encoding: "utf8", maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  const html = r.stdout;
  assert.ok(html.length > 500_000, "plotly.js is inlined");
  assert.doesNotMatch(html, /<script[^>]+src=/, "no external script");
  assert.ok(html.includes(readFileSync(createRequire(import.meta.url).resolve("plotly.js-cartesian-dist-min"), "utf8").slice(0, 2000)), "plotly.js inline");
  const call = /Plotly\.newPlot\("plot", (.*), (\{"title".*), \{ displaylogo: false \}\);<\/script>/.exec(html);
  assert.ok(call, "the plot call");
  const traces = JSON.parse(call[1]!) as { name: string; x: number[]; y: number[] }[];
  const names = traces.map((t) => t.name);
  for (const n of ["Ulysses", "ring", "Ulysses × ring", "CFG-parallel × Ulysses", "CFG-parallel × ring", "CFG-parallel × Ulysses × ring", "ideal (1 GPU / N)"])
    assert.ok(names.includes(n), `trace ${n} in ${names.join(", ")}`);
  assert.ok(names.some((n) => n.startsWith("Wan2.1 (official)")), names.join(", "));
  assert.ok(names.some((n) => n.startsWith("LightX2V")), names.join(", "));
  const official = traces.find((t) => t.name.startsWith("Wan2.1"))!;
  assert.deepEqual(official.y, [1837.9, 945.1, 497.0, 287.9]);
  const layout = JSON.parse(call[2]!) as { xaxis: { title: { text: string } }; yaxis: { title: { text: string } } };
  assert.equal(layout.xaxis.title.text, "GPUs");
  assert.equal(layout.yaxis.title.text, "seconds for 50 steps");
  assert.match(html, /<td>cfg-u4r2<\/td><td>16<\/td>/);
  // Drawn offline in Chromium (where one is installed): every trace on the plot, no script error.
  const browser = await launchBrowser(t, { offline: true, width: 1000, height: 700 });
  if (browser) {
    const page = join(dir, "projection.html");
    writeFileSync(page, html);
    const p = await browser.open(pathToFileURL(page).href);
    await p.waitFor("document.querySelectorAll('#plot .scatterlayer .trace').length > 0", 10000);
    assert.equal(await p.evaluate("document.getElementById('plot').data.length"), traces.length);
    assert.equal(await p.evaluate("document.querySelectorAll('#plot .scatterlayer .trace').length"), traces.length);
    assert.deepEqual(p.errors, []);
    await p.screenshot(join(dir, "projection.png"));
    t.diagnostic(`chart: ${join(dir, "projection.png")}`);
  }
  const bad = spawnSync(process.execPath, [join(root, "scripts", "projection.mjs"), join(root, "package.json")], { encoding: "utf8" });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /not the JSON of `wanlab-engine bench projection`/);
  assert.ok(readFileSync(json, "utf8").length > 0);
});

test("wanlab bench projection: the engine's JSON on stdout, the chart with --html, bad flags refused before running", () => {
  const page = join(dir, "cli-projection.html");
  const r = wanlab(["bench", "projection", ...video, "--blocks", "1", "--iters", "1", "--gpus", "1,2", "--json", "--html", page]);
  assert.equal(r.status, 0, r.stderr);
  const p = JSON.parse(r.stdout) as Report;
  assert.equal(p.bench, "projection");
  assert.equal(p.video.tokens, 3 * 8 * 8);
  assert.deepEqual(p.layouts.map((x) => x.layout), ["1", "u2", "r2", "cfg"]);
  assert.equal(p.layouts[0]!.speedup, 1);
  const html = readFileSync(page, "utf8");
  assert.ok(html.includes(readFileSync(createRequire(import.meta.url).resolve("plotly.js-cartesian-dist-min"), "utf8").slice(0, 2000)), "plotly.js inline");
  assert.doesNotMatch(html, /<script[^>]+src=/, "no external script");
  assert.match(html, /Plotly\.newPlot\("plot", /);
  assert.match(html, /<td>cfg<\/td><td>2<\/td>/);
  // The page exists now: a second run without --overwrite is refused before anything runs.
  const again = wanlab(["bench", "projection", ...video, "--html", page]);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /--html/);

  const bad = (args: string[], message: RegExp) => {
    const b = wanlab(["bench", "projection", "--dims", "tiny", ...args]);
    assert.equal(b.status, 2, `${args.join(" ")}: ${b.stderr}`);
    assert.match(b.stderr, message, args.join(" "));
    assert.equal(b.stdout, "", args.join(" "));
  };
  bad(["--gpus", "1,3"], /--gpus takes a list of 1, 2, 4, 8, 16, got '3'/);
  bad(["--link", "nvlink9"], /--link must be one of nvlink4, ib400, pcie4, got 'nvlink9'/);
  bad(["--layouts", "u2,u3x"], /--layouts: 'u3x' is not a layout \(allowed: 1, uN, rN, uNrM, cfg/);
  bad(["--frames", "8"], /--frames must be 4k\+1/);
  bad(["--iters", "0"], /--iters must be between 1 and 1000, got 0/);
  bad(["--measured", join(dir, "missing.json")], /--measured: no file/);
});

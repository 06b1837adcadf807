// `wanlab bench parallel --json`: every layout's measured bytes per step equal the analytic
// formula (bytes are deterministic), collectives too; parity against one rank; the fields the
// report and the plot are made of; the plotly HTML from the JSON.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parallelLayouts, type BenchParallelReport } from "../src/bench-parallel.js";
import { blockParams } from "../src/parallel-model.js";
import { scratch, wanlab } from "./helpers.js";

const dir = scratch();

test("wanlab bench parallel --json: measured bytes = analytic bytes, parity < 1e-5, every field", () => {
  const html = join(dir, "bench.html");
  const r = wanlab(["bench", "parallel", "--json", "--html", html, "--height", "64", "--width", "64", "--num-frames", "5",
    "--work-dir", join(dir, "work")]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as BenchParallelReport;
  assert.equal(report.bench, "parallel");
  assert.equal(report.dims.numHeads, 8);
  assert.equal(report.input.tokens, 32);
  assert.deepEqual(report.layouts.map((l) => l.name), parallelLayouts.map((l) => l.name));
  for (const l of report.layouts) {
    const what = `${l.name}: ${JSON.stringify(l)}`;
    assert.ok(l.rel_l2_vs_1_rank < 1e-5, what);
    assert.ok(l.seconds_per_step > 0, what);
    assert.equal(l.dit_params_per_rank, l.dit_params_per_rank_analytic, what);
    if (l.ranks === 1) continue;
    assert.equal(l.bytes_per_step.length, l.ranks, what);
    for (const b of l.bytes_per_step) assert.equal(b, l.bytes_per_step_analytic, what);
    for (const c of l.collectives_per_step) assert.equal(c, l.collectives_per_step_analytic, what);
    assert.ok(l.bytes_per_step_analytic > 4, what);
    assert.ok(l.compute_s.every((x) => x > 0) && l.comm_s.every((x) => x > 0), what);
    assert.ok(l.peak_bytes.every((x) => x > 0) && l.peak_bytes_analytic > 0, what);
    assert.ok(l.checks.every((x) => x > 0) && l.check_fraction >= 0, what);
  }
  // Layouts that must differ do: Ulysses 4 hands half the bytes of Ulysses 2, ring 4 three halves of ring 2.
  const by = (n: string) => report.layouts.find((l) => l.name === n)!.bytes_per_step[0]!;
  assert.ok(by("ulysses 4") < by("ulysses 2") && by("ring 4") > by("ring 2"));
  // Sharded weights: a rank holds less of the DiT, gathers every block each pass, and is timed
  // against the same layout unsharded.
  const layout = (n: string) => report.layouts.find((l) => l.name === n)!;
  for (const [sharded, plain, sp] of [["ulysses 2 sharded", "ulysses 2", 2], ["2x2 hybrid sharded", "2x2 hybrid", 4]] as const) {
    const s = layout(sharded), p = layout(plain);
    const perBlock = blockParams(report.dims).total;
    assert.equal(p.dit_params_per_rank - s.dit_params_per_rank, report.dims.numLayers * (perBlock - Math.ceil(perBlock / sp)), sharded);
    assert.equal(s.bytes_per_step[0]! - p.bytes_per_step[0]!, report.dims.numLayers * Math.ceil(perBlock / sp) * 4 * 2, sharded);  // CFG: 2 passes
    assert.ok(s.peak_bytes_analytic > p.peak_bytes_analytic && Math.min(...s.peak_bytes) > Math.max(...p.peak_bytes), sharded);
    assert.ok(s.time_vs_unsharded! > 0 && p.time_vs_unsharded === undefined, sharded);
  }
  assert.equal(report.gpu_estimate.rows.length, 6);
  const page = readFileSync(html, "utf8");
  assert.match(page, /Plotly\.newPlot/);
  assert.equal((page.match(/<div id="f\d"/g) ?? []).length, 6);
  assert.ok(page.includes(JSON.stringify(report.layouts[1]!.bytes_per_step_analytic)));
});

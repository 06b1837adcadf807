// `wanlab-engine inspect --layout auto` (the engine's command line, for machines without Node): the
// degrees and the reason the TypeScript `wanlab inspect --layout auto` reports, for several rank
// counts; a video with fewer tokens than ranks refused naming the rule; --layout in the usage.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { before, test } from "node:test";
import { defaultEnginePath } from "../src/bench.js";
import { scratch, wanlab } from "./helpers.js";

const exe = process.env.WANLAB_ENGINE ?? defaultEnginePath;
const model = join(scratch("wanlab-engine-inspect-"), "tiny");

before(() => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
});

const engine = (args: string[]) => spawnSync(exe, ["inspect", model, ...args], { encoding: "utf8" });
const layoutOf = (report: string) => {
  const m = (JSON.parse(report) as { memory: Record<string, unknown> }).memory;
  return { ulysses: m.ulysses, ring: m.ring, cfg: m.cfg, layout_reason: m.layout_reason };
};

test("wanlab-engine inspect --layout auto picks the degrees and says why, as wanlab inspect --layout auto does", () => {
  const video = ["--height", "32", "--width", "32", "--num-frames", "1"];  // 4 tokens
  const expected = { "cpu:0-1": [1, 1, 2], "cpu:0-2": [1, 3, 1], "cpu:0-3": [2, 1, 2] } as const;
  for (const [devices, [ulysses, ring, cfg]] of Object.entries(expected)) {
    const args = ["--devices", devices, "--layout", "auto", ...video];
    const ours = engine(args);
    assert.equal(ours.status, 0, `${devices}: ${ours.stderr}`);
    const got = layoutOf(ours.stdout);
    assert.deepEqual([got.ulysses, got.ring, got.cfg], [ulysses, ring, cfg], `${devices}: ${JSON.stringify(got)}`);
    assert.match(String(got.layout_reason), /^auto: .*\(rule \d\)/);
    const ts = wanlab(["inspect", model, "--json", ...args]);
    assert.equal(ts.status, 0, ts.stderr);
    assert.deepEqual(got, layoutOf(ts.stdout), devices);
  }
});

test("wanlab-engine inspect --layout auto refuses more ranks than tokens naming the rule, and auto beside degrees", () => {
  const small = engine(["--devices", "cpu:0-3", "--layout", "auto", "--height", "16", "--width", "16", "--num-frames", "1"]);
  assert.equal(small.status, 1, small.stderr);
  assert.match(small.stderr, /2 sequence-parallel ranks but only 1 tokens in this video's DiT sequence \(ranks beyond tokens: every rank needs at least one\)/);
  const both = engine(["--devices", "cpu:0-1", "--layout", "auto", "--ulysses", "2"]);
  assert.equal(both.status, 1, both.stderr);
  assert.match(both.stderr, /layout auto chooses ulysses, ring and cfg parallel itself/);
  const other = engine(["--devices", "cpu:0-1", "--layout", "fast"]);
  assert.equal(other.status, 1, other.stderr);
  assert.match(other.stderr, /layout must be "auto".*got 'fast'/);
  const help = spawnSync(exe, ["--help"], { encoding: "utf8" });
  assert.match(help.stdout, /inspect DIR .*\[--layout auto\]/);
});

test("inspect --devices cuda:0x4 counts one DiT on the shared GPU beside every rank's activations, and holds a budget to them together", () => {
  type Memory = { stages: { denoise: number }; dit_weights_bytes: number; dit_activation_bytes: number; dit_streamed_bytes: number;
    other_rank_peak_bytes: number; device_ranks_peak_bytes?: number; shared_device?: boolean; budget: { fits: boolean } };
  // A long thin video with the text encoder on the CPU: denoising is the peak stage.
  const args = (devices: string, ...more: string[]) => ["--devices", devices, "--ulysses", "2", "--ring", "2", "--height", "32", "--width", "32",
    "--num-frames", "4001", "--t5-device", "cpu", ...more];
  const budget = ["--budget", "25000000"];
  const memoryOf = (r: { status: number | null; stdout: string; stderr: string }) => {
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { memory: Memory }).memory;
  };
  const shared = memoryOf(engine(args("cuda:0x4", ...budget)));
  assert.equal(shared.shared_device, true);
  assert.equal(shared.other_rank_peak_bytes, shared.dit_activation_bytes, "another rank on the GPU adds its activations, not a DiT");
  assert.equal(shared.device_ranks_peak_bytes, shared.stages.denoise + 3 * shared.dit_activation_bytes);
  assert.equal(shared.budget.fits, false, "4 ranks' activations on one GPU exceed the budget");
  // wanlab inspect reports the same (it exits 1 on a budget that does not fit: asked without one).
  const { budget: _, ...unbudgeted } = shared;
  assert.deepEqual(memoryOf(wanlab(["inspect", model, "--json", ...args("cuda:0x4")])), unbudgeted);
  const four = memoryOf(engine(args("cuda:0-3", ...budget)));
  assert.equal(four.shared_device, undefined);
  assert.equal(four.device_ranks_peak_bytes, undefined);
  assert.equal(four.other_rank_peak_bytes, four.dit_weights_bytes + four.dit_activation_bytes, "a GPU of its own holds a DiT copy");
  assert.equal(four.budget.fits, true);
  // Sharded weights: each rank keeps its own shard of the DiT, on a shared GPU too.
  const sharded = memoryOf(engine(args("cuda:0x4", "--shard-weights")));
  assert.equal(sharded.other_rank_peak_bytes, sharded.dit_weights_bytes + sharded.dit_streamed_bytes + sharded.dit_activation_bytes);
  assert.equal(sharded.device_ranks_peak_bytes, sharded.stages.denoise + 3 * sharded.other_rank_peak_bytes);
});

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

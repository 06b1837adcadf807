// PyTorch interop: the tiny checkpoints load in PyTorch (torch.load(weights_only=True), the
// safetensors package) and every layout holds the same values (test/python/check_layouts.py).
// Needs WANLAB_PYTHON (a python with torch) and the safetensors package (.cache/pydeps, which
// .ci/run installs from the machine's local index); without them the test is skipped, loudly.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { root, scratch, wanlab } from "./helpers.js";

const python = process.env.WANLAB_PYTHON;
const pydeps = process.env.WANLAB_PYDEPS ?? join(root, ".cache", "pydeps");
const skip = !python ? "WANLAB_PYTHON is not set" : !existsSync(join(pydeps, "safetensors")) ? `no safetensors package in ${pydeps}` : false;

test("tiny checkpoints load in PyTorch and agree across layouts", { skip }, () => {
  const dir = scratch();
  for (const layout of ["official", "diffusers", "comfyui"]) {
    const r = wanlab(["make-tiny", join(dir, layout), "--layout", layout, "--seed", "11"]);
    assert.equal(r.status, 0, r.stderr);
  }
  const r = spawnSync(python!, [join(root, "test", "python", "check_layouts.py"), dir], {
    encoding: "utf8",
    env: { ...process.env, PYTHONPATH: pydeps },
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /check_layouts: 0 failed/);
});

#!/usr/bin/env node
// The test command (`npm test`): the C++ engine tests, then the TypeScript tests under node's
// test runner: the unit tests beside their modules (src/**/NAME.test.ts) and the end-to-end ones
// in test/ (which also drive the CLI, the addon and the PyTorch interop checks).
// WANLAB_PYTHON names a python with torch for the interop tests; by default Debian's
// /usr/bin/python3 is used when it imports torch.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const env = { ...process.env };
if (!env.WANLAB_PYTHON) {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch"], { stdio: "ignore" });
  if (probe.status === 0) env.WANLAB_PYTHON = "/usr/bin/python3";
}
console.log(`tests: WANLAB_PYTHON=${env.WANLAB_PYTHON ?? "(none: PyTorch interop tests are skipped)"}`);

function run(cmd, args) {
  console.log(`\n$ ${cmd} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { cwd: root, env, stdio: "inherit" });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

const engineTests = `${root}native/build/wanlab-tests`;
if (!existsSync(engineTests) || !existsSync(`${root}dist/test`)) {
  console.error("tests: the project is not built; run `npm run build` first");
  process.exit(1);
}
let failed = run(engineTests, []) !== 0;
// The .pth interop again against PyTorch 2 (float8 checkpoints) when .ci/run installed it.
if (existsSync(`${root}.cache/torch-2/torch`)) {
  console.log("\ntests: .pth interop with PyTorch 2 from .cache/torch-2");
  const r = spawnSync(engineTests, ["pth_python_interop"], {
    cwd: root,
    env: { ...env, WANLAB_PYTHON: "python3", PYTHONPATH: `${root}.cache/torch-2` },
    stdio: "inherit",
  });
  failed = r.status !== 0 || failed;
}
/** The compiled tests under `dir` (relative to the root), in every subfolder when `deep`. */
function testsIn(dir, deep) {
  const found = [];
  for (const e of readdirSync(`${root}${dir}`, { withFileTypes: true })) {
    if (e.isDirectory() && deep) found.push(...testsIn(`${dir}/${e.name}`, deep));
    else if (e.isFile() && e.name.endsWith(".test.js")) found.push(`${dir}/${e.name}`);
  }
  return found.sort();
}
// The end-to-end tests (dist/test: the CLI, the server, the engine, notebooks, scripts) and the
// unit tests beside their modules (dist/src/**/NAME.test.js).
const files = [...testsIn("dist/test", false), ...testsIn("dist/src", true)];
failed = run(process.execPath, ["--test", "--test-concurrency=1", ...files]) !== 0 || failed;
process.exit(failed ? 1 : 0);

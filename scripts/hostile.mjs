#!/usr/bin/env node
// The hostile-input suite on its own: runs dist/test/hostile.test.js under node's test
// runner and prints every case's outcome as JSON on stdout (name, kind, expect, outcome, pass,
// exit code or signal, peak resident bytes, cap, seconds, first line of the error); the runner's
// own report goes to stderr. Exit status: the suite's. Needs `npm run build` first.
//   node scripts/hostile.mjs [--test-name-pattern REGEX]
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const suite = join(root, "dist", "test", "hostile.test.js");
if (!existsSync(suite)) {
  console.error("hostile: the project is not built; run `npm run build` first");
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), "wanlab-hostile-report-"));
const report = join(dir, "report.json");
const r = spawnSync(process.execPath, ["--test", ...process.argv.slice(2), suite], {
  cwd: root,
  env: { ...process.env, WANLAB_HOSTILE_REPORT: report },
  stdio: ["ignore", process.stderr, process.stderr],
});
if (existsSync(report)) console.log(readFileSync(report, "utf8").trim());
else console.error("hostile: the suite wrote no report");
rmSync(dir, { recursive: true, force: true });
process.exit(r.status ?? 1);

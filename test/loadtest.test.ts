// A small run of scripts/loadtest.mjs (the full one is 200 jobs; see the note): random
// cancels, injected engine failures, a SIGKILL and a restart; every check in the script holds.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { root, scratch } from "./helpers.js";

test("loadtest.mjs: 16 jobs, cancels, faults, kill + restart: every job ends with a reason, journal and outputs agree", () => {
  const dir = scratch("wanlab-load-");
  const r = spawnSync(process.execPath, [join(root, "scripts", "loadtest.mjs"), "--jobs", "16", "--cancel", "0.2", "--faults", "transient=0.15,fatal=0.1", "--out", dir], { encoding: "utf8", env: { ...process.env, CI: "1" } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.problems, []);
  assert.equal(report.states.done + report.states.cancelled + report.states.failed, 16);
  assert.ok(report.kill.ended >= 8);
});

// A small run of scripts/loadtest.mjs (the full one is 200 jobs; see the note): random
// cancels, injected engine failures, a SIGKILL and a restart; every check in the script holds.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { root, scratch, wanlab } from "./helpers.js";
import { startServer, tiny, waitFor, waitState } from "./serve.js";

test("loadtest.mjs: 16 jobs, cancels, faults, kill + restart: every job ends with a reason, journal and outputs agree", () => {
  const dir = scratch("wanlab-load-");
  const r = spawnSync(process.execPath, [join(root, "scripts", "loadtest.mjs"), "--jobs", "16", "--cancel", "0.2", "--faults", "transient=0.15,fatal=0.1", "--out", dir], { encoding: "utf8", env: { ...process.env, CI: "1" } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.problems, []);
  assert.equal(report.states.done + report.states.cancelled + report.states.failed, 16);
  assert.ok(report.kill.ended >= 8);
});

// Crashes at the two moments the journal must cover: a kill right after a running
// job's cancel was acknowledged, and a kill that tore the journal's last line.
describe("crash and kill", () => {
  const dir = scratch("wanlab-crash-");
  const model = join(dir, "tiny");
  before(() => {
    const r = wanlab(["make-tiny", model]);
    assert.equal(r.status, 0, r.stderr);
  });
  const records = (out: string) => readFileSync(join(out, "journal.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, any>);

  test("cancel then kill -9: the acknowledged cancel survives the crash; the job stays cancelled and never runs again", async () => {
    const out = join(dir, "outputs-cancel-kill");
    const rt = join(dir, "run-cancel-kill");
    // DELETE answers at once (202, the cancel journalled) instead of waiting for the engine, and
    // the kill comes before the engine stops: only the journalled cancel keeps the job from rerunning
    let a = await startServer(["--model", model, "--outputs", out], rt, {}, { cancelWaitMs: 0 });
    const id = ((await (await a.api("/v1/jobs", { method: "POST", json: { prompt: "big", height: 480, width: 832, numFrames: 81, numInferenceSteps: 50 } })).json()) as { id: string }).id;
    const queued = ((await (await a.api("/v1/jobs", { method: "POST", json: { prompt: "after", height: 16, width: 16, numFrames: 1, numInferenceSteps: 1 } })).json()) as { id: string }).id;
    // inside the engine's denoising loop, where a block takes a good fraction of a second
    await waitFor("the denoising stage", async () => (((await (await a.api(`/v1/jobs/${id}`)).json()) as { stage?: string }).stage === "denoise" ? true : undefined));
    const res = await a.api(`/v1/jobs/${id}`, { method: "DELETE" });
    const answer = (await res.json()) as { state: string; cancelling: boolean };
    a.child.kill("SIGKILL");
    assert.equal(res.status, 202, JSON.stringify(answer));
    assert.equal(answer.cancelling, true);
    await a.exited;
    a = await startServer(["--model", model, "--outputs", out], rt);
    try {
      const j = await waitState(a, id, ["cancelled", "done", "failed", "running"]);
      assert.equal(j.state, "cancelled", JSON.stringify(j));
      assert.equal((await waitState(a, queued, ["done", "failed"])).state, "done", "the queued job runs");
      const starts = records(out).filter((r) => r.id === id && r.t === "start").length;
      assert.equal(starts, 1, "the cancelled job never started again");
      assert.ok(!existsSync(join(out, `.${id}.tmp`)), "no scratch folder left");
    } finally {
      a.child.kill("SIGTERM");
      await a.exited;
    }
  });

  test("a torn journal tail: the server starts, names the aside file, later records are whole; the next restart works", async () => {
    const out = join(dir, "outputs-torn");
    const rt = join(dir, "run-torn");
    let a = await startServer(["--model", model, "--outputs", out], rt);
    const first = ((await (await a.api("/v1/jobs", { method: "POST", json: { prompt: "before", ...tiny } })).json()) as { id: string }).id;
    await waitState(a, first, ["done"]);
    a.child.kill("SIGKILL");
    await a.exited;
    const torn = '{"t":"submit","id":"torn","at":1,"params":{"pro';
    appendFileSync(join(out, "journal.jsonl"), torn);
    a = await startServer(["--model", model, "--outputs", out], rt);
    const m = new RegExp(`ended in a torn record \\(${torn.length} bytes: .*\\); cut off, the bytes kept in (\\S+journal\\.jsonl\\.torn-\\S+)`).exec(a.stderr());
    assert.ok(m, a.stderr());
    assert.equal(readFileSync(m[1]!, "utf8"), torn);
    const second = ((await (await a.api("/v1/jobs", { method: "POST", json: { prompt: "after", ...tiny } })).json()) as { id: string }).id;
    assert.equal((await waitState(a, second, ["done"])).state, "done");
    assert.deepEqual(records(out).filter((r) => r.id === second).map((r) => r.t), ["submit", "start", "done"], "not glued onto the torn line");
    a.child.kill("SIGKILL");
    await a.exited;
    a = await startServer(["--model", model, "--outputs", out], rt);
    try {
      assert.doesNotMatch(a.stderr(), /torn record/);
      assert.deepEqual(((await (await a.api("/v1/jobs?state=done")).json()) as { jobs: { id: string }[] }).jobs.map((j) => j.id).sort(), [first, second].sort());
    } finally {
      a.child.kill("SIGTERM");
      await a.exited;
    }
  });
});

#!/usr/bin/env node
// Cancel latency of `wanlab serve`: on the tiny model, a large CPU job (default
// 480x832x81) is submitted, and once it runs (its first denoise progress event, or --settle
// seconds after it started) it is cancelled with DELETE; the time until the job's terminal state
// is measured. Then the same job again, and the server gets SIGTERM twice (the second one stops
// it at once): the time from the first SIGTERM (and from the second) until the process exits.
// Prints one JSON object; everything it started is killed on the way out, even on error.
//
//   node scripts/cancel-latency.mjs [--model DIR] [--height 480 --width 832 --frames 81] [--steps 50] [--settle 5] [--limit 600] [--grace 0] [--verbose]
//
// Exit: 0 measured, 1 something failed (the JSON says what).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cli, startServer as startLabServer } from "./lib/wanlab.mjs";

const { values: v } = parseArgs({
  options: {
    model: { type: "string" }, height: { type: "string" }, width: { type: "string" }, frames: { type: "string" },
    settle: { type: "string" }, limit: { type: "string" }, grace: { type: "string" }, steps: { type: "string" },
    verbose: { type: "boolean" },
  },
});
const num = (name, fallback) => {
  const s = v[name];
  if (s === undefined) return fallback;
  if (!/^\d+(\.\d+)?$/.test(s)) {
    console.error(`cancel-latency: --${name} must be a number, got '${s}'`);
    process.exit(2);
  }
  return Number(s);
};
const video = { height: num("height", 480), width: num("width", 832), numFrames: num("frames", 81), numInferenceSteps: num("steps", 50) };
const settleS = num("settle", 5);
const limitS = num("limit", 600);
const graceS = num("grace", 0);
const work = mkdtempSync(join(tmpdir(), "wanlab-cancel-latency-"));
const children = new Set();
const started = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t = () => performance.now();
const log = (l) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${l}`);

function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
}
// the whole run is bounded: past --limit, everything is killed and the run fails
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ error: `over the ${limitS} s limit` }));
  cleanup();
  process.exit(1);
}, limitS * 1000);
deadline.unref();
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => {
  cleanup();
  process.exit(1);
});

/** `wanlab serve` on `model` with its own runtime and outputs folders under the work folder,
 * and `api(path, init)`: fetch with its token. */
async function startServer(model, name) {
  const rt = join(work, `run-${name}`);
  const server = await startLabServer({
    model, outputs: join(work, `outputs-${name}`), args: ["--grace", String(graceS)], runtimeDir: rt,
    onSpawn: (child) => children.add(child),
    onStderr: (text) => {
      if (v.verbose) for (const line of text.trimEnd().split("\n")) log(`  server: ${line}`);
    },
  });
  const { token } = JSON.parse(readFileSync(join(rt, "server.json"), "utf8"));
  const api = (path, init = {}) => fetch(server.url + path, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.body ? { "content-type": "application/json" } : {}) } });
  return { ...server, api };
}

/** Submits the large job and resolves once it runs: its first denoise progress event, or
 * --settle seconds after it started (a step of the large job can take minutes). */
async function submitAndWaitRunning(server) {
  const events = await server.api("/v1/events");
  const res = await server.api("/v1/jobs", { method: "POST", body: JSON.stringify({ prompt: "a cat walks on the street", ...video }) });
  if (res.status !== 202) throw new Error(`submit: HTTP ${res.status}: ${await res.text()}`);
  const { id } = await res.json();
  const reader = events.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let startedAt;
  let how = "";
  const stop = t() + limitS * 1000;
  for (;;) {
    const timeout = startedAt === undefined ? stop - t() : startedAt + settleS * 1000 - t();
    const chunk = await Promise.race([reader.read(), sleep(Math.max(0, timeout)).then(() => "timeout")]);
    if (chunk === "timeout") {
      if (startedAt === undefined) throw new Error("the job never started");
      how = `${settleS} s after it started (no denoise progress yet)`;
      break;
    }
    if (chunk.done) throw new Error("the event stream ended");
    buf += decoder.decode(chunk.value, { stream: true });
    if (startedAt === undefined && new RegExp(`event: started\\ndata: \\{"id":"${id}"`).test(buf)) startedAt = t();
    if (startedAt !== undefined && new RegExp(`event: progress\\ndata: \\{"id":"${id}"[^\\n]*"stage":"denoise"`).test(buf)) {
      how = "its first denoise progress event";
      break;
    }
    if (new RegExp(`event: (failed|done)\\ndata: \\{"id":"${id}"`).test(buf)) throw new Error(`the job ended before it could be cancelled: ${buf.slice(-400)}`);
  }
  void reader.cancel().catch(() => undefined);
  return { id, how };
}

async function main() {
  let model = v.model;
  if (!model) {
    model = join(work, "tiny");
    const r = spawnSync(process.execPath, [cli, "make-tiny", model], { encoding: "utf8" });
    if (r.status !== 0 || !existsSync(join(model, "config.json"))) throw new Error(`make-tiny failed: ${r.stderr}`);
  }
  const report = { video, model, grace_s: graceS };

  // DELETE → terminal state
  const a = await startServer(model, "delete");
  {
    const { id, how } = await submitAndWaitRunning(a);
    log(`job ${id} running (${how}); DELETE`);
    const t0 = t();
    const res = await a.api(`/v1/jobs/${id}`, { method: "DELETE" });
    const answer = await res.json();
    report.delete_status = res.status;
    report.delete_answer_s = (t() - t0) / 1000;
    let job = answer;
    while (!["cancelled", "done", "failed"].includes(job.state)) {
      await sleep(20);
      job = await (await a.api(`/v1/jobs/${id}`)).json();
    }
    report.delete_to_cancelled_s = (t() - t0) / 1000;
    report.delete_final_state = job.state;
    report.delete_error = job.error;
    report.delete_cancelled_when = how;
  }
  a.child.kill("SIGKILL");
  await a.exited;

  // SIGTERM → exit (the job gets --grace, then is cancelled and re-queued); a second SIGTERM
  // stops it at once
  const b = await startServer(model, "sigterm");
  {
    const { id, how } = await submitAndWaitRunning(b);
    log(`job ${id} running (${how}); SIGTERM`);
    const t0 = t();
    b.child.kill("SIGTERM");
    const first = await Promise.race([b.exited, sleep(graceS * 1000 + 500).then(() => undefined)]);
    let t1;
    if (!first) {
      t1 = t();
      log("still running after the grace; second SIGTERM");
      b.child.kill("SIGTERM");
    }
    const e = await b.exited;
    report.sigterm_to_exit_s = (e.at - t0) / 1000;
    if (t1 !== undefined) report.second_sigterm_to_exit_s = (e.at - t1) / 1000;
    report.sigterm_exit = e.signal ?? e.code;
    report.sigterm_cancelled_when = how;
    const journal = readFileSync(join(work, "outputs-sigterm", "journal.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.id === id);
    report.sigterm_journal = journal.map((r) => r.t);
  }
  console.log(JSON.stringify(report, null, 2));
}

try {
  await main();
  cleanup();
  process.exit(0);
} catch (e) {
  console.log(JSON.stringify({ error: e.message }));
  cleanup();
  process.exit(1);
}

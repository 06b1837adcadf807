#!/usr/bin/env node
// Load test of `wanlab serve` (loopback only, bounded): N jobs on the tiny model with random
// cancels, injected engine failures (the server's faults test seam, through test/serve-launcher.ts)
// and one SIGKILL + restart halfway.
// Checks that every accepted job ends done, cancelled or failed with its reason, that every
// done job's mp4 and manifest are whole, and that the journal and the outputs agree; prints
// jobs/s, submit→start latency and memory as JSON.
//
//   scripts/loadtest.mjs [--jobs 200] [--cancel 0.15] [--faults transient=0.1,fatal=0.05] [--out DIR] [--model DIR]
//
// Exit: 0 all checks hold, 1 a check failed, 2 usage. Run from the repository after a build
// (the faults seam is dist/test/serve-launcher.js): `./scripts/loadtest.mjs --help`.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { path } from "zx";
import { readJournal, replay } from "wanlab/internals";
import { defineFlags } from "./lib/flags.mjs";
import { cli, fail, startServer, Usage } from "./lib/wanlab.mjs";

const flags = defineFlags([
  { flag: "jobs", type: "integer", value: "N", default: 200, help: "jobs to submit, 2 to 5000" },
  { flag: "cancel", type: "number", value: "P", default: 0.15, help: "the share of jobs cancelled at a random time, 0 to 1" },
  { flag: "faults", type: "string", value: "SPEC", default: "transient=0.1,fatal=0.05", help: "injected engine failures: transient=P,fatal=P" },
  { flag: "out", type: "string", value: "DIR", shown: "a temporary folder, removed after", help: "the work folder: the tiny model, the outputs, the journal" },
  { flag: "keep", type: "boolean", help: "keep the temporary work folder" },
  { flag: "model", type: "string", value: "DIR", shown: "a tiny model made in the work folder", help: "the model folder" },
], {
  name: "loadtest.mjs",
  about: "Load test of `wanlab serve` on loopback: random cancels, injected engine failures and one SIGKILL +\n" +
    "restart halfway; checks every job's end, outputs and journal, and prints the numbers as JSON.\n" +
    "Exit: 0 all checks hold, 1 a check failed, 2 usage.",
  examples: ["loadtest.mjs --jobs 16 --cancel 0.2 --faults transient=0.15,fatal=0.1 --out /tmp/load"],
});
const argv = (() => {
  try {
    const parsed = flags.parse();
    if (parsed && !(parsed.jobs >= 2 && parsed.jobs <= 5000 && parsed.cancel >= 0 && parsed.cancel <= 1)) throw new Usage("--jobs must be 2-5000 and --cancel in [0, 1]");
    return parsed;
  } catch (e) {
    fail(e);
  }
})();
if (!argv) process.exit();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const total = argv.jobs;
const cancelRate = argv.cancel;
const faults = argv.faults;
const work = path.resolve(argv.out ?? mkdtempSync(join(tmpdir(), "wanlab-load-")));
const outputs = join(work, "outputs");
const log = (l) => console.error(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${l}`);
const t0 = Date.now();

async function main() {
  let model = argv.model;
  if (!model) {
    model = join(work, "tiny");
    if (!existsSync(join(model, "config.json"))) spawnSync(process.execPath, [cli, "make-tiny", model], { stdio: "inherit" });
  }
  const seams = { faults };
  let server = await startServer({ model, outputs, seams, args: ["--grace", "5"] });
  let info = JSON.parse(readFileSync(join(server.runtimeDir, "server.json"), "utf8"));
  const api = async (p, init = {}) => {
    for (let tries = 0; ; tries++) {
      try {
        const res = await fetch(info.url + p, { ...init, headers: { authorization: `Bearer ${info.token}`, ...(init.body ? { "content-type": "application/json" } : {}) } });
        if (res.status >= 500 && tries < 50) throw new Error(`HTTP ${res.status}`);
        return res;
      } catch (e) {
        if (tries >= 200) throw e;
        await sleep(100); // the server is restarting
      }
    }
  };
  const stats = async () => (await (await api("/v1/stats")).json());
  const memory = { firstStart: (await stats()).memory.process.rss };
  log(`server ${info.url}, rss ${(memory.firstStart / 2 ** 20).toFixed(0)} MiB; submitting ${total} jobs`);

  // Submit everything (most jobs tiny, some longer so cancels catch them running).
  const accepted = [];
  const submitLatency = [];
  for (let i = 0; i < total; i++) {
    const steps = Math.random() < 0.1 ? 8 : 1 + (i % 2);
    const body = { prompt: `load ${i}`, seed: i, height: 16, width: 16, numFrames: i % 7 === 0 ? 5 : 1, numInferenceSteps: steps, output: `load/${i % 4}` };
    const s0 = performance.now();
    const res = await api("/v1/jobs", { method: "POST", body: JSON.stringify(body) });
    submitLatency.push(performance.now() - s0);
    if (res.status !== 202) throw new Error(`job ${i}: HTTP ${res.status}: ${await res.text()}`);
    accepted.push({ ...(await res.json()), body });
  }
  log(`accepted ${accepted.length}`);

  // Random cancels over the run (some hit queued jobs, some running ones, some finished ones: 409).
  const cancels = { requested: 0, answered: { 200: 0, 202: 0, 409: 0 } };
  const cancelling = accepted.filter(() => Math.random() < cancelRate).map(async (j) => {
    await sleep(Math.random() * total * 400);
    cancels.requested++;
    const res = await api(`/v1/jobs/${j.id}`, { method: "DELETE" });
    cancels.answered[res.status] = (cancels.answered[res.status] ?? 0) + 1;
  });

  // Kill the server (SIGKILL: no shutdown path) once about half the jobs have ended, and restart it.
  const ended = (jobs) => jobs.filter((j) => ["done", "failed", "cancelled"].includes(j.state)).length;
  let killedAt;
  for (;;) {
    const jobs = (await (await api("/v1/jobs")).json()).jobs;
    if (ended(jobs) >= total / 2) {
      const s = await stats();
      memory.beforeKill = s.memory.process.rss;
      killedAt = { ended: ended(jobs), running: jobs.find((j) => j.state === "running")?.id };
      server.child.kill("SIGKILL");
      await new Promise((r) => server.child.once("exit", r));
      log(`SIGKILL with ${killedAt.ended} ended, running ${killedAt.running ?? "none"}`);
      break;
    }
    await sleep(200);
  }
  const restartT = Date.now();
  server = await startServer({ model, outputs, seams, args: ["--grace", "5"] });
  info = JSON.parse(readFileSync(join(server.runtimeDir, "server.json"), "utf8"));
  memory.secondStart = (await stats()).memory.process.rss;
  log(`restarted in ${((Date.now() - restartT) / 1000).toFixed(1)}s at ${info.url}`);

  let final;
  for (;;) {
    final = (await (await api("/v1/jobs")).json()).jobs;
    if (ended(final) === final.length && final.length >= total) break;
    await sleep(300);
  }
  await Promise.all(cancelling);
  const wall = (Date.now() - t0) / 1000;
  const endStats = await stats();
  memory.end = endStats.memory.process.rss;

  // Checks.
  const problems = [];
  const byId = new Map(final.map((j) => [j.id, j]));
  for (const a of accepted) {
    const j = byId.get(a.id);
    if (!j) { problems.push(`${a.id}: accepted but unknown after the restart`); continue; }
    if (!["done", "failed", "cancelled"].includes(j.state)) problems.push(`${j.id}: ended ${j.state}`);
    if ((j.state === "failed" || j.state === "cancelled") && !j.error) problems.push(`${j.id}: ${j.state} without a reason`);
    if (j.state === "done") {
      const [mp4, manifest] = j.outputs;
      const dirOk = j.outputs.every((f) => f.startsWith(join(outputs, "load") + "/") && existsSync(f));
      if (!dirOk) { problems.push(`${j.id}: missing output`); continue; }
      const m = JSON.parse(readFileSync(manifest, "utf8"));
      if (m.params.seed !== String(a.body.seed) || m.params.prompt !== a.body.prompt) problems.push(`${j.id}: manifest params differ`);
      const p = spawnSync("ffprobe", ["-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0", mp4], { encoding: "utf8" });
      if (p.status !== 0 || p.stdout.trim() !== `16,16,${a.body.numFrames}`) problems.push(`${j.id}: mp4 is not whole: ${p.stdout.trim()} ${p.stderr.trim()}`);
    } else if (existsSync(join(outputs, a.body.output, j.id))) problems.push(`${j.id}: ${j.state} but has an output directory`);
  }
  const journal = replay(await readJournal(join(outputs, "journal.jsonl")));
  if (journal.length !== accepted.length) problems.push(`journal has ${journal.length} jobs, ${accepted.length} were accepted`);
  for (const r of journal) {
    const j = byId.get(r.id);
    if (!j || j.state !== r.state) problems.push(`${r.id}: journal says ${r.state}, the server ${j?.state}`);
    if (r.state === "done" && JSON.stringify(r.outputs) !== JSON.stringify(j?.outputs)) problems.push(`${r.id}: journal outputs differ`);
  }
  const leftovers = readdirSync(join(outputs, "load"), { recursive: true }).filter((f) => /\.tmp/.test(String(f)));
  if (leftovers.length) problems.push(`temporary files left: ${leftovers.join(", ")}`);

  const count = (s) => final.filter((j) => j.state === s).length;
  const lat = final.filter((j) => j.startedAt).map((j) => (j.startedAt - j.submittedAt) / 1000).sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  const sub = submitLatency.sort((a, b) => a - b);
  const killedJob = killedAt.running ? byId.get(killedAt.running) : undefined;
  const report = {
    jobs: total, wall_s: wall,
    states: { done: count("done"), cancelled: count("cancelled"), failed: count("failed") },
    failedReasons: Object.entries(final.filter((j) => j.state === "failed").reduce((a, j) => ((a[j.error.replace(/\(.*$/, "").trim()] = (a[j.error.replace(/\(.*$/, "").trim()] ?? 0) + 1), a), {})),
    throughput: { done_per_s: count("done") / wall, ended_per_s: final.length / wall, engine_jobs_per_s_after_restart: endStats.throughput.done / endStats.uptime_s },
    submit_http_ms: { p50: sub[Math.floor(sub.length / 2)], p95: sub[Math.floor(sub.length * 0.95)], max: sub.at(-1) },
    submit_to_start_s: { p50: q(0.5), p95: q(0.95), max: lat.at(-1), note: "all jobs submitted up front: this is mostly queue wait" },
    cancels,
    kill: { ...killedAt, killedJobEnded: killedJob ? `${killedJob.state}${killedJob.error ? `: ${killedJob.error}` : ""}` : undefined },
    retries_after_restart: endStats.retries,
    memory_mib: Object.fromEntries(Object.entries(memory).map(([k, v]) => [k, +(v / 2 ** 20).toFixed(1)])),
    problems,
  };
  console.log(JSON.stringify(report, null, 2));
  await server.stop();
  if (!argv.out && !argv.keep) rmSync(work, { recursive: true, force: true });
  if (problems.length) process.exitCode = 1;
}

await main().catch(fail);

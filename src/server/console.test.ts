// The console's lines (src/server/console.ts) from queue events, on a fake clock: what each says,
// how often progress is written, and that nothing but one plain line reaches the terminal.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import type { ProgressEvent } from "../engine.js";
import { clip, formatSeconds, oneLine, watchJobs, whereStopped } from "./console.js";
import type { Job, JobEvent } from "./jobs.js";

function harness() {
  const events = new EventEmitter<{ event: [JobEvent] }>();
  const lines: string[] = [];
  let clock = Date.UTC(2026, 11, 5, 23, 30, 1);
  const stop = watchJobs(events, { log: (l) => lines.push(l), now: () => clock });
  const job: Job = {
    id: "j1", state: "queued", step: 0, totalSteps: 1000, submittedAt: clock, attempts: 0, options: {},
    params: { prompt: "a fox", negativePrompt: "", seed: "42", numInferenceSteps: 1000, height: 480, width: 832, numFrames: 81 } as unknown as Job["params"],
  };
  const progress = (step: number, eta = 12): ProgressEvent => ({ stage: "denoise", step, total: 1000, elapsed: step * 0.01, eta });
  return { events, lines, job, stop, progress, tick: (ms: number) => (clock += ms), emit: (e: JobEvent) => events.emit("event", e) };
}

test("each event is one line with the UTC time, the job's id and what happened", () => {
  const h = harness();
  h.emit({ type: "queued", job: h.job, client: "127.0.0.1 (curl/8.5.0)" });
  h.job.attempts = 1;
  h.job.startedAt = h.job.submittedAt + 1500;
  h.emit({ type: "started", job: h.job });
  h.emit({ type: "retry", job: h.job, error: "CUDA out of memory", delayMs: 250 });
  h.job.endedAt = h.job.startedAt + 75_000;
  h.job.outputs = ["/out/j1/video.mp4", "/out/j1/manifest.json"];
  h.emit({ type: "done", job: h.job });
  assert.deepEqual(h.lines, [
    'wanlab serve: 2026-12-05T23:30:01Z job j1 accepted from 127.0.0.1 (curl/8.5.0): 480x832, 81 frames, 1000 steps, seed 42, "a fox"',
    "wanlab serve: 2026-12-05T23:30:01Z job j1 started after 1.5 s in the queue",
    "wanlab serve: 2026-12-05T23:30:01Z job j1 hit a transient error, retrying in 0.3 s: CUDA out of memory",
    "wanlab serve: 2026-12-05T23:30:01Z job j1 done in 1 min 15 s: /out/j1/video.mp4",
  ]);
});

test("failed names the field, cancelled where the engine stopped, re-queued why", () => {
  const h = harness();
  h.job.error = "inputVideo /x.mp4: ffmpeg could not read it";
  h.emit({ type: "failed", job: h.job, field: "inputVideo" });
  h.job.error = "cancelled at step 3/50, block 12/30";
  h.emit({ type: "cancelled", job: h.job, at: { stage: "denoise", step: 3, steps: 50, block: 12, blocks: 30 } });
  h.job.error = "cancelled while queued";
  h.emit({ type: "cancelled", job: h.job });
  h.emit({ type: "requeued", job: h.job, reason: "after a restart (queued in the journal)" });
  assert.deepEqual(h.lines.map((l) => l.replace(/^wanlab serve: \S+ job j1 /, "")), [
    "failed: inputVideo /x.mp4: ffmpeg could not read it (field inputVideo)",
    "cancelled at step 3/50, block 12/30 (denoise)",
    "cancelled while queued",
    "re-queued: after a restart (queued in the journal)",
  ]);
});

test("a cancel that stopped outside the engine still reads as cancelled, with its reason", () => {
  const h = harness();
  h.job.error = "This operation was aborted";
  h.emit({ type: "cancelled", job: h.job });
  h.job.error = undefined;
  h.emit({ type: "cancelled", job: h.job });
  assert.deepEqual(h.lines.map((l) => l.replace(/^wanlab serve: \S+ job j1 /, "")), ["cancelled: This operation was aborted", "cancelled"]);
});

test("progress: a line per tenth of the steps, or after 10 s without one; never more", () => {
  const h = harness();
  h.emit({ type: "started", job: h.job });
  for (let step = 1; step <= 250; step++) {
    h.tick(20); // 5 s per 250 steps: only the tenths write lines
    h.emit({ type: "progress", job: h.job, progress: h.progress(step) });
  }
  assert.deepEqual(h.lines.slice(1).map((l) => l.replace(/^wanlab serve: \S+ job j1 /, "")), [
    "step 100/1000 (10%), ETA 12 s of denoising",
    "step 200/1000 (20%), ETA 12 s of denoising",
  ]);
  h.lines.length = 0;
  h.tick(10_000); // slow steps: the clock writes one
  h.emit({ type: "progress", job: h.job, progress: h.progress(251, 600) });
  h.tick(1000);
  h.emit({ type: "progress", job: h.job, progress: h.progress(252, 600) });
  assert.deepEqual(h.lines.map((l) => l.replace(/^wanlab serve: \S+ job j1 /, "")), ["step 251/1000 (25%), ETA 10 min 00 s of denoising"]);
  h.emit({ type: "progress", job: h.job, progress: { stage: "decode", step: 1, total: 3, elapsed: 0, eta: 1 } });
  h.emit({ type: "progress", job: h.job, progress: h.progress(1000, 0) });
  assert.equal(h.lines.at(-1), "wanlab serve: 2026-12-05T23:30:17Z job j1 step 1000/1000 (100%), decoding");
  h.stop();
  h.emit({ type: "done", job: h.job });
  assert.equal(h.lines.length, 2, "no lines once stopped");
});

test("prompts, paths and messages stay on one line without control characters", () => {
  assert.equal(oneLine("a\nb\x1b[31mc\x9bd\te"), "a\\nb\\x1b[31mc\\x9bd e");
  const h = harness();
  h.job.error = "bad\nthing \x1b[2J";
  h.emit({ type: "failed", job: h.job });
  h.job.params = { ...h.job.params, prompt: `x\n${"y".repeat(100)}` };
  h.emit({ type: "queued", job: h.job });
  for (const l of h.lines) assert.doesNotMatch(l, /[\x00-\x1f\x7f-\x9f]/);
  assert.match(h.lines[1]!, /"x\\ny{55}\.\.\."$/, "a long prompt is cut to 60 characters");
  assert.equal(clip("a\n" + "b".repeat(500), 300), `a\\n${"b".repeat(294)}...`);
});

test("durations and stopping points read as people write them", () => {
  assert.deepEqual([0.04, 9.96, 12.4, 200, 7500].map(formatSeconds), ["0.0 s", "10.0 s", "12 s", "3 min 20 s", "2 h 05 min"]);
  assert.equal(whereStopped({ stage: "decode", chunk: 5, chunks: 21 }), "at chunk 5/21 (decode)");
  assert.equal(whereStopped({ stage: "encode" }), "during encode");
  assert.equal(whereStopped({}), "");
});

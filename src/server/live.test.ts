// What the status page knows of running jobs (src/server/live.ts): the latest progress without
// its latents, a preview PNG at most every previewEveryMs (the last step always), the denoising
// speed, and only the last `keep` finished jobs remembered.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import type { ProgressEvent } from "../engine.js";
import type { Job, JobEvent } from "./jobs.js";
import { previewEvery, watchLive } from "./live.js";

function harness(keep = 16) {
  const events = new EventEmitter<{ event: [JobEvent] }>();
  let clock = 0;
  const live = watchLive(events, { previewEveryMs: 400, keep, now: () => clock });
  const job = (id: string) => ({ id, state: "running", step: 0, totalSteps: 10 }) as unknown as Job;
  // latents [16, 2, 3, 4]: channel k holds k / 16
  const latents = { shape: [16, 2, 3, 4], data: Float32Array.from({ length: 16 * 24 }, (_, i) => Math.floor(i / 24) / 16) };
  const step = (j: Job, n: number, withLatents = true): ProgressEvent => ({ stage: "denoise", step: n, total: 10, elapsed: n * 0.5, eta: (10 - n) * 0.5, ...(withLatents ? { latents } : {}) });
  return { live, job, step, tick: (ms: number) => (clock += ms), emit: (e: JobEvent) => events.emit("event", e) };
}

test("progress is kept without latents; previews at most every 400 ms and at the last step", () => {
  const h = harness();
  const j = h.job("a");
  h.emit({ type: "started", job: j });
  h.emit({ type: "progress", job: j, progress: h.step(j, 1) });
  assert.deepEqual(h.live.progress("a"), { stage: "denoise", step: 1, total: 10, elapsed: 0.5, eta: 4.5 });
  const first = h.live.preview("a")!;
  assert.equal(first.step, 1);
  assert.deepEqual([...first.png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(""), "PNG");
  assert.deepEqual(first.frames, [0, 1]);
  h.tick(100);
  h.emit({ type: "progress", job: j, progress: h.step(j, 2) });
  assert.equal(h.live.preview("a")!.step, 1, "too soon for another");
  h.tick(400);
  h.emit({ type: "progress", job: j, progress: h.step(j, 3) });
  assert.equal(h.live.preview("a")!.step, 3);
  h.emit({ type: "progress", job: j, progress: h.step(j, 4, false) });
  assert.equal(h.live.preview("a")!.step, 3, "a step without latents keeps the last preview");
  h.emit({ type: "progress", job: j, progress: h.step(j, 10) });
  assert.equal(h.live.preview("a")!.step, 10, "the last step always");
  assert.equal(h.live.speed("a"), 2);
  h.emit({ type: "done", job: j });
  assert.deepEqual(h.live.recentSpeeds(), [2]);
});

test("only the last `keep` finished jobs are remembered", () => {
  const h = harness(2);
  for (const id of ["a", "b", "c"]) {
    const j = h.job(id);
    h.emit({ type: "started", job: j });
    h.emit({ type: "progress", job: j, progress: h.step(j, 10) });
    h.emit({ type: "done", job: j });
  }
  assert.equal(h.live.preview("a"), undefined);
  assert.equal(h.live.preview("c")!.step, 10);
  assert.equal(h.live.recentSpeeds().length, 2);
});

test("about 25 previews a job, at least one every step for short jobs", () => {
  assert.deepEqual([1, 10, 25, 50, 1000].map(previewEvery), [1, 1, 1, 2, 40]);
});

// `wanlab serve` against the tiny model, started as a user would: the contract of issue 8
// (server.json, bearer token, POST/GET/DELETE /v1/jobs, events, health), the refusals
// (401, 400 naming the field, 413, path escape), cancel, the journal across a kill and a
// restart, graceful shutdown, transient-error retries, and the TypeScript client.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { connect } from "../src/client/index.js";
import { CancelledError, type MemoryPlanReport } from "../src/engine.js";
import { ParamError } from "../src/params.js";
import { scratch, wanlab } from "./helpers.js";
import { long, startServer, tiny, waitFor, waitState, type RunningServer } from "./serve.js";

const dir = scratch("wanlab-server-");
const model = join(dir, "tiny");
const outputs = join(dir, "outputs");
const runtime = join(dir, "run");
let s: RunningServer;

before(async () => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
  s = await startServer(["--model", model, "--port", "0", "--outputs", outputs], runtime);
});
after(async () => {
  if (s && s.child.exitCode === null) {
    s.child.kill("SIGTERM");
    await s.exited;
  }
});

async function submit(server: RunningServer, body: unknown): Promise<string> {
  const res = await server.api("/v1/jobs", { method: "POST", json: body });
  assert.equal(res.status, 202, await res.clone().text());
  const j = (await res.json()) as { id: string; state: string };
  assert.deepEqual(Object.keys(j).sort(), ["id", "state"]);
  assert.equal(j.state, "queued");
  return j.id;
}

describe("contract", () => {
  test("prints 'listening on URL' and writes server.json (0600) with url, token, pid, model", async () => {
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const file = join(runtime, "server.json");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(runtime).mode & 0o077, 0, "the runtime directory is private");
    const info = JSON.parse(readFileSync(file, "utf8"));
    assert.deepEqual(Object.keys(info).sort(), ["model", "pid", "pidStart", "token", "url"]);
    assert.equal(info.url, s.url);
    assert.equal(info.pid, s.child.pid);
    assert.match(info.pidStart, /^\d+$/, "the process's start time: a reused pid is told apart");
    assert.equal(info.model, model);
    assert.ok(info.token.length >= 32);
    assert.equal((await s.api("/v1/health")).status, 200);
  });

  test("a job: 202 {id, state}, then GET shows step/totalSteps and absolute outputs; manifest.json has everything", async () => {
    const id = await submit(s, { prompt: "a cat", negativePrompt: "blurry", seed: "18446744073709551615", cfgScale: 4, output: "runs/a", ...tiny, numInferenceSteps: 2 });
    const j = await waitState(s, id, ["done", "failed"]);
    assert.equal(j.state, "done", j.error);
    assert.equal(j.step, 2);
    assert.equal(j.totalSteps, 2);
    assert.equal(j.error, undefined);
    assert.deepEqual(j.outputs, [join(outputs, "runs", "a", id, "video.mp4"), join(outputs, "runs", "a", id, "manifest.json")]);
    for (const f of j.outputs) assert.ok(existsSync(f), f);
    const m = JSON.parse(readFileSync(j.outputs[1], "utf8"));
    assert.equal(m.params.seed, "18446744073709551615");
    assert.equal(m.params.cfgScale, 4);
    assert.equal(m.params.negativePrompt, "blurry");
    assert.match(m.model.fingerprint, /^sha256:[0-9a-f]{64}$/);
    assert.equal(m.model.dir, model);
    assert.ok(m.engine.wanlab);
    assert.ok(m.timings.engine.denoise_s >= 0 && m.timings.queue_s >= 0);
    assert.equal(m.ranks[0].rank, 0);
    const probe = spawnSync("ffprobe", ["-v", "error", "-count_frames", "-show_entries", "stream=width,height,nb_read_frames", "-of", "json", j.outputs[0]], { encoding: "utf8" });
    const st = JSON.parse(probe.stdout).streams[0];
    assert.deepEqual([st.width, st.height, Number(st.nb_read_frames)], [16, 16, 1]);
    const journal = readFileSync(join(outputs, "journal.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.id === id);
    assert.deepEqual(journal.map((r) => r.t), ["submit", "start", "done"]);
  });

  test("list jobs, the queue, stats", async () => {
    const list = (await (await s.api("/v1/jobs?state=done")).json()) as { jobs: { state: string }[] };
    assert.ok(list.jobs.length >= 1 && list.jobs.every((j) => j.state === "done"));
    const q = (await (await s.api("/v1/queue")).json()) as { queued: unknown[] };
    assert.ok(Array.isArray(q.queued));
    const st = (await (await s.api("/v1/stats")).json()) as Record<string, any>;
    assert.ok(st.jobs.done >= 1);
    assert.equal(typeof st.queueDepth, "number");
    assert.ok(st.engineLoad >= 0 && st.engineLoad <= 1);
    assert.ok(st.memory.process.rss > 0 && st.memory.devices[0].total > 0);
    assert.deepEqual(st.memory.devices.map((d: { device: string }) => d.device), ["cpu"]);  // no CUDA device in use here
    assert.equal(typeof st.throughput.jobsPerSecond, "number");
    assert.deepEqual(st.model.placement.dit, ["cpu f32"]); // T2VEngine::placement()
    // the prompt cache: host bytes of embeddings held, and the prompts found there or encoded
    const pc = st.memory.promptCache as { entries: number; bytes: number; capacity_bytes: number; hits: number; misses: number };
    assert.ok(pc.entries >= 1 && pc.bytes > 0 && pc.bytes <= pc.capacity_bytes && pc.misses >= pc.entries, JSON.stringify(pc));
    assert.equal(pc.capacity_bytes, 256 * 2 ** 20);
    assert.equal((await s.api("/v1/jobs?state=bogus")).status, 400);
  });
});

describe("refusals", () => {
  test("no token → 401, wrong token → 401, on every route", async () => {
    for (const [method, path] of [["GET", "/v1/health"], ["POST", "/v1/jobs"], ["GET", "/v1/jobs"], ["GET", "/v1/stats"], ["DELETE", "/v1/jobs/x"], ["GET", "/v1/events"], ["GET", "/nope"]]) {
      const none = await fetch(s.url + path, { method });
      assert.equal(none.status, 401, `${method} ${path} without a token`);
      assert.match(none.headers.get("www-authenticate") ?? "", /Bearer/);
      const wrong = await s.api(path!, { method, headers: { authorization: "Bearer not-the-token" } });
      assert.equal(wrong.status, 401, `${method} ${path} with a wrong token`);
      const basic = await s.api(path!, { method, headers: { authorization: `Basic ${s.token}` } });
      assert.equal(basic.status, 401);
    }
  });

  test("a bad parameter → 400 naming it and the allowed values; nothing is queued", async () => {
    const before = ((await (await s.api("/v1/jobs")).json()) as { jobs: unknown[] }).jobs.length;
    const cases: [unknown, string, RegExp][] = [
      [{ prompt: "x", height: 100 }, "height", /height must be a multiple of 16, got 100/],
      [{ prompt: "x", numFrames: 8 }, "numFrames", /numFrames must be 4k\+1/],
      [{ prompt: "x", numInferenceSteps: 0 }, "numInferenceSteps", /from 1 to 1000, got 0/],
      [{ prompt: "x", height: "32" }, "height", /height must be an integer, got "32"/],
      [{ prompt: "x", seed: -1 }, "seed", /seed must be an integer from 0 to 2\^64-1/],
      [{ prompt: "x", seed: "99999999999999999999" }, "seed", /seed must be an integer from 0 to 2\^64-1/],
      [{ prompt: "x", cfgScale: 2, guidanceScale: 3 }, "cfgScale", /same parameter/],
      [{ prompt: "x", steps: 3 }, "steps", /unknown parameter 'steps'; allowed: prompt, negativePrompt/],
      [{ height: 16 }, "prompt", /prompt is required/],
      [{ prompt: "x", fps: 0 }, "fps", /fps must be an integer from 1 to 240/],
      // TeaCache: no calibration fits the tiny DiT (the engine says so at submit); a wrong id; a bad threshold
      [{ prompt: "x", teaCacheL1Thresh: 0.1 }, "teaCacheModelId", /teaCacheModelId: this DiT \(dim 256, 2 layers\) is neither Wan2\.1-T2V-1\.3B nor 14B; give the calibration to use \(Wan2\.1-T2V-1\.3B, Wan2\.1-T2V-14B\)/],
      [{ prompt: "x", teaCacheL1Thresh: 0.1, teaCacheModelId: "Wan2.1-I2V-14B-480P" }, "teaCacheModelId", /teaCacheModelId must be one of Wan2\.1-T2V-1\.3B, Wan2\.1-T2V-14B, got 'Wan2\.1-I2V-14B-480P'/],
      [{ prompt: "x", teaCacheL1Thresh: -1 }, "teaCacheL1Thresh", /teaCacheL1Thresh must be a number in \[0, 10\], got -1/],
      // video-to-video: the file is checked on the server's machine at submit
      [{ prompt: "x", inputVideo: "/nonexistent/in.mp4", denoisingStrength: 0.5 }, "inputVideo", /inputVideo \/nonexistent\/in\.mp4 does not exist/],
      [{ prompt: "x", denoisingStrength: 0.5 }, "denoisingStrength", /denoisingStrength 0\.5 < 1 starts from a noised input video; give inputVideo/],
    ];
    for (const [body, field, message] of cases) {
      const res = await s.api("/v1/jobs", { method: "POST", json: body });
      assert.equal(res.status, 400, JSON.stringify(body));
      const j = (await res.json()) as { error: string; field: string };
      assert.equal(j.field, field, JSON.stringify(j));
      assert.match(j.error, message);
    }
    const bad = await s.api("/v1/jobs", { method: "POST", body: "{not json", headers: { "content-type": "application/json" } });
    assert.equal(bad.status, 400);
    const after = ((await (await s.api("/v1/jobs")).json()) as { jobs: unknown[] }).jobs.length;
    assert.equal(after, before);
  });

  test("an oversized body → 413", async () => {
    const res = await s.api("/v1/jobs", { method: "POST", json: { prompt: "x".repeat(200_000) } });
    assert.equal(res.status, 413);
    assert.match(((await res.json()) as { error: string }).error, /too large/);
  });

  test("an output path escaping the outputs directory → 400 naming output", async () => {
    for (const output of ["../escape", "/etc", "a/../../b", "a/./b", ".hidden", "a\\..\\b", "a/\u0000"]) {
      const res = await s.api("/v1/jobs", { method: "POST", json: { prompt: "x", output, ...tiny } });
      assert.equal(res.status, 400, output);
      assert.equal(((await res.json()) as { field: string }).field, "output");
    }
    assert.ok(!existsSync(join(dir, "escape")));
  });

  test("unknown jobs → 404; cancelling a finished job → 409", async () => {
    assert.equal((await s.api("/v1/jobs/nope")).status, 404);
    assert.equal((await s.api("/v1/jobs/..%2F..%2Fetc")).status, 404);
    const id = await submit(s, { prompt: "x", ...tiny });
    await waitState(s, id, ["done"]);
    assert.equal((await s.api(`/v1/jobs/${id}`, { method: "DELETE" })).status, 409);
    assert.equal((await s.api(`/v1/jobs/${id}/files/..%2Fjournal.jsonl`)).status, 404);
    assert.equal((await s.api(`/v1/jobs/${id}/files/video.mp4`)).status, 200);
  });

  test("a non-loopback host needs --allow-remote", () => {
    const r = wanlab(["serve", "--model", model, "--host", "0.0.0.0", "--outputs", join(dir, "o2")], { WANLAB_RUNTIME_DIR: join(dir, "run2") });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not a loopback address; listening on it needs --allow-remote/);
    const serveBad = wanlab(["serve", "--ulysses", "2"], { WANLAB_RUNTIME_DIR: join(dir, "run2") });
    assert.equal(serveBad.status, 2);
  });
});

async function readEvents(server: RunningServer, path: string, until: (type: string) => boolean): Promise<{ type: string; data: any }[]> {
  const res = await server.api(path);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  const events: { type: string; data: any }[] = [];
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const type = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (type && data) {
        events.push({ type, data: JSON.parse(data) });
        if (until(type)) return events;
      }
    }
  }
  return events;
}

describe("events and cancel", () => {
  test("a job's event stream: its state, progress per step, done with outputs; then it ends", async () => {
    const id = await submit(s, { prompt: "events", ...tiny, numInferenceSteps: 3 });
    const events = await readEvents(s, `/v1/jobs/${id}/events`, (t) => ["done", "failed", "cancelled"].includes(t));
    const types = events.map((e) => e.type);
    assert.equal(types.at(-1), "done");
    const steps = events.filter((e) => e.type === "progress" && e.data.progress.stage === "denoise").map((e) => e.data.progress.step);
    assert.ok(steps.includes(3), `denoise steps ${steps}`);
    assert.ok(events.at(-1)!.data.outputs[0].endsWith("video.mp4"));
    // a finished job's stream answers its final state at once and ends
    const again = await readEvents(s, `/v1/jobs/${id}/events`, () => false);
    assert.deepEqual(again.map((e) => e.type), ["done"]);
  });

  test("all-jobs events see queued, started and the end of every job", async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    const res = await s.api("/v1/events", { signal: controller.signal });
    const reading = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          for (const m of decoder.decode(chunk).matchAll(/^event: (.*)$/gm)) seen.push(m[1]!);
        }
      } catch {
        /* aborted */
      }
    })();
    const id = await submit(s, { prompt: "all", ...tiny });
    await waitState(s, id, ["done"]);
    await waitFor("the done event", async () => (seen.includes("done") ? true : undefined), 5000);
    controller.abort();
    await reading;
    assert.ok(["queued", "started", "progress", "done"].every((t) => seen.includes(t)), seen.join(","));
  });

  test("cancel: a queued job leaves the queue at once, a running one is cancelled in the engine and journalled before the answer", async () => {
    const running = await submit(s, { prompt: "long", ...long });
    const queued = await submit(s, { prompt: "queued", ...tiny });
    await waitFor("a step of the long job", async () => {
      const j = (await (await s.api(`/v1/jobs/${running}`)).json()) as { step: number };
      return j.step >= 1 ? true : undefined;
    });
    const q = await s.api(`/v1/jobs/${queued}`, { method: "DELETE" });
    assert.equal(q.status, 200);
    assert.equal(((await q.json()) as { state: string }).state, "cancelled");
    const r = await s.api(`/v1/jobs/${running}`, { method: "DELETE" });
    // 200 once the engine stopped (within 2 s), else 202 with cancelling: true
    const answer = (await r.json()) as { state: string; cancelling?: boolean };
    assert.ok(r.status === 200 ? answer.state === "cancelled" : r.status === 202 && answer.cancelling === true, `${r.status} ${JSON.stringify(answer)}`);
    assert.match(readFileSync(join(outputs, "journal.jsonl"), "utf8"), new RegExp(`"t":"cancel","id":"${running}"`), "journalled before the answer");
    const j = await waitState(s, running, ["cancelled"], 30_000);
    assert.match(j.error, /cancelled at step \d+\/1000/);
    assert.ok(j.step < 1000);
    assert.equal(j.outputs, undefined);
    const jq = await waitState(s, queued, ["cancelled"]);
    assert.equal(jq.startedAt, undefined, "the queued job never started");
    const dirs = readFileSync(join(outputs, "journal.jsonl"), "utf8");
    assert.match(dirs, new RegExp(`"t":"cancelled","id":"${running}"`));
    assert.ok(!existsSync(join(outputs, running)), "no output for a cancelled job");
  });
});

describe("the client", () => {
  test("connect() finds the server; generate() has the engine's interface (progress, seed, video, cancel)", async () => {
    const lab = await connect({ runtimeDir: runtime });
    assert.equal(lab.url, s.url);
    assert.equal(lab.info.layout, "official");
    const steps: number[] = [];
    const r = await lab.generate({ prompt: "a cat", seed: 42n, ...tiny, numFrames: 5, numInferenceSteps: 2 }, { onProgress: (e) => e.stage === "denoise" && steps.push(e.step) });
    assert.equal(r.params.seed, 42n);
    assert.ok(steps.includes(2));
    assert.equal(r.video.numFrames, 5);
    assert.equal(r.video.frames.length, 5 * 16 * 16 * 3);
    assert.ok(r.outputs.every((f) => existsSync(f)));
    const out = join(dir, "client.mp4");
    await r.video.save(out);
    assert.deepEqual(readFileSync(out), readFileSync(r.outputs[0]!));
    assert.ok(r.timings.denoise_s >= 0);
    await assert.rejects(lab.generate({ prompt: "x", height: 100 }), (e: unknown) => e instanceof ParamError && e.field === "height");
    const controller = new AbortController();
    await assert.rejects(
      lab.generate({ prompt: "long", ...long }, { signal: controller.signal, onProgress: (e) => e.stage === "denoise" && e.step >= 1 && controller.abort() }),
      (e: unknown) => e instanceof CancelledError && /cancelled at step/.test((e as Error).message),
    );
    const { id } = await lab.submit({ prompt: "submitted", ...tiny });
    const done = await lab.wait(id);
    assert.equal(done.state, "done");
    assert.equal((await lab.jobs("done")).some((j) => j.id === id), true);
    await lab.close();
  });
});

describe("memory budget", () => {
  test("serve --budget: a job predicted over it → 400 naming budget and what it needs, nothing queued; one that fits runs", async () => {
    const a = await startServer(["--model", model, "--outputs", join(dir, "outputs-budget"), "--budget", "40M"], join(dir, "run-budget"));
    try {
      // planned for 480x832x81, which the tiny model's float32 decode on the CPU does not fit in 40 MB
      assert.match(a.stderr(), /memory budget 40\.0 MB per device; 480x832x81 predicted at 8\.\d\d GB .*over it: such requests are refused/);
      const res = await a.api("/v1/jobs", { method: "POST", json: { prompt: "x", height: 64, width: 64, numFrames: 9 } });
      assert.equal(res.status, 400);
      const j = (await res.json()) as { error: string; field: string };
      assert.equal(j.field, "budget");
      assert.match(j.error, /64x64x9 generation is predicted to need 99\.8 MB on cpu \(encode 34\.8 MB, denoise 13\.5 MB, decode 99\.8 MB\), over the budget of 40\.0 MB/);
      assert.equal(((await (await a.api("/v1/jobs")).json()) as { jobs: unknown[] }).jobs.length, 0);
      // POST /v1/plan: the same prediction without queueing (the prompt may be left out)
      const planned = await a.api("/v1/plan", { method: "POST", json: { height: 64, width: 64, numFrames: 9 } });
      assert.equal(planned.status, 200);
      const plan = (await planned.json()) as MemoryPlanReport;
      assert.equal(plan.fits, false);
      assert.equal(plan.problem, j.error);
      assert.equal(plan.budget_bytes, 40e6);
      assert.equal(plan.peak_bytes, plan.decode_peak_bytes);
      const bad = await a.api("/v1/plan", { method: "POST", json: { height: 100 } });
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { field: string }).field, "height");
      const client = await connect({ runtimeDir: join(dir, "run-budget") });
      try {
        const fits = await client.memoryPlan(tiny);
        assert.equal(fits.fits, true);
        assert.equal(fits.problem, "");
      } finally {
        await client.close();
      }
      const id = await submit(a, { prompt: "fits", ...tiny });
      assert.equal((await waitState(a, id, ["done", "failed"])).state, "done");
    } finally {
      a.child.kill("SIGTERM");
      await a.exited;
    }
  });
});

describe("device group", () => {
  test("a 2-rank server refuses at submit a video with fewer DiT tokens than ranks (400 naming the rule, nothing queued); the next job runs", async () => {
    const g = await startServer(["--model", model, "--outputs", join(dir, "outputs-group"), "--devices", "cpu:0-1", "--ulysses", "2"], join(dir, "run-group"));
    try {
      // 16x16x1: latents 1x2x2, patches (1, 2, 2) → 1 token, the smallest video validation allows
      const res = await g.api("/v1/jobs", { method: "POST", json: { prompt: "x", ...tiny } });
      assert.equal(res.status, 400);
      const j = (await res.json()) as { error: string; field: string };
      assert.equal(j.field, "height");
      assert.match(j.error, /layout ulysses 2 x ring 1 x cfg 1: 2 sequence-parallel ranks but only 1 tokens in this video's DiT sequence \(ranks beyond tokens: every rank needs at least one\)/);
      const listed = (await (await g.api("/v1/jobs")).json()) as { jobs: unknown[] };
      assert.equal(listed.jobs.length, 0);
      assert.equal(((await (await g.api("/v1/stats")).json()) as { queueDepth: number }).queueDepth, 0);
      // 16x32x1: 2 tokens, one per rank
      const id = await submit(g, { prompt: "x", ...tiny, width: 32 });
      const done = await waitState(g, id, ["done", "failed"]);
      assert.equal(done.state, "done", done.error);
    } finally {
      g.child.kill("SIGTERM");
      await g.exited;
    }
  });
});

describe("journal, restart, shutdown", () => {
  test("a killed server resumes queued jobs and retries the interrupted one once", async () => {
    const out2 = join(dir, "outputs-restart");
    const run2 = join(dir, "run-restart");
    let a = await startServer(["--model", model, "--outputs", out2], run2);
    const interrupted = await submit(a, { prompt: "interrupted", ...long, numInferenceSteps: 6 });
    const queued = [await submit(a, { prompt: "q1", ...tiny }), await submit(a, { prompt: "q2", ...tiny })];
    await waitState(a, interrupted, ["running"]);
    a.child.kill("SIGKILL");
    await a.exited;
    a = await startServer(["--model", model, "--outputs", out2], run2);
    assert.match(a.stderr(), /resuming 3 job\(s\)/);
    for (const id of [interrupted, ...queued]) {
      const j = await waitState(a, id, ["done", "failed", "cancelled"], 120_000);
      assert.equal(j.state, "done", `${id}: ${j.error}`);
      assert.ok(j.outputs.every((f: string) => existsSync(f)));
    }
    const records = readFileSync(join(out2, "journal.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(records.filter((r) => r.id === interrupted).map((r) => r.t), ["submit", "start", "requeue", "start", "done"]);
    assert.equal(records.find((r) => r.t === "requeue").interrupted, true);
    // graceful shutdown: server.json goes away, exit code 0
    a.child.kill("SIGTERM");
    assert.equal(await a.exited, 0);
    assert.ok(!existsSync(join(run2, "server.json")));
  });

  test("a job interrupted twice is failed with the reason", async () => {
    const out3 = join(dir, "outputs-twice");
    const run3 = join(dir, "run-twice");
    let a = await startServer(["--model", model, "--outputs", out3], run3);
    const id = await submit(a, { prompt: "doomed", ...long });
    for (let i = 0; i < 2; i++) {
      await waitState(a, id, ["running"]);
      a.child.kill("SIGKILL");
      await a.exited;
      a = await startServer(["--model", model, "--outputs", out3], run3);
    }
    const j = await waitState(a, id, ["failed"]);
    assert.match(j.error, /interrupted 2 times/);
    const res = await a.api("/v1/shutdown", { method: "POST" });
    assert.equal(res.status, 202);
    assert.equal(await a.exited, 0);
  });

  test("transient engine errors are retried with backoff, then the job fails naming them; fatal ones are not retried", async () => {
    let a = await startServer(["--model", model, "--outputs", join(dir, "outputs-faults")], join(dir, "run-faults"), {}, { faults: "transient=1" });
    const id = await submit(a, { prompt: "oom", ...tiny });
    const j = await waitState(a, id, ["failed"]);
    assert.match(j.error, /out of memory .*gave up after 3 retries/);
    a.child.kill("SIGTERM");
    await a.exited;
    a = await startServer(["--model", model, "--outputs", join(dir, "outputs-fatal")], join(dir, "run-fatal"), {}, { faults: "fatal=1" });
    const f = await submit(a, { prompt: "fatal", ...tiny });
    const jf = await waitState(a, f, ["failed"]);
    assert.match(jf.error, /injected engine failure/);
    const records = readFileSync(join(dir, "outputs-fatal", "journal.jsonl"), "utf8");
    assert.doesNotMatch(records, /"t":"retry"/);
    a.child.kill("SIGTERM");
    await a.exited;
  });
});

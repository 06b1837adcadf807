// The notebook API outside Jupyter: load stages, latent previews through the addon, video.tensor(),
// per-rank charts, and the same lab attached to a running `wanlab serve` (connect() /
// open({ server })) whose close() detaches without stopping it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as wan from "../src/internals.js";
import { paramKeys } from "../src/params.js";
import { scratch, wanlab } from "./helpers.js";
import { startServer, type RunningServer } from "./serve.js";

const dir = scratch("wanlab-nbapi-");
const model = join(dir, "tiny");
before(() => assert.equal(wanlab(["make-tiny", model]).status, 0));

const small = { prompt: "a lighthouse", seed: 3, height: 32, width: 48, numFrames: 5, numInferenceSteps: 5 };

describe("in-process notebook lab", () => {
  let lab: wan.NotebookLab;
  const loads: wan.LoadEvent[] = [];
  before(async () => {
    lab = await wan.open({ model, onLoad: (e) => loads.push(e) });
  });
  after(() => lab.close());

  test("open() reports its load stages in order, each with its time", () => {
    assert.deepEqual(loads.map((e) => `${e.stage}:${e.state}`), ["model:start", "model:done", "tokenizer:start", "tokenizer:done"]);
    for (const e of loads.filter((e) => e.state === "done")) assert.ok(e.seconds! > 0 && e.seconds! < 60, JSON.stringify(e));
    assert.deepEqual(lab.info.parallel, { devices: 1, ulysses: 1, ring: 1, cfg: 1 });
    assert.equal(lab.where, "in-process");
  });

  test("preview every k: steps k, 2k, … and the last carry the current latents; the last equals the result's", async () => {
    const seen: { step: number; shape: number[]; data: Float32Array }[] = [];
    let plain = 0;
    const r = await lab.generate(small, {
      preview: { every: 2 },
      returnTensors: true,
      onProgress: (e) => {
        if (e.latents) seen.push({ step: e.step, shape: e.latents.shape, data: e.latents.data });
        else if (e.stage === "denoise" && e.step > 0) plain++;
      },
    });
    assert.deepEqual(seen.map((s) => s.step), [2, 4, 5]);
    assert.equal(plain, 2, "steps 1 and 3 carry no latents");
    for (const s of seen) assert.deepEqual(s.shape, [16, 2, 4, 6]);
    assert.deepEqual(seen.at(-1)!.data, r.tensors!.latents.data, "the last preview is the final latents");
    assert.notDeepEqual(seen[0]!.data, seen[1]!.data);
    const none: number[] = [];
    await lab.generate(small, { onProgress: (e) => e.latents && none.push(e.step) });
    assert.deepEqual(none, [], "no previews unless asked");
    await assert.rejects(lab.generate(small, { preview: { every: 0 } }), (e: Error) => e instanceof wan.ParamError && /preview.every/.test(e.message));
  });

  test("an unknown key is refused before any compute, with the server's message", async () => {
    await assert.rejects(lab.generate({ ...small, stesp: 2 } as wan.GenerateParams), (e: Error) =>
      e instanceof wan.ParamError && e.field === "stesp" && e.message === `unknown parameter 'stesp'; allowed: ${paramKeys.join(", ")}`);
    assert.deepEqual(paramKeys.slice(0, 4), ["prompt", "negativePrompt", "seed", "numInferenceSteps"]);
  });

  test("video.tensor() is float32 [F, H, W, 3] in [0, 1]: frames / 255", async () => {
    const r = await lab.generate(small);
    const t = r.video.tensor();
    assert.deepEqual(t.shape, [5, 32, 48, 3]);
    assert.ok(t.data instanceof Float32Array && t.data.length === r.video.frames.length);
    for (const i of [0, 1, 100, t.data.length - 1]) assert.equal(t.data[i], Math.fround(r.video.frames[i]! / 255));
  });

  test("memoryPlan(): the memory model for this placement; no budget, so it fits", async () => {
    const p = await lab.memoryPlan({ height: 480, width: 832, numFrames: 81 });
    assert.equal(p.device, "cpu");
    assert.equal(p.budget_bytes, -1);
    assert.equal(p.fits, true);
    assert.equal(p.peak_bytes, Math.max(p.encode_peak_bytes, p.denoise_peak_bytes, p.decode_peak_bytes));
    assert.ok((await lab.memoryPlan({ height: 480, width: 832, numFrames: 81, tiled: true })).decode_peak_bytes < p.decode_peak_bytes);
    // shown as a chart: stacked weights and activations per stage
    const bundle = p.mimeBundle();
    const fig = bundle["application/vnd.plotly.v1+json"] as { data: { name: string; y: number[] }[] };
    assert.deepEqual(fig.data.map((t) => t.name), ["DiT weights", "text encoder", "VAE", "activations"]);
    const stacked = [0, 1, 2].map((i) => fig.data.reduce((a, t) => a + t.y[i]!, 0));
    assert.ok(Math.abs(stacked[2]! - p.decode_peak_bytes / 1e9) < 1e-9, "the decode bar stacks to the decode peak");
    assert.match(String(bundle["text/plain"]), /^predicted memory on cpu: peak \d+\.\d\d GB \(encode/);
  });

  test("plot.memoryPlan: the budget as a line, measured CUDA peaks as markers", () => {
    const plan = { device: "cuda:0", dit_resident_bytes: 10e9, dit_streamed_bytes: 1.4e9, t5_bytes: 0, t5_streamed_bytes: 0, vae_bytes: 0.25e9,
      t5_activation_bytes: 0, dit_activation_bytes: 4e9, vae_activation_bytes: 1e9, vae_encode_activation_bytes: 0, resident_bytes: 10.25e9,
      encode_peak_bytes: 10.25e9, denoise_peak_bytes: 15.65e9, decode_peak_bytes: 11.25e9, peak_bytes: 15.65e9,
      host_pinned_bytes: 9e9, host_t5_bytes: 0, host_vae_bytes: 0, host_activation_bytes: 0, host_bytes: 9e9,
      budget_bytes: 16e9, fits: true, problem: "" };
    const timings = { encode_s: 0, denoise_s: 0, decode_s: 0, step_s: [], predicted_peak_bytes: { encode: {}, denoise: {}, decode: {} },
      device_peak_bytes: { encode: { "cuda:0": 10.3e9 }, denoise: { "cuda:0": 15.5e9 }, decode: { "cuda:0": 11e9 } } };
    // lab.stats() of a CUDA run: predicted and measured per stage side by side
    const stats = wan.statsFigure({ timings: { ...timings, step_s: [1, 1], predicted_peak_bytes: { encode: { "cuda:0": 10e9 }, denoise: { "cuda:0": 15e9 }, decode: { "cuda:0": 11e9 } } },
      params: { width: 832, height: 480, numFrames: 81, numInferenceSteps: 2, seed: 1n } } as unknown as wan.GenerateResult);
    assert.deepEqual(stats.data.filter((t) => String(t.name).endsWith("cuda:0")).map((t) => [t.name, t.y]),
      [["predicted, cuda:0", [10, 15, 11]], ["measured, cuda:0", [10.3, 15.5, 11]]]);
    const fig = wan.plot.memoryPlan(plan, timings);
    assert.deepEqual(fig.data.map((t) => t.name), ["DiT weights", "DiT blocks streamed in", "VAE", "activations", "budget 16.00 GB", "measured peak"]);
    assert.deepEqual(fig.data.at(-1)!.y, [10.3, 15.5, 11]);
    assert.match(String(fig.mimeBundle()["text/plain"]), /peak 15\.65 GB · host 9\.00 GB .* — fits the budget$/);
    // an offloaded text encoder is on the device while encoding only
    const offloaded = wan.plot.memoryPlan({ ...plan, t5_streamed_bytes: 11.4e9 });
    assert.deepEqual(offloaded.data.find((t) => t.name === "text encoder brought in")!.y, [11.4, 0, 0]);
  });

  test("stats() draws the last generation; one rank gives no per-rank charts and says why", async () => {
    const fig = lab.stats();
    assert.ok(fig.mimeBundle()["application/vnd.plotly.v1+json"]);
    // memory per stage: the prediction on the CPU (no measured allocator peak there)
    const last = lab.history.at(-1)!;
    const mem = fig.data.find((t) => t.name === "predicted, cpu")!;
    assert.deepEqual(mem.y, (["encode", "denoise", "decode"] as const).map((s) => last.timings.predicted_peak_bytes[s].cpu! / 1e9));
    assert.ok(!fig.data.some((t) => String(t.name).startsWith("measured")));
    const comm = wan.plot.communication(lab.history.at(-1)!);
    assert.equal(comm.data.length, 0);
    assert.match(String(comm.mimeBundle()["text/plain"]), /no per-rank timings: this generation ran on one rank/);
  });
});

describe("device group in the notebook lab", () => {
  test("info.parallel, rank rows, and the compute-vs-communication chart from timings.ranks", async () => {
    const lab = await wan.open({ model, devices: "cpu:0-1", ulysses: 1, ring: 2 });
    try {
      assert.deepEqual(lab.info.parallel, { devices: 2, ulysses: 1, ring: 2, cfg: 1 });
      const r = await lab.generate({ ...small, numInferenceSteps: 2 }, { preview: { every: 1 }, onProgress: () => {} });
      const ranks = r.timings.ranks!;
      assert.equal(ranks.length, 2);
      const fig = wan.plot.communication(r);
      const labels = ranks.map((c, i) => `rank ${c.rank ?? i}${c.device ? ` (${c.device})` : ""}`);
      assert.deepEqual(fig.data.map((d) => d.x), [labels, labels]);
      assert.match(labels[1]!, /^rank 1( \(cpu:1\))?$/);
      assert.deepEqual(fig.data[1]!.y, ranks.map((c) => c.comm_s));
      assert.ok(ranks.every((c) => c.comm_s > 0 && c.bytes_sent > 0));
      const mem = wan.plot.memory(r);
      if (ranks.every((c) => typeof c.peak_bytes === "number" && c.peak_bytes >= 0)) assert.deepEqual(mem.data[0]!.y, ranks.map((c) => c.peak_bytes! / 2 ** 20));
      else assert.match(String(mem.mimeBundle()["text/plain"]), /not measured by this engine build or device/);
      // the same data with and without the engine's per-rank peaks
      const unmeasured = { ...r.timings, ranks: ranks.map((c) => ({ ...c, peak_bytes: -1 })) };
      assert.equal(wan.plot.memory(unmeasured).data.length, 0);
      const measured = { ...r.timings, ranks: ranks.map((c, i) => ({ ...c, peak_bytes: (i + 1) * 2 ** 20, compute_s: 0.5 })) };
      assert.deepEqual(wan.plot.memory(measured).data[0]!.y, [1, 2]);
      assert.deepEqual(wan.plot.communication(measured).data[0]!.y, [0.5, 0.5]);
      assert.equal(wan.plot.communication(measured).data[0]!.name, "compute");
    } finally {
      await lab.close();
    }
  });
});

describe("the notebook lab attached to wanlab serve", () => {
  let server: RunningServer;
  const runtimeDir = join(dir, "runtime");
  before(async () => {
    server = await startServer(["--model", model, "--outputs", join(dir, "outputs")], runtimeDir);
  });
  after(async () => {
    server.child.kill("SIGTERM");
    await server.exited;
  });

  test("connect() finds it through server.json: generate with progress → video, stats; close() detaches", async () => {
    const lab = await wan.connect({ runtimeDir });
    assert.equal(lab.where, server.url);
    assert.equal(lab.info.dir, model);
    assert.deepEqual(lab.info.parallel, { devices: 1, ulysses: 1, ring: 1, cfg: 1 });
    const steps: number[] = [];
    const r = await lab.generate(small, { onProgress: (e) => e.stage === "denoise" && steps.push(e.step), signal: new AbortController().signal });
    assert.ok(steps.includes(5), JSON.stringify(steps));
    assert.equal(r.video.frames.length, 5 * 32 * 48 * 3);
    assert.deepEqual(r.video.tensor().shape, [5, 32, 48, 3]);
    assert.equal(r.params.seed, 3n);
    assert.match(r.id, /\S/);
    assert.equal(lab.history.length, 1);
    assert.ok(lab.stats().mimeBundle()["application/vnd.plotly.v1+json"]);
    assert.equal(typeof r.mimeBundle, "function");
    // the server's prediction (POST /v1/plan) for the same engine placement
    const plan = await lab.memoryPlan({ height: 32, width: 48, numFrames: 5 });
    assert.equal(plan.device, "cpu");
    assert.ok(plan.fits && plan.peak_bytes > 0);
    await lab.close();
    await assert.rejects(lab.generate(small), /closed/);
    // the server and its model are still there
    assert.equal((await server.api("/v1/health")).status, 200);
    const again = await wan.open({ server: { runtimeDir } });
    const r2 = await again.generate(small);
    assert.deepEqual(r2.video.frames, r.video.frames, "same seed, same server, same video");
    await again.close();
    assert.equal((await server.api("/v1/health")).status, 200);
  });

  test("aborting the signal cancels the job; the next generation runs", async () => {
    const lab = await wan.connect({ runtimeDir });
    const ac = new AbortController();
    const p = lab.generate({ ...small, height: 32, width: 32, numFrames: 1, numInferenceSteps: 1000 }, { signal: ac.signal, onProgress: (e) => e.stage === "denoise" && e.step >= 2 && ac.abort() });
    await assert.rejects(p, (e: Error) => e instanceof wan.CancelledError);
    const r = await lab.generate({ ...small, numInferenceSteps: 1 });
    assert.equal(r.params.numInferenceSteps, 1);
    await lab.close();
  });

  test("open({ server }) refuses engine options and another model", async () => {
    await assert.rejects(wan.open({ server: { runtimeDir }, devices: "cpu:0-1" }), /'devices' cannot be combined with server/);
    await assert.rejects(wan.open({ server: { runtimeDir }, transport: "gloo" }), /'transport' cannot be combined with server/);
    await assert.rejects(wan.open({ server: { runtimeDir }, model: join(dir, "other") }), /serves .*, not /);
    await assert.rejects(wan.connect({ runtimeDir: join(dir, "nowhere") }), /no wanlab server is running/);
  });
});

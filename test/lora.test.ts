// LoRAs end to end: `wanlab generate --lora FILE[:SCALE]` and `loras` through the server, on the
// tiny model against DiffSynth-Studio's fused load_lora (test/golden/make_lora.py); the sidecar
// and the manifest record each LoRA's path, fingerprint and scale.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { root, scratch, wanlab } from "./helpers.js";
import { readSafetensors, relL2 } from "./safetensors.js";
import { startServer, waitState, type RunningServer } from "./serve.js";

const dir = scratch("wanlab-lora-");
const model = join(dir, "tiny");
const data = join(root, "test", "golden", "data");
const golden = readSafetensors(join(data, "lora.safetensors"));
const lora = (name: string) => join(data, "lora", `${name}.safetensors`);
const kase = JSON.parse(golden.metadata.case!);
const caseFlags = ["--prompt", kase.prompt, "--negative-prompt", kase.negative_prompt, "--seed", kase.seed, "--height", String(kase.height),
  "--width", String(kase.width), "--num-frames", String(kase.num_frames), "--steps", String(kase.num_inference_steps),
  "--cfg-scale", String(kase.cfg_scale), "--sigma-shift", String(kase.sigma_shift)];
let s: RunningServer | undefined;

before(() => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
});
after(async () => {
  if (s && s.child.exitCode === null) {
    s.child.kill("SIGTERM");
    await s.exited;
  }
});

describe("wanlab inspect --lora", () => {
  test("the LoRAs' working copies count in the peak and against the budget", () => {
    const args = ["inspect", model, "--json", "--height", "48", "--width", "64", "--num-frames", "5"];
    const plain = wanlab(args), withLora = wanlab([...args, "--lora", `${lora("lora2_peft")}:0.5`]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal(withLora.status, 0, withLora.stderr);
    const a = JSON.parse(plain.stdout).memory, b = JSON.parse(withLora.stdout).memory;
    assert.equal(a.dit_lora_bytes, 0);
    assert.ok(b.dit_lora_bytes > 0, String(b.dit_lora_bytes));
    assert.equal(b.rank0_peak_bytes - a.rank0_peak_bytes, b.dit_lora_bytes);
    // a budget the plain plan fits exactly is too small with the LoRA
    const tight = wanlab([...args, "--lora", lora("lora2_peft"), "--budget", String(a.rank0_peak_bytes)]);
    assert.equal(JSON.parse(tight.stdout).memory.budget.fits, false);
    const text = wanlab(args.filter((x) => x !== "--json").concat("--lora", lora("lora2_peft")));
    assert.match(text.stdout, /LoRA working copies of the DiT \(--lora\) +[\d.]+ [kMG]?B/);
    const bad = wanlab([...args, "--lora", join(dir, "missing.safetensors")]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /missing\.safetensors/);
  });
});

describe("wanlab generate --lora", () => {
  test("two LoRAs at 0.7 and -0.3 give DiffSynth's latents; the sidecar records path, fingerprint and scale", () => {
    const out = join(dir, "cli.mp4"), tensors = join(dir, "cli.safetensors");
    const r = wanlab(["generate", "--model", model, ...caseFlags, "--lora", `${lora("lora1_kohya_comfy")}:0.7`,
      "--lora", `${lora("lora2_peft")}:-0.3`, "--output", out, "--save-tensors", tensors]);
    assert.equal(r.status, 0, r.stderr);
    const latents = readSafetensors(tensors).tensors.latents!.f32!;
    const d = relL2(latents, golden.tensors["fused.latents"]!.f32!);
    assert.ok(d < 1e-5, `latents rel L2 ${d}`);
    const meta = JSON.parse(readFileSync(`${out}.json`, "utf8"));
    assert.deepEqual(meta.params.loras, [{ path: lora("lora1_kohya_comfy"), scale: 0.7, strict: true }, { path: lora("lora2_peft"), scale: -0.3, strict: true }]);
    const on = meta.timings.placement.dit_loras.loras;
    assert.deepEqual(on.map((l: { path: string; scale: number }) => [l.path, l.scale]), [[lora("lora1_kohya_comfy"), 0.7], [lora("lora2_peft"), -0.3]]);
    for (const l of on) assert.match(l.fingerprint, /^\d+-\d+-[0-9a-f]{16}$/);
  });

  test("a scale that is not a number and a LoRA for another model are refused before the model runs, naming them", () => {
    const nan = wanlab(["generate", "--model", model, ...caseFlags, "--lora", `${lora("lora2_peft")}:nan`, "--output", join(dir, "nan.mp4")]);
    assert.equal(nan.status, 2, nan.stderr);
    assert.match(nan.stderr, /--lora .*lora2_peft\.safetensors:nan: the scale after ':' must be a decimal number, got 'nan'/);
    const bad = wanlab(["generate", "--model", model, ...caseFlags, "--lora", join(data, "t2v.safetensors"), "--output", join(dir, "bad.mp4")]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /t2v\.safetensors holds no LoRA keys/);
  });
});

describe("server: loras in a job", () => {
  test("a job with loras matches DiffSynth and its manifest records them; a bad one fails naming the file", async () => {
    s = await startServer(["--model", model, "--port", "0", "--outputs", join(dir, "outputs")], join(dir, "run"));
    const body = { prompt: kase.prompt, negativePrompt: kase.negative_prompt, seed: kase.seed, height: kase.height, width: kase.width,
      numFrames: kase.num_frames, numInferenceSteps: kase.num_inference_steps, cfgScale: kase.cfg_scale, sigmaShift: kase.sigma_shift,
      saveTensors: true, loras: [{ path: lora("lora1_peft_default"), scale: 0.7 }, { path: lora("lora2_peft"), scale: -0.3 }] };
    const res = await s.api("/v1/jobs", { method: "POST", json: body });
    assert.equal(res.status, 202, await res.clone().text());
    const j = await waitState(s, ((await res.json()) as { id: string }).id, ["done", "failed"]);
    assert.equal(j.state, "done", j.error);
    const manifest = JSON.parse(readFileSync(j.outputs.find((f: string) => f.endsWith("manifest.json")), "utf8"));
    assert.deepEqual(manifest.params.loras.map((l: { scale: number }) => l.scale), [0.7, -0.3]);
    assert.equal(manifest.timings.engine.placement.dit_loras.loras[0].path, lora("lora1_peft_default"));
    const latents = readSafetensors(j.outputs.find((f: string) => f.endsWith(".safetensors"))).tensors.latents!.f32!;
    assert.ok(relL2(latents, golden.tensors["fused.latents"]!.f32!) < 1e-5);

    // POST /v1/plan counts the LoRAs' working copies in the resident bytes.
    const plan = async (loras: unknown[]) => (await (await s!.api("/v1/plan", { method: "POST", json: { ...body, loras } })).json()) as Record<string, number>;
    const [without, within] = [await plan([]), await plan(body.loras)];
    assert.equal(without.dit_lora_bytes, 0);
    assert.ok(within.dit_lora_bytes > 0 && within.resident_bytes === without.resident_bytes + within.dit_lora_bytes);

    const shape = await s.api("/v1/jobs", { method: "POST", json: { ...body, loras: [{ file: "x" }] } });
    assert.equal(shape.status, 400);
    const missing = await s.api("/v1/jobs", { method: "POST", json: { ...body, loras: [{ path: join(dir, "none.safetensors") }] } });
    const text = await missing.text();
    if (missing.status === 202) {
      const f = await waitState(s, JSON.parse(text).id, ["done", "failed"]);
      assert.equal(f.state, "failed");
      assert.match(f.error, /none\.safetensors does not exist/);
    } else {
      assert.equal(missing.status, 400, text);
      assert.match(text, /none\.safetensors does not exist/);
    }
  });
});

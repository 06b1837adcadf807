// The engine's runtime guards through the addon: a cancel inside a step of a default-size job
// (480x832x81) rejects within seconds with a CancelledError that says where it stopped (stage,
// step, block), the model stays loaded; a model file changed underneath refuses the next job
// naming the file; registerFatalCleanup takes the files a fatal SIGBUS removes.
import assert from "node:assert/strict";
import { readdirSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CancelledError, open, type EngineLab } from "../src/engine.js";
import { native, registerFatalCleanup } from "../src/native.js";
import { scratch, wanlab } from "./helpers.js";

const dir = scratch("wanlab-engine-cancel-");
const model = join(dir, "tiny");
before(() => assert.equal(wanlab(["make-tiny", model]).status, 0));

describe("cancel inside a step", () => {
  let lab: EngineLab;
  before(async () => {
    lab = await open({ model });
  });
  after(() => lab.close());

  test("an abort 1 s into a 480x832x81 job rejects within 3 s naming step and block; the next job runs", async () => {
    const controller = new AbortController();
    let abortedAt = 0;
    const timer = setTimeout(() => {
      abortedAt = performance.now();
      controller.abort();
    }, 1000);
    const err = await lab
      .generate({ prompt: "a lighthouse at dusk", seed: 1, height: 480, width: 832, numFrames: 81, numInferenceSteps: 50, cfgScale: 1 }, { signal: controller.signal })
      .then(() => undefined, (e: unknown) => e);
    const latency = (performance.now() - abortedAt) / 1000;
    clearTimeout(timer);
    assert.ok(err instanceof CancelledError, String(err));
    assert.match(err.message, /^cancelled at step 1\/50, block [12]\/2$/);
    assert.equal(err.stage, "denoise");
    assert.equal(err.step, 1);
    assert.equal(err.steps, 50);
    assert.ok(err.block === 1 || err.block === 2, String(err.block));
    assert.equal(err.blocks, 2);
    assert.equal(err.chunk, undefined);
    assert.ok(latency < 3, `cancel took ${latency.toFixed(2)} s`);
    const again = await lab.generate({ prompt: "a dog", seed: 1, height: 32, width: 32, numFrames: 1, numInferenceSteps: 2 });
    assert.equal(again.video.numFrames, 1);
  });

  test("an abort during decode names the chunk", async () => {
    const controller = new AbortController();
    const err = await lab
      .generate({ prompt: "a dog", seed: 1, height: 32, width: 32, numFrames: 9, numInferenceSteps: 2, cfgScale: 1 }, {
        signal: controller.signal,
        onProgress: (e) => e.stage === "decode" && e.step === 1 && controller.abort(),
      })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof CancelledError, String(err));
    // The abort reaches the engine through the event loop, so it may land a chunk later.
    assert.match(err.message, /^cancelled during decode, chunk [23]\/3$/);
    assert.equal(err.stage, "decode");
    assert.equal(err.chunks, 3);
    assert.equal(err.step, undefined);
  });
});

describe("model files changed underneath", () => {
  test("a model file whose mtime changed since open refuses the next job naming the file", async () => {
    const own = join(dir, "tiny-changed");
    assert.equal(wanlab(["make-tiny", own]).status, 0);
    const lab = await open({ model: own });
    try {
      const file = readdirSync(own).map((f) => join(own, f)).find((f) => f.endsWith(".safetensors"))!;
      const st = statSync(file);
      utimesSync(file, st.atime, new Date(st.mtimeMs - 3_600_000));
      await assert.rejects(
        lab.generate({ prompt: "a dog", seed: 1, height: 32, width: 32, numFrames: 1, numInferenceSteps: 1 }),
        (e: Error) => e.message.includes(`model file ${file} was modified (its mtime changed) since the engine loaded it`) && /reopen the model/.test(e.message),
      );
    } finally {
      await lab.close();
    }
  });
});

describe("registerFatalCleanup", () => {
  test("is exported, takes an array of strings, and refuses anything else naming the argument", () => {
    assert.equal(typeof native().registerFatalCleanup, "function");
    registerFatalCleanup([join(dir, "server.json")]);
    registerFatalCleanup([]);
    assert.throws(() => registerFatalCleanup("x" as unknown as string[]), /paths must be an array of strings/);
    assert.throws(() => registerFatalCleanup([1 as unknown as string]), /paths must be an array of strings/);
    assert.throws(() => native().registerFatalCleanup([1 as unknown as string]), /paths\[0\] must be a string/);
    assert.throws(() => registerFatalCleanup(Array(9).fill("/tmp/x")), /at most 8 paths, got 9/);
  });
});

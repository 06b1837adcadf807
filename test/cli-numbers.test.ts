// Strict numbers and flags in every command: an integer is a decimal integer, a number a finite
// decimal; a flag given twice is an error unless it is repeatable. Each refusal is a usage error
// (exit 2) naming the flag, the value and the allowed range, before anything loads.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { scratch, wanlab } from "./helpers.js";
import { startServer } from "./serve.js";

const dir = scratch();
// Refusals come before the model is read: a path that is no model shows it.
const model = join(dir, "no-model");

function usage(args: string[], re: RegExp): void {
  const r = wanlab(args);
  assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
  assert.match(r.stderr, re, args.join(" "));
  assert.doesNotMatch(r.stderr, /^(loading|generate):|does not exist/m, "refused before the model is read");
}

describe("integers are decimal integers", () => {
  for (const bad of ["0x40", " 64", "64 ", "1e0", "64.0", "+64", "", "٦٤"]) {
    test(`generate --height '${bad}' is refused naming the flag, the value and the range`, () => {
      usage(["generate", "--model", model, "--prompt", "x", "--height", bad],
        new RegExp(`^wanlab generate: --height must be an integer, got '${bad.replace(/[+.]/g, "\\$&")}' \\(a decimal integer from 16 to 4096\\)$`, "m"));
    });
  }

  test("every integer flag of generate, inspect, make-tiny, bench and serve is held to it", () => {
    usage(["generate", "--model", model, "--prompt", "x", "--num-inference-steps", "1e1"], /--num-inference-steps must be an integer, got '1e1' \(a decimal integer from 1 to 1000\)/);
    usage(["generate", "--model", model, "--prompt", "x", "--width", "0x40"], /--width must be an integer, got '0x40'/);
    usage(["generate", "--model", model, "--prompt", "x", "--num-frames", "5.0"], /--num-frames must be an integer, got '5\.0' \(a decimal integer from 1 to 1001\)/);
    usage(["generate", "--model", model, "--prompt", "x", "--seed", " 5"], /--seed must be an integer, got ' 5' \(a decimal integer from 0 to 18446744073709551615\)/);
    usage(["generate", "--model", model, "--prompt", "x", "--seed", "0x10"], /--seed must be an integer, got '0x10'/);
    usage(["generate", "--model", model, "--prompt", "x", "--fps", "1e1"], /--fps must be an integer, got '1e1' \(a decimal integer from 1 to 240\)/);
    usage(["generate", "--model", model, "--prompt", "x", "--crf", "+5"], /--crf must be an integer, got '\+5'/);
    usage(["inspect", model, "--height", "0x40"], /--height must be an integer, got '0x40' \(a decimal integer from 16 to 8192\)/);
    usage(["inspect", model, "--ulysses", "2.0"], /--ulysses must be an integer, got '2\.0'/);
    usage(["make-tiny", join(dir, "t"), "--seed", "1e0"], /--seed must be an integer, got '1e0'/);
    usage(["bench", "dit", "--layers", " 2"], /--layers must be an integer, got ' 2' \(a decimal integer from 1 to 100\)/);
    usage(["bench", "parallel", "--steps", "0x2"], /--steps must be an integer, got '0x2'/);
    usage(["serve", "--model", model, "--port", "0x50"], /--port must be an integer, got '0x50' \(a decimal integer from 0 to 65535\)/);
    usage(["serve", "--model", model, "--grace", "3.5"], /--grace must be an integer, got '3\.5'/);
    usage(["generate", "--model", model, "--prompt", "x", "--nnodes", "2 "], /--nnodes must be an integer, got '2 '/);
  });
});

describe("numbers are finite decimals", () => {
  test("generate's number flags refuse hex, spaces, '+', Infinity and overflow, naming the range", () => {
    usage(["generate", "--model", model, "--prompt", "x", "--cfg-scale", "0x10"], /--cfg-scale must be a number, got '0x10' \(a decimal number in \[0, 100\]\)/);
    usage(["generate", "--model", model, "--prompt", "x", "--cfg-scale", " 5"], /--cfg-scale must be a number, got ' 5'/);
    usage(["generate", "--model", model, "--prompt", "x", "--sigma-shift", "Infinity"], /--sigma-shift must be a number, got 'Infinity' \(a decimal number in \(0, 100\]\)/);
    usage(["generate", "--model", model, "--prompt", "x", "--tea-cache-l1-thresh", "1e999"], /--tea-cache-l1-thresh must be a number, got '1e999' \(a decimal number in \[0, 10\]\)/);
    usage(["generate", "--model", model, "--prompt", "x", "--denoising-strength", "+0.5"], /--denoising-strength must be a number, got '\+0\.5' \(a decimal number in \(0, 1\]\)/);
    usage(["generate", "--model", model, "--prompt", "x", "--timeout", ""], /--timeout must be a number, got '' \(a decimal number in \(0, 86400\]\)/);
    usage(["generate", "--model", model, "--prompt", "x", "--budget", "1e400"], /--budget must be bytes like 24G, 7e9 or 7000000000, or auto, got '1e400'/);
    // decimals in range still reach the parameter check (here: the range, by the parameter's flag)
    usage(["generate", "--model", model, "--prompt", "x", "--cfg-scale", "100.5"], /--cfg-scale must be a number in \[0, 100\], got 100\.5/);
    usage(["generate", "--model", model, "--prompt", "x", "--sigma-shift=-.5"], /--sigma-shift must be a number in \(0, 100\], got -0\.5/);
  });
});

describe("a flag is given once unless it repeats", () => {
  test("a repeated flag is a usage error naming it, whatever the command", () => {
    usage(["generate", "--model", model, "--prompt", "x", "--height", "16", "--height", "32"], /^wanlab generate: --height is given more than once; give it once$/m);
    usage(["generate", "--model", model, "--prompt", "x", "--output=a.mp4", "--output", "b.mp4"], /--output is given more than once/);
    usage(["generate", "--model", model, "--prompt", "x", "--overwrite", "--overwrite"], /--overwrite is given more than once/);
    usage(["inspect", model, "--json", "--json"], /--json is given more than once/);
    usage(["serve", "--port", "1", "--port", "2"], /--port is given more than once/);
    usage(["make-tiny", join(dir, "t"), "--layout", "official", "--layout", "diffusers"], /--layout is given more than once/);
  });

  test("kernel install --env repeats", () => {
    const prefix = join(dir, "prefix");
    const r = wanlab(["kernel", "install", "--prefix", prefix, "--no-jupyter", "--env", "A=1", "--env", "B=2"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /installed kernel 'wanlab'/);
  });
});

describe("serve --budget", () => {
  test("a bad value names auto and none", () => {
    usage(["serve", "--model", model, "--budget", "lots"], /--budget must be bytes like 24G, 7e9 or 7000000000, auto or none, got 'lots'/);
  });

  test("serve_budget_none_turns_the_default_host_guard_off: a job predicted beyond the host is refused without it, planned as fitting with it", async () => {
    const tiny = join(dir, "tiny");
    assert.equal(wanlab(["make-tiny", tiny]).status, 0);
    const huge = { prompt: "x", height: 4096, width: 4096, numFrames: 1001 };
    for (const none of [false, true]) {
      const s = await startServer(["--model", tiny, "--port", "0", "--outputs", join(dir, `out-${none}`), ...(none ? ["--budget", "none"] : [])],
        join(dir, `run-${none}`), { WANLAB_HOME: join(dir, "home") });
      try {
        const plan = (await (await s.api("/v1/plan", { method: "POST", json: huge })).json()) as { fits: boolean };
        assert.equal(plan.fits, none, JSON.stringify(plan));
        if (none) assert.doesNotMatch(s.stderr(), /no --budget: jobs predicted over/);
        else assert.match(s.stderr(), /no --budget: jobs predicted over .* are refused at submit; --budget none accepts them/);
      } finally {
        s.child.kill("SIGTERM");
        await s.exited;
      }
    }
  });
});

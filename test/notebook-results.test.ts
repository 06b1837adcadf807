// Notebook results and errors as an exported notebook holds them: a notebook executed through
// nbclient on the wanlab kernel, as `jupyter nbconvert --execute` runs it, with and without
// --allow-errors, and its .ipynb JSON checked: execution counts, one execute_result per value
// (images for frameStrip / grid / an array of results, no second text line), plain seeds,
// plotly.js carried once, and ParamError / CancelledError / engine errors as Jupyter errors with a
// one-line message and no kernel-internal frames.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { root, scratch, wanlab } from "./helpers.js";

const python = "/usr/bin/python3";
const haveJupyter = spawnSync(python, ["-c", "import nbclient, nbformat, jupyter_client"], { stdio: "ignore" }).status === 0;
// CI installs Jupyter (.ci/run); there a missing one is a failure, not a skip.
const skip = !haveJupyter && !process.env.CI ? "Debian's python3-nbclient is not installed" : false;

const dir = scratch("wanlab-nbres-");
const prefix = join(dir, "prefix");
const model = join(dir, "tiny");

type Output = { output_type: string; name?: string; text?: string; data?: Record<string, string>; ename?: string; evalue?: string; traceback?: string[]; execution_count?: number };
type Cell = { source: string; execution_count: number | null; outputs: Output[] };

function notebook(file: string, sources: string[]): string {
  const path = join(dir, file);
  const cells = sources.map((source, i) => ({ id: `c${i}`, cell_type: "code", metadata: {}, execution_count: null, outputs: [], source }));
  const metadata = { kernelspec: { name: "wanlab", display_name: "wanlab (TypeScript)", language: "typescript" } };
  writeFileSync(path, JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata, cells }));
  return path;
}

/** Runs it as nbconvert --execute [--allow-errors] does; the executed notebook and nbclient's error. */
function execute(path: string, allowErrors: boolean): { cells: Cell[]; raw: string; error: { ename: string; evalue: string } | null } {
  const out = path.replace(/\.ipynb$/, allowErrors ? ".allow.out.ipynb" : ".out.ipynb");
  const env = { ...process.env, JUPYTER_PATH: join(prefix, "share", "jupyter"), JUPYTER_PLATFORM_DIRS: "1" };
  const r = spawnSync(python, [join(root, "test", "python", "notebook_runs.py"), path, out, ...(allowErrors ? ["--allow-errors"] : [])], { cwd: dir, env, encoding: "utf8", timeout: 180_000 });
  assert.equal(r.status, 0, r.stderr);
  const raw = readFileSync(out, "utf8");
  return { cells: JSON.parse(raw).cells, raw, error: JSON.parse(r.stdout).error };
}

const text = (o: Output) => (Array.isArray(o.text) ? o.text.join("") : o.text ?? "");
const plain = (o: Output) => [o.data?.["text/plain"] ?? ""].flat().join("");
const internal = /evalmachine|node:vm|node:internal|[\\/]tslab[\\/]|dist[\\/]src|params\.js/;

describe("notebook results and errors in the executed .ipynb", { skip }, () => {
  before(() => {
    assert.equal(wanlab(["kernel", "install", "--prefix", prefix]).status, 0);
    assert.equal(wanlab(["make-tiny", model]).status, 0);
  });

  const small = `{ prompt: "a kite", height: 32, width: 32, numFrames: 5, numInferenceSteps: 2`;
  const long = `{ prompt: "long", height: 64, width: 64, numFrames: 5, numInferenceSteps: 1000 }`;
  const cells = [
    `import * as wan from "wanlab";\nconst lab = await wan.open({ model: ${JSON.stringify(model)} });\nlab.info.layout`,
    `const a = await lab.generate(${small}, seed: 1 });\nconst b = await lab.generate(${small}, seed: 2, cfgScale: 3 });\na`,
    `wan.frameStrip(a)`,
    `wan.plot.grid([a, b], { cols: 2, labels: ["first kite", "second kite"] })`,
    `wan.plot.compare(a, b)`,
    `[a, b]`,
    `a.params.seed`,
    `console.log("seed", a.params.seed, { seed: a.params.seed });`,
    `lab.stats()`,
    `wan.plot.bar(["x", "y"], [1, 2], { title: { text: "a second chart" } })`,
    `await lab.generate({ prompt: "a kite", height: 32, width: 32, numInferenceSteps: 0 });`,
    `await lab.generate({ ...${small} }, stesp: 3 } as any);`,
    `const ac = new AbortController();\nsetTimeout(() => ac.abort(), 500);\nawait lab.generate(${long}, { signal: ac.signal });`,
    `await wan.open({ model: ${JSON.stringify(model)}, devices: "cuda:99" });`,
    `const stop = new AbortController();\nconst pending = lab.generate(${long}, { signal: stop.signal });\n"started"`,
    `stop.abort();\nawait new Promise((r) => setTimeout(r, 800));\n"after"`,
    `1 + 1`,
  ];

  test("with --allow-errors every cell runs, numbered In [1]… in order, and the errors are Jupyter errors", () => {
    const { cells: out, raw, error } = execute(notebook("results.ipynb", cells), true);
    assert.equal(error, null);
    out.forEach((c, i) => {
      assert.equal(c.execution_count, i + 1, `cell ${i}: execution_count`);
      assert.ok(c.outputs.length > 0, `cell ${i} has outputs: ${c.source}`);
      for (const o of c.outputs) if (o.output_type === "execute_result") assert.equal(o.execution_count, i + 1);
    });
    const result = (i: number) => {
      const r = out[i]!.outputs.filter((o) => o.output_type === "execute_result");
      assert.equal(r.length, 1, `cell ${i}: one execute_result`);
      return r[0]!;
    };
    // Rich values: one output each, no text line after them.
    for (const i of [2, 3, 4, 5, 8, 9]) assert.equal(out[i]!.outputs.length, 1, `cell ${i}: ${JSON.stringify(out[i]!.outputs.map((o) => o.output_type))}`);
    assert.ok(!out[1]!.outputs.some((o) => o.output_type === "stream"), "no text dump under the video");
    assert.ok(result(1).data!["image/gif"] && /<video/.test(String(result(1).data!["text/html"])));
    assert.ok(result(2).data!["image/png"], "frameStrip is an image");
    assert.match(plain(result(2)), /^frame strip: 5 frames of 32×32/);
    assert.ok(result(3).data!["image/png"], "grid is an image");
    assert.ok(String(result(3).data!["text/html"]).includes("first kite") && String(result(3).data!["text/html"]).includes("second kite"), "labelled tiles");
    assert.ok(String(result(4).data!["text/html"]).match(/<video/g)?.length === 2, "compare: two players");
    assert.match(plain(result(4)), /seed 1, cfg 5 \| seed 2, cfg 3/, "captions from the parameters that differ");
    assert.ok(result(5).data!["image/png"], "an array of results shows as a grid");
    assert.match(plain(result(5)), /^grid of 2 videos/);
    assert.equal(plain(result(6)), "1", "a seed is a plain integer");
    assert.equal(text(out[7]!.outputs[0]!), "seed 1 { seed: 1 }\n");
    // Charts: titles placed, stats subplots titled, plotly.js once.
    const stats = result(8).data!["application/vnd.plotly.v1+json"] as unknown as { layout: { annotations: { text: string }[]; title: { text: string } } };
    assert.deepEqual(stats.layout.annotations.map((a) => a.text).slice(0, 2), ["seconds per denoising step", "seconds per component"]);
    assert.equal(raw.split('id=\\"wanlab-plotly-js\\"').length - 1, 1, "plotly.js is carried by one output");
    assert.ok(String(result(8).data!["text/html"]).includes("wanlab-plotly-js"), "by the first chart");
    assert.ok(String(result(9).data!["text/html"]).length < 5000, "later charts wait for window.Plotly");
    assert.ok(raw.length < 4_000_000, `the executed notebook is ${raw.length} bytes`);
    // Errors.
    const err = (i: number) => {
      const e = out[i]!.outputs.find((o) => o.output_type === "error");
      assert.ok(e, `cell ${i} shows an error: ${JSON.stringify(out[i]!.outputs)}`);
      assert.ok(!e.traceback!.some((l) => internal.test(l)), `no internal frames: ${e.traceback!.join("\n")}`);
      assert.ok(!out[i]!.outputs.some((o) => o.output_type === "stream" && o.name === "stderr"), "no stderr dump");
      return e;
    };
    assert.equal(err(10).ename, "ParamError");
    assert.equal(err(10).evalue, "numInferenceSteps must be an integer from 1 to 1000, got 0");
    assert.equal(err(11).ename, "ParamError");
    assert.match(err(11).evalue!, /^unknown parameter 'stesp'; allowed: prompt, negativePrompt, seed, numInferenceSteps, /);
    assert.equal(err(12).ename, "CancelledError");
    assert.match(err(12).evalue!, /^cancelled at step \d+\/1000; the model is still loaded$/);
    assert.match(err(13).evalue!, /^devices 'cuda:99': /);
    assert.ok(!err(13).evalue!.includes("\n"));
    // The un-awaited generation, stopped: one line on the cell running then, no UnhandledPromiseRejection dump.
    const stray = out[15]!.outputs.filter((o) => o.output_type === "stream" && o.name === "stderr").map(text).join("");
    assert.match(stray, /^CancelledError: cancelled at step \d+\/1000; the model is still loaded \(from a promise no cell awaited\)\n$/);
    assert.ok(!raw.includes("UnhandledPromiseRejection"), "no unhandled rejection dump");
    assert.equal(plain(result(15)), "'after'");
    assert.equal(plain(result(16)), "2");
  });

  test("without --allow-errors the run stops at the bad cell with a Jupyter error naming the field", () => {
    const { cells: out, error } = execute(notebook("stops.ipynb", [
      `import * as wan from "wanlab";\nconst x = 1;`,
      `wan.resolveParams({ prompt: "a kite", cfgScale: -1 })`,
      `x + 1`,
    ]), false);
    assert.equal(error?.ename, "ParamError");
    assert.equal(error?.evalue, "cfgScale must be a number in [0, 100], got -1");
    assert.equal(out[1]!.execution_count, 2);
    assert.deepEqual(out[2]!.outputs, [], "later cells do not run");
    assert.equal(out[2]!.execution_count, null);
  });
});

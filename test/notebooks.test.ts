// The notebook kernel end to end through real Jupyter (Debian's jupyter_client / nbclient): the
// kernelspec commands, every notebook in notebooks/ executed on the installed wanlab kernel with
// no error output, the video (inline mp4 + GIF) and plot MIME types in the outputs, and ■ during a
// long generation ("cancelled at step k/N", then a next cell that works on the same loaded model).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { root, scratch, wanlab } from "./helpers.js";

const python = "/usr/bin/python3";
const haveJupyter = spawnSync(python, ["-c", "import nbclient, nbformat, jupyter_client"], { stdio: "ignore" }).status === 0;
// CI installs Jupyter (.ci/run); there a missing one is a failure, not a skip.
const skip = !haveJupyter && !process.env.CI ? "Debian's python3-nbclient / python3-ipykernel are not installed" : false;

const dir = scratch("wanlab-nb-");
const prefix = join(dir, "prefix");
const env = { ...process.env, JUPYTER_PATH: join(prefix, "share", "jupyter"), JUPYTER_PLATFORM_DIRS: "1" };

function py(args: string[], cwd = root): unknown {
  const r = spawnSync(python, [join(root, "test", "python", "notebooks.py"), ...args], { cwd, env, encoding: "utf8", maxBuffer: 64 << 20, timeout: 240_000 });
  assert.equal(r.status, 0, `notebooks.py ${args[0]} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe("wanlab kernel install / list / uninstall", () => {
  test("writes a kernel.json with absolute paths and env, lists and removes it", () => {
    const p = join(dir, "spec");
    const r = wanlab(["kernel", "install", "--prefix", p, "--name", "wl-test", "--no-jupyter", "--env", "CUDA_VISIBLE_DEVICES=1", "--env", "WANLAB_HOME=/x"]);
    assert.equal(r.status, 0, r.stderr);
    const file = join(p, "share", "jupyter", "kernels", "wl-test", "kernel.json");
    const spec = JSON.parse(readFileSync(file, "utf8"));
    assert.equal(spec.display_name, "wanlab (TypeScript)");
    assert.equal(spec.argv[0], process.execPath, "node by absolute path, not PATH");
    assert.ok(spec.argv[1].startsWith("/") && existsSync(spec.argv[1]), spec.argv[1]);
    assert.deepEqual(spec.argv.slice(2), ["--config-path", "{connection_file}"]);
    assert.equal(spec.interrupt_mode, "signal");
    assert.deepEqual(spec.env, { CUDA_VISIBLE_DEVICES: "1", WANLAB_HOME: "/x" });
    const list = wanlab(["kernel", "list", "--prefix", p, "--json", "--no-jupyter"]);
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout).map((k: { name: string }) => k.name), ["wl-test"]);
    assert.equal(wanlab(["kernel", "uninstall", "--prefix", p, "--name", "wl-test", "--no-jupyter"]).status, 0);
    assert.ok(!existsSync(file));
    assert.equal(wanlab(["kernel", "uninstall", "--prefix", p, "--name", "wl-test", "--no-jupyter"]).status, 1);
  });

  test("usage errors", () => {
    assert.equal(wanlab(["kernel", "install", "--user", "--sys-prefix"]).status, 2);
    assert.equal(wanlab(["kernel", "install", "--env", "nope"]).status, 2);
    assert.equal(wanlab(["kernel", "frobnicate"]).status, 2);
  });
});

describe("notebooks through Jupyter on the wanlab kernel", { skip }, () => {
  before(() => {
    const r = wanlab(["kernel", "install", "--prefix", prefix]);
    assert.equal(r.status, 0, r.stderr);
  });

  const notebooks = readdirSync(join(root, "notebooks")).filter((f) => f.endsWith(".ipynb")).sort();
  const outputs = new Map<string, { cells: { source: string; outputs: { type: string; name?: string; text?: string; mimes?: string[]; html?: string; inline_mp4?: boolean }[] }[] }>();

  for (const name of notebooks) {
    test(`${name} runs top to bottom with no error output`, () => {
      const out = py(["execute", join(root, "notebooks", name), join(dir, name)], join(root, "notebooks")) as typeof outputs extends Map<string, infer V> ? V & { seconds: number } : never;
      outputs.set(name, out);
      for (const c of out.cells) {
        for (const o of c.outputs) {
          assert.notEqual(o.type, "error", `${name}: ${c.source}\n${o.text}`);
          assert.ok(!(o.type === "stream" && o.name === "stderr"), `${name}: stderr in\n${c.source}\n${o.text}`);
        }
      }
      assert.ok(out.seconds < 120, `${name} took ${out.seconds}s`);
    });
  }

  test("01-quickstart shows the video (mp4 + GIF) and the stats chart (plotly + HTML)", () => {
    const nb = outputs.get("01-quickstart.ipynb");
    assert.ok(nb, "01-quickstart ran");
    const all = nb.cells.flatMap((c) => c.outputs);
    const video = all.find((o) => o.mimes?.includes("image/gif"));
    assert.ok(video, "a video output");
    assert.ok(video.mimes!.includes("text/html") && video.html!.includes("<video") && video.inline_mp4 === true, "inline mp4");
    const plot = all.find((o) => o.mimes?.includes("application/vnd.plotly.v1+json"));
    assert.ok(plot && plot.mimes!.includes("text/html"), "plotly bundle with an HTML fallback");
  });

  test("02-parameter-sweep shows a contact sheet and a plot", () => {
    const nb = outputs.get("02-parameter-sweep.ipynb");
    assert.ok(nb, "02-parameter-sweep ran");
    const all = nb.cells.flatMap((c) => c.outputs);
    assert.ok(all.some((o) => o.mimes?.includes("image/png")), "contact sheet");
    assert.ok(all.some((o) => o.mimes?.includes("application/vnd.plotly.v1+json")), "plot");
  });

  test("■ cancels a long generation at a step; the next cell uses the loaded model", () => {
    const model = join(dir, "tiny");
    assert.equal(wanlab(["make-tiny", model]).status, 0);
    const r = py(["interrupt", model]) as {
      interrupted: { status: string; outputs: { text?: string }[]; stop_latency_s: number };
      next: { status: string; outputs: { type: string; text?: string }[] };
    };
    const text = r.interrupted.outputs.map((o) => o.text ?? "").join("\n");
    assert.match(text, /cancelled at step \d+\/1000; the model is still loaded/);
    assert.equal(r.interrupted.status, "error");
    assert.ok(r.interrupted.stop_latency_s < 30, `stopped ${r.interrupted.stop_latency_s}s after the interrupt`);
    assert.equal(r.next.status, "ok", JSON.stringify(r.next));
    assert.ok(r.next.outputs.some((o) => o.type === "stream" && o.text === "2\n"), JSON.stringify(r.next.outputs));
  });
});

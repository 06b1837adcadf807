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
import { startServer } from "./serve.js";

const python = "/usr/bin/python3";
const haveJupyter = spawnSync(python, ["-c", "import nbclient, nbformat, jupyter_client"], { stdio: "ignore" }).status === 0;
// CI installs Jupyter (.ci/run); there a missing one is a failure, not a skip.
const skip = !haveJupyter && !process.env.CI ? "Debian's python3-nbclient / python3-ipykernel are not installed" : false;

const dir = scratch("wanlab-nb-");
const prefix = join(dir, "prefix");
const env = { ...process.env, JUPYTER_PATH: join(prefix, "share", "jupyter"), JUPYTER_PLATFORM_DIRS: "1" };

/** What an output shows as a cell's value or printed line: an execute_result's text (a string
 * without its quotes) or a stream's text, trimmed. */
function shown(o: { type: string; text?: string }): string | undefined {
  if (o.type === "execute_result") return (o.text ?? "").replace(/^'(.*)'$/s, "$1");
  return o.type === "stream" ? (o.text ?? "").trim() : undefined;
}

function py(args: string[], cwd = root, extraEnv: Record<string, string> = {}): unknown {
  const r = spawnSync(python, [join(root, "test", "python", "notebooks.py"), ...args], { cwd, env: { ...env, ...extraEnv }, encoding: "utf8", maxBuffer: 64 << 20, timeout: 240_000 });
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
  const model = join(dir, "tiny");
  before(() => {
    const r = wanlab(["kernel", "install", "--prefix", prefix]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(wanlab(["make-tiny", model]).status, 0);
  });

  const notebooks = readdirSync(join(root, "notebooks")).filter((f) => f.endsWith(".ipynb")).sort();
  type Output = { type: string; name?: string; text?: string; mimes?: string[]; html?: string; inline_mp4?: boolean };
  const outputs = new Map<string, { cells: { source: string; outputs: Output[] }[] }>();
  const isVideo = (o: Output) => !!o.mimes?.includes("image/gif") && o.mimes.includes("text/html") && o.html!.includes("<video") && o.inline_mp4 === true;

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

  test("01-quickstart shows the video (mp4 + GIF), the stats chart (plotly + HTML), doctor's report and the memory plan", () => {
    const nb = outputs.get("01-quickstart.ipynb");
    assert.ok(nb, "01-quickstart ran");
    const all = nb.cells.flatMap((c) => c.outputs);
    const video = all.find((o) => o.mimes?.includes("image/gif"));
    assert.ok(video, "a video output");
    assert.ok(video.mimes!.includes("text/html") && video.html!.includes("<video") && video.inline_mp4 === true, "inline mp4");
    const plot = all.find((o) => o.mimes?.includes("application/vnd.plotly.v1+json"));
    assert.ok(plot && plot.mimes!.includes("text/html"), "plotly bundle with an HTML fallback");
    const load = all.find((o) => o.text?.startsWith("wanlab load: loaded official model in"));
    assert.ok(load, "the load bar's final state");
    assert.match(load.text!, /model \(weights.*\): ✓ [\d.]+s\n  tokenizer \(tokenizer.json\): ✓ [\d.]+s/);
    const bar = all.find((o) => o.text?.startsWith("wanlab: done in"));
    assert.ok(bar, "the progress bar's final state");
    assert.ok(bar.mimes!.includes("image/png") && bar.html!.length > 0, "a latent preview with the bar");
    assert.match(bar.text!, /latent preview at step 4/);
    const doctor = all.find((o) => o.text?.includes("devices auto"));
    assert.ok(doctor, "wan.doctor()'s report");
    assert.match(doctor.text!, /^ok: runs on the CPU in float32/m);
    const plan = all.find((o) => o.text?.startsWith("predicted memory on cpu: peak"));
    assert.ok(plan, "lab.memoryPlan()'s chart");
    assert.ok(plan.mimes!.includes("application/vnd.plotly.v1+json"), "drawn, not printed");
  });

  test("03-parallel-layouts: parity on 1/2/4 ranks, per-rank progress, charts and the video", () => {
    const nb = outputs.get("03-parallel-layouts.ipynb");
    assert.ok(nb, "03-parallel-layouts ran");
    const all = nb.cells.flatMap((c) => c.outputs);
    const line = all.flatMap((o) => (o.type === "stream" ? (o.text ?? "").split("\n") : [])).find((l) => l.startsWith("parity "));
    assert.ok(line, "the parity line");
    const parity = JSON.parse(line.slice(7)) as { name: string; ranks: number; latents: number; video: number }[];
    assert.deepEqual(parity.map((p) => p.ranks), [1, 2, 2, 4, 4, 4]);
    for (const p of parity) assert.ok(p.latents <= 1e-5 && p.video <= 1e-5, `${p.name}: ${JSON.stringify(p)}`);
    const plots = all.filter((o) => o.mimes?.includes("application/vnd.plotly.v1+json") && o.mimes.includes("text/html"));
    assert.ok(plots.length >= 4, `${plots.length} plotly outputs`);
    assert.ok(plots.some((o) => /compute vs communication per rank \(2 traces\)/.test(o.text ?? "")), "compute vs communication chart");
    assert.ok(plots.some((o) => /peak memory per rank/.test(o.text ?? "")), "memory chart (or why there is none)");
    const rankBar = all.find((o) => o.text?.startsWith("wanlab: done in") && o.text.includes("rank 3 cpu:3 (ulysses 1/2 · ring 1/2): done · comm"));
    assert.ok(rankBar, "the hybrid run's bar lists every rank with its communication");
    assert.ok(all.some((o) => o.text?.includes("device group cpu:0-3 (threads, rendezvous, process groups)): ✓")), "the load bar names the device group");
    assert.ok(all.filter(isVideo).length === 1, "the video (mp4 + GIF) from `r.video` as the cell's value");
    assert.ok(all.some((o) => shown(o)?.includes("[ 5, 48, 48, 3 ]")), "video.tensor().shape");
  });

  test("02-parameter-sweep shows a contact sheet and a plot", () => {
    const nb = outputs.get("02-parameter-sweep.ipynb");
    assert.ok(nb, "02-parameter-sweep ran");
    const all = nb.cells.flatMap((c) => c.outputs);
    assert.ok(all.some((o) => o.mimes?.includes("image/png")), "contact sheet");
    assert.ok(all.some((o) => o.mimes?.includes("application/vnd.plotly.v1+json")), "plot");
  });

  test("■ cancels a long generation at a step; the next cell uses the loaded model", () => {
    const r = py(["interrupt", model]) as {
      interrupted: { status: string; outputs: { text?: string }[]; stop_latency_s: number };
      next: { status: string; outputs: { type: string; text?: string }[] };
    };
    const text = r.interrupted.outputs.map((o) => o.text ?? "").join("\n");
    assert.match(text, /cancelled at step \d+\/1000; the model is still loaded/);
    assert.equal(r.interrupted.status, "error");
    assert.ok(r.interrupted.stop_latency_s < 30, `stopped ${r.interrupted.stop_latency_s}s after the interrupt`);
    assert.equal(r.next.status, "ok", JSON.stringify(r.next));
    assert.ok(r.next.outputs.some((o) => shown(o) === "2"), JSON.stringify(r.next.outputs));
  });

  test("a cell attaches to a running wanlab serve: progress, inline video, stats; close() leaves the server running", async () => {
    const runtimeDir = join(dir, "runtime");
    const server = await startServer(["--model", model, "--outputs", join(dir, "outputs")], runtimeDir);
    try {
      const r = py(["server"], root, { WANLAB_RUNTIME_DIR: runtimeDir }) as { cells: { source: string; status: string; outputs: Output[] }[] };
      for (const c of r.cells) assert.equal(c.status, "ok", `${c.source}\n${JSON.stringify(c.outputs)}`);
      const [where, gen, shape, stats, again] = r.cells;
      assert.ok(where!.outputs.some((o) => shown(o) === server.url), JSON.stringify(where!.outputs));
      assert.ok(where!.outputs.some((o) => /^wanlab connect: attached to http/.test(o.text ?? "")), "the connect bar");
      assert.ok(gen!.outputs.some((o) => o.type === "update_display_data" && /denoising \d\/3/.test(o.text ?? "")), "live progress from the server's events");
      assert.ok(gen!.outputs.some((o) => o.mimes?.includes("image/gif") && o.mimes.includes("text/html")), "the video");
      assert.ok(shape!.outputs.some((o) => shown(o) === "[ 5, 32, 32, 3 ]"), JSON.stringify(shape!.outputs));
      assert.ok(stats!.outputs.some((o) => o.mimes?.includes("application/vnd.plotly.v1+json")));
      assert.ok(again!.outputs.some((o) => shown(o) === "true"), "close() detached; open({ server: true }) reattached and got the same video");
      assert.equal((await server.api("/v1/health")).status, 200, "the server outlives the kernel's lab and the kernel");
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });

  test("the kernel never blocks: completion answers and other cells run while a generation goes on", () => {
    const r = py(["nonblocking", model]) as {
      awaited: { complete_matches: string[] | null; complete_latency_s: number; steps_before_complete: number; steps_after_complete: number; complete_before_generation_end: boolean; generation_status: string };
      start: { status: string; outputs: Output[] };
      other: { status: string; outputs: Output[]; seconds: number };
      end: { status: string; outputs: Output[] };
    };
    const a = r.awaited;
    assert.ok(a.complete_matches?.includes("generate"), JSON.stringify(a));
    assert.ok(a.complete_before_generation_end, JSON.stringify(a));
    assert.ok(a.complete_latency_s < 5, `completion took ${a.complete_latency_s}s`);
    assert.ok(a.steps_after_complete > a.steps_before_complete, `the generation went on: ${JSON.stringify(a)}`);
    assert.equal(a.generation_status, "error", "then ■ stopped it");
    assert.equal(r.start.status, "ok");
    assert.equal(r.other.status, "ok");
    assert.ok(r.other.outputs.some((o) => shown(o) === "2,4,6"), JSON.stringify(r.other.outputs));
    assert.ok(r.other.seconds < 10, `the other cell took ${r.other.seconds}s`);
    // The background generation was still running after the other cell: the abort found it mid-way.
    assert.equal(r.end.status, "ok", JSON.stringify(r.end));
    assert.ok(r.end.outputs.some((o) => /^cancelled at step \d+\/1000; the model is still loaded$/.test(shown(o) ?? "")), JSON.stringify(r.end.outputs));
  });
});

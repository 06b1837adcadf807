#!/usr/bin/env node
// Benchmark matrix: video sizes × devices × parallel layouts (ulysses×ring), each layout on a
// server of its own (devices and layouts are fixed when a model loads), JSON + a plotly report.
//
//   scripts/bench.mjs --model DIR --sizes 480x832x81,240x416x33 --devices cpu --layouts 1x1 --steps 10 --repeat 2 --out bench/run
//
// A combination the engine refuses (say, a layout it does not have yet) is recorded with the
// reason and skipped. With --url (or a running server and no --model) the matrix is that
// server's one layout. Exit: 0 ok, 1 a run failed, 2 usage. Run from the repository:
// `./scripts/bench.mjs --help` (or `node scripts/bench.mjs --help`).
import { fs, path } from "zx";
import { connectClient as connect } from "wanlab";
import { defineFlags } from "./lib/flags.mjs";
import { progress } from "./lib/progress.mjs";
import { fail, plotlyHtml, spin, startServer, Usage } from "./lib/wanlab.mjs";

const flags = defineFlags([
  { flag: "model", type: "string", value: "DIR", help: "the model folder; each layout gets a server of its own on it" },
  { flag: "url", type: "string", value: "URL", help: "measure the server at this address instead (its one layout)" },
  { flag: "token", type: "string", value: "TOKEN", help: "its token (with --url)", shown: "$WANLAB_TOKEN" },
  { flag: "server", type: "boolean", help: "measure the running server (server.json) instead" },
  { flag: "sizes", type: "strings", value: "HxWxF,...", default: ["16x16x1", "32x32x5"], help: "video sizes: height x width x frames" },
  { flag: "devices", type: "strings", value: "DEV,...", default: ["auto"], help: "device sets, one server each: auto, cpu, cpu:0-3, cuda:0-1" },
  { flag: "layouts", type: "strings", value: "UxR,...", default: ["1x1"], help: "parallel layouts, ulysses x ring" },
  { flag: "steps", type: "integer", value: "N", default: 2, help: "denoising steps per job" },
  { flag: "repeat", type: "integer", value: "N", default: 2, help: "jobs per size" },
  { flag: "out", type: "string", value: "DIR", default: "bench-out", help: "where bench.json and bench.html go" },
  { flag: "outputs", type: "string", value: "DIR", shown: "OUT/outputs", help: "the servers' outputs folder" },
], {
  name: "bench.mjs",
  about: "Benchmark matrix: sizes x devices x layouts, each layout on a server of its own.\n" +
    "Writes OUT/bench.json and OUT/bench.html. Exit: 0 ok, 1 a run failed, 2 usage.",
  examples: ["bench.mjs --model DIR --sizes 480x832x81,240x416x33 --layouts 1x1,2x1 --out bench/run", "bench.mjs --server --sizes 480x832x81 --steps 10 --repeat 3"],
});

function checkList(flag, list, re) {
  for (const v of list) if (!re.test(v)) throw new Usage(`--${flag}: '${v}' does not match ${re}`);
  return list;
}

async function measure(lab, size, steps, repeat) {
  const [height, width, numFrames] = size.split("x").map(Number);
  const runs = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = Date.now();
    const { id } = await lab.submit({ prompt: "benchmark: a cat walks on the street", seed: i, height, width, numFrames, numInferenceSteps: steps });
    const v = await lab.wait(id);
    if (v.state !== "done") return { size, error: v.error ?? v.state, runs };
    const m = JSON.parse((await lab.download(id, "manifest.json")).toString());
    const stats = await lab.stats();
    const t = m.timings.engine;
    runs.push({ wall_s: (Date.now() - t0) / 1000, encode_s: t.encode_s, denoise_s: t.denoise_s, decode_s: t.decode_s, step_s: t.step_s, rss_bytes: stats.memory.process.rss });
  }
  const mean = (k) => runs.reduce((a, r) => a + r[k], 0) / runs.length;
  const steps_s = runs.flatMap((r) => r.step_s);
  return { size, height, width, numFrames, steps, repeat, runs, mean: { wall_s: mean("wall_s"), denoise_s: mean("denoise_s"), decode_s: mean("decode_s"), step_s: steps_s.reduce((a, b) => a + b, 0) / steps_s.length }, peak_rss_bytes: Math.max(...runs.map((r) => r.rss_bytes)) };
}

async function main() {
  const argv = flags.parse();
  if (!argv) return;
  const sizes = checkList("sizes", argv.sizes, /^\d+x\d+x\d+$/);
  const devices = checkList("devices", argv.devices, /^(auto|(cpu|cuda)(:[\d,-]+)?)$/);
  const layouts = checkList("layouts", argv.layouts, /^\d+x\d+$/);
  const { steps, repeat } = argv;
  if (steps < 1 || repeat < 1) throw new Usage("--steps and --repeat must be at least 1");
  const out = path.resolve(argv.out);
  await fs.mkdirp(out);
  const results = [];
  if ((argv.url || argv.server) && (argv.model || argv.outputs || argv.devices !== flags.table.find((f) => f.flag === "devices").default || argv.layouts.length > 1 || argv.layouts[0] !== "1x1"))
    throw new Usage("--model, --outputs, --devices and --layouts start servers of their own; not with --url or --server (that server's one layout is measured)");
  if (argv.url && argv.server) throw new Usage("--url or --server, not both");
  if (!argv.url && argv.token !== undefined) throw new Usage("--token goes with --url");
  const remote = argv.url || argv.server;
  // One line per measured size (a spinner runs while one is measured on a terminal).
  const bar = progress(remote ? sizes.length : devices.length * layouts.length * sizes.length, { stream: { write: (s) => process.stderr.write(s) } });
  const line = (r) => (r.error ? `failed: ${r.error}` : `${r.mean.step_s.toFixed(3)} s/step, ${r.mean.wall_s.toFixed(2)} s/job`);

  if (remote) {
    const lab = await connect(argv.url ? { url: argv.url, token: argv.token ?? process.env.WANLAB_TOKEN } : {});
    for (const size of sizes) {
      const r = await spin(`${size}`, () => measure(lab, size, steps, repeat));
      results.push({ devices: "server", layout: "server", ...r });
      bar.finished(!r.error, `server ${size}: ${line(r)}`);
    }
    await lab.close();
  } else {
    for (const dev of devices)
      for (const layout of layouts) {
        const [ulysses, ring] = layout.split("x");
        let server;
        try {
          server = await startServer({ model: argv.model, outputs: argv.outputs ?? path.join(out, "outputs"), args: ["--devices", dev, "--ulysses", ulysses, "--ring", ring] });
        } catch (e) {
          results.push({ devices: dev, layout, skipped: e.message });
          bar.finished(true, `${dev} ${layout}: skipped (${sizes.length} size${sizes.length === 1 ? "" : "s"}): ${e.message}`, sizes.length);
          continue;
        }
        try {
          const lab = await connect({ runtimeDir: server.runtimeDir });
          for (const size of sizes) {
            const r = await spin(`${dev} ${layout} ${size}`, () => measure(lab, size, steps, repeat));
            results.push({ devices: dev, layout, ...r });
            bar.finished(!r.error, `${dev} ${layout} ${size}: ${line(r)}`);
          }
          await lab.close();
        } finally {
          await server.stop();
        }
      }
  }

  const report = { bench: "generate", date: new Date().toISOString(), steps, repeat, results };
  await fs.writeFile(path.join(out, "bench.json"), JSON.stringify(report, null, 2) + "\n");
  const ok = results.filter((r) => r.mean);
  const combos = [...new Set(ok.map((r) => `${r.devices} ${r.layout}`))];
  const traces = combos.map((c) => {
    const rs = ok.filter((r) => `${r.devices} ${r.layout}` === c);
    return { type: "bar", name: c, x: rs.map((r) => r.size), y: rs.map((r) => r.mean.step_s) };
  });
  await fs.writeFile(path.join(out, "bench.html"), plotlyHtml("seconds per denoising step", traces, { xaxis: { title: "height×width×frames" }, yaxis: { title: "s/step" }, barmode: "group" }));
  console.log(path.join(out, "bench.json"));
  if (results.some((r) => r.error)) process.exitCode = 1;
}

await main().catch(fail);

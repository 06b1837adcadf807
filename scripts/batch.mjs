#!/usr/bin/env node
// Batch generation: a prompts file (one prompt per line) or JSONL (one GenerateParams object per
// line) becomes one job each on a wanlab server; prints progress as jobs finish, gathers each
// done job's video and manifest under --out and writes an index of them, a labelled contact
// sheet and an offline report (OUT/report.html: each job's frames, video, parameters, manifest
// and timings). Run from the repository (node resolves zx and wanlab from its node_modules), or
// as `npx wanlab batch` where the package is installed:
//
//   ./scripts/batch.mjs --help                     (or: node scripts/batch.mjs --help)
//   ./scripts/batch.mjs --prompts prompts.txt --out runs/batch [--model DIR] [--height 480 ...]
//
// The flags are its table in ./lib/script-flags.mjs; any other is refused (exit 2) before a job
// is submitted.
import { chalk, fs, path } from "zx";
import { resolveParams } from "wanlab";
import { contactSheet, frameStrip } from "./lib/contact-sheet.mjs";
import { progress } from "./lib/progress.mjs";
import { plotlySource, reportHtml } from "./lib/report.mjs";
import { batchFlags as flags } from "./lib/script-flags.mjs";
import { assertFits, fail, paramsFromFlags, Usage, withServer } from "./lib/wanlab.mjs";

/** The parameters a card shows and the charts plot, from a job's resolved parameters. */
const shown = (p) => [["seed", p.seed], ["steps", p.numInferenceSteps], ["cfg", p.cfgScale], ["shift", p.sigmaShift], ["size", `${p.width}×${p.height}×${p.numFrames}`],
  ...(p.teaCacheL1Thresh ? [["TeaCache", p.teaCacheL1Thresh]] : []), ...(p.inputVideo ? [["strength", p.denoisingStrength]] : [])];

/** The report's input: one card per line; time against each numeric parameter the lines vary
 * (against the line number when none does). */
function batchReport(prompts, index, strips, sheet) {
  const runs = index.map((j) => ({ label: `line ${j.line}`, params: [["line", j.line], ...shown(j.params)], prompt: j.prompt, state: j.state, error: j.error,
    video: j.video, manifest: j.manifest, strip: strips.get(j), timings: j.timings }));
  const names = runs[0].params.map(([k]) => k).filter((k) => k !== "line" && k !== "size");
  const axes = names.filter((k) => new Set(runs.map((r) => String(r.params.find(([x]) => x === k)?.[1]))).size > 1);
  return {
    title: `batch: ${path.basename(prompts)}`,
    about: [`${index.length} jobs from ${path.resolve(prompts)}; written ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}`],
    links: [...(sheet ? [{ href: "contact-sheet.png", text: "contact sheet" }] : []), { href: "index.json", text: "index.json" }],
    axes: axes.length ? axes : ["line"],
    runs,
    plotly: plotlySource(),
  };
}

async function main() {
  const argv = flags.parse();
  if (!argv) return;
  const text = await fs.readFile(argv.prompts, "utf8").catch((e) => {
    throw new Usage(`--prompts ${argv.prompts}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  });
  const common = paramsFromFlags(argv);
  const lines = text.split("\n").map((l, i) => [i + 1, l.trim()]).filter(([, l]) => l && !l.startsWith("#"));
  const at = (line) => `${argv.prompts}:${line}`;
  const requests = lines.map(([line, l]) => {
    if (!argv.prompts.endsWith(".jsonl")) return { line, params: { ...common, prompt: l } };
    let params;
    try {
      params = JSON.parse(l);
    } catch (e) {
      throw new Usage(`${at(line)}: not JSON: ${e.message}`);
    }
    if (params === null || typeof params !== "object" || Array.isArray(params)) throw new Usage(`${at(line)}: not a JSON object of parameters`);
    return { line, params: { ...common, ...params } };
  });
  if (!requests.length) throw new Usage(`${argv.prompts} has no prompts`);
  // Check every line before submitting any, so a bad line 40 does not leave 39 jobs behind.
  for (const r of requests) {
    try {
      resolveParams(r.params);
    } catch (e) {
      throw new Usage(`${at(r.line)}: ${e.message}`);
    }
  }
  if (argv["dry-run"]) {
    for (const r of requests) console.log(`${at(r.line)}: ${JSON.stringify(r.params)}`);
    return console.error(`${requests.length} jobs; none submitted (--dry-run)`);
  }
  const out = path.resolve(argv.out);
  await fs.mkdirp(out);
  const width = String(Math.max(...requests.map((r) => r.line))).length;
  const folder = (line) => `line-${String(line).padStart(Math.max(3, width), "0")}`;

  const strips = new Map(); // job → its frame strip as a data: URI, for the report
  const index = await withServer(argv, async (lab) => {
    await assertFits(lab, requests, (r) => at(r.line));
    // Submit everything first: each request is validated by the server (400 names the field).
    const jobs = [];
    for (const r of requests) {
      try {
        jobs.push({ ...r, id: (await lab.submit({ output: argv.output, ...r.params })).id });
      } catch (e) {
        throw new (e.name === "ParamError" ? Usage : Error)(`${at(r.line)}: ${e.message}`);
      }
    }
    console.error(`submitted ${jobs.length} jobs; their videos and manifests go to ${out}`);
    const bar = progress(jobs.length);
    try {
      return await Promise.all(jobs.map(async (j) => {
        const v = await lab.wait(j.id);
        const entry = { line: j.line, id: j.id, state: v.state, prompt: v.params.prompt, seed: v.params.seed, params: v.params, outputs: v.outputs ?? [], error: v.error };
        if (v.state === "done") {
          // Gathered under OUT: the server's folder may be on another machine, or cleaned.
          const dir = folder(j.line);
          await fs.mkdirp(path.join(out, dir));
          const manifest = await lab.download(j.id, "manifest.json");
          await fs.writeFile(path.join(out, dir, "manifest.json"), manifest);
          await fs.writeFile(path.join(out, dir, "video.mp4"), await lab.download(j.id, "video.mp4"));
          const m = JSON.parse(manifest.toString());
          Object.assign(entry, { video: path.join(dir, "video.mp4"), manifest: path.join(dir, "manifest.json"), frames: path.join(dir, "frames.jpg"), timings: m.timings });
          strips.set(entry, await frameStrip(path.join(out, entry.video), path.join(out, entry.frames), m.video.numFrames));
        }
        const mark = v.state === "done" ? chalk.green("done") : chalk.red(v.state);
        bar.finished(v.state === "done", `${at(j.line)}: ${mark}${entry.video ? ` ${path.join(out, entry.video)}` : v.error ? `: ${v.error}` : ""}`);
        return entry;
      }));
    } finally {
      bar.end();
    }
  });

  // Contact sheet: the first frame of each done job, in file order, labelled by line and seed.
  const done = index.filter((j) => j.video);
  const sheet = path.join(out, "contact-sheet.png");
  const short = (p) => (p.length > 60 ? `${p.slice(0, 59)}…` : p);
  if (done.length) await contactSheet(done.map((j) => ({ file: path.join(out, j.video), label: `line ${j.line}, seed ${j.seed}, ${short(j.prompt)}` })), sheet);

  const file = path.join(out, "index.json");
  const report = path.join(out, "report.html");
  await fs.writeFile(`${file}.tmp`, JSON.stringify({ prompts: path.resolve(argv.prompts), jobs: index, contactSheet: done.length ? sheet : null, report }, null, 2) + "\n");
  await fs.rename(`${file}.tmp`, file);
  await fs.writeFile(report, reportHtml(batchReport(argv.prompts, index, strips, done.length > 0)));
  console.log(file);
  console.error(`${done.length}/${index.length} done; index in ${file}; contact sheet ${done.length ? sheet : "(none)"}; report ${report}`);
  if (done.length !== index.length) process.exitCode = 1;
}

await main().catch(fail);

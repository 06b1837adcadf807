#!/usr/bin/env zx
// Batch generation: a prompts file (one prompt per line) or JSONL (one GenerateParams object per
// line) becomes one job each on a wanlab server; prints progress and writes an index of outputs.
//
//   scripts/batch.mjs --prompts prompts.txt --out runs/batch [--model DIR] [--height 480 ...]
//
// Uses the running server (server.json), --url/--token, or starts one (--model DIR, --outputs DIR).
// Exit codes: 0 all done, 1 some job failed, 2 usage.
import { argv, chalk, fs, path } from "zx";
import { resolveParams } from "wanlab";
import { assertFits, fail, paramsFromFlags, spin, Usage, withServer } from "./lib/wanlab.mjs";

const help = "usage: batch.mjs --prompts FILE(.txt|.jsonl) [--out DIR] [--model DIR [--budget BYTES|auto]] [--outputs DIR] [--url URL --token T] [--steps N --height N --width N --num-frames N --seed N ...]";

async function main() {
  if (argv.help) return console.log(help);
  if (!argv.prompts) throw new Usage(`--prompts FILE is required\n${help}`);
  const text = await fs.readFile(argv.prompts, "utf8");
  const common = paramsFromFlags(argv);
  const lines = text.split("\n").map((l, i) => [i + 1, l.trim()]).filter(([, l]) => l && !l.startsWith("#"));
  const requests = lines.map(([line, l]) => {
    if (!argv.prompts.endsWith(".jsonl")) return { line, params: { ...common, prompt: l } };
    try {
      return { line, params: { ...common, ...JSON.parse(l) } };
    } catch (e) {
      throw new Usage(`${argv.prompts}:${line}: not JSON: ${e.message}`);
    }
  });
  if (!requests.length) throw new Usage(`${argv.prompts} has no prompts`);
  // Check every line before submitting any, so a bad line 40 does not leave 39 jobs behind.
  for (const r of requests) {
    try {
      resolveParams(r.params);
    } catch (e) {
      throw new Usage(`${argv.prompts}:${r.line}: ${e.message}`);
    }
  }
  const out = path.resolve(argv.out ?? "batch");
  await fs.mkdirp(out);

  const index = await withServer(argv, async (lab) => {
    await assertFits(lab, requests, (r) => `${argv.prompts}:${r.line}`);
    // Submit everything first: each request is validated by the server (400 names the field).
    const jobs = [];
    for (const r of requests) {
      try {
        jobs.push({ ...r, id: (await lab.submit({ output: argv.output, ...r.params })).id });
      } catch (e) {
        throw new (e.name === "ParamError" ? Usage : Error)(`${argv.prompts}:${r.line}: ${e.message}`);
      }
    }
    let finished = 0;
    const results = await spin(`${jobs.length} jobs`, () =>
      Promise.all(jobs.map(async (j) => {
        const v = await lab.wait(j.id);
        finished++;
        const mark = v.state === "done" ? chalk.green("done") : chalk.red(v.state);
        console.error(`[${finished}/${jobs.length}] line ${j.line}: ${mark} ${v.outputs?.[0] ?? v.error ?? ""}`);
        return { line: j.line, id: j.id, state: v.state, prompt: v.params.prompt, seed: v.params.seed, params: v.params, outputs: v.outputs ?? [], error: v.error };
      })),
    );
    return results;
  }, { serveArgs: [] });

  const file = path.join(out, "index.json");
  await fs.writeFile(`${file}.tmp`, JSON.stringify({ prompts: path.resolve(argv.prompts), jobs: index }, null, 2) + "\n");
  await fs.rename(`${file}.tmp`, file);
  const done = index.filter((j) => j.state === "done").length;
  console.log(file);
  console.error(`${done}/${index.length} done; index in ${file}`);
  if (done !== index.length) process.exitCode = 1;
}

await main().catch(fail);

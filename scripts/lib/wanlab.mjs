// Shared by the zx scripts: find or start a `wanlab serve`, job parameters from flags, reports.
// Their flag tables and parser: ./flags.mjs; progress lines: ./progress.mjs.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { copyFile, link, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { connectClient as connect, readServerFile, runtimeDir } from "wanlab";
import { spinner } from "zx";
import { Usage } from "./flags.mjs";
import { plotlySource } from "./report.mjs";

export const cli = fileURLToPath(new URL("../../bin/wanlab.js", import.meta.url));
/** test/serve-launcher.ts: `wanlab serve` with test seams (injected engine faults) for the load test. */
const launcher = fileURLToPath(new URL("../../dist/test/serve-launcher.js", import.meta.url));

export { Usage };

/**
 * Asks the server whether each request fits its memory budget (POST /v1/plan) before any is
 * submitted, so a request the server would refuse does not leave the ones before it running.
 * `where(r)` names a request in the error.
 */
export async function assertFits(lab, requests, where) {
  for (const r of requests) {
    const plan = await lab.memoryPlan(r.params);
    if (!plan.fits) throw new Usage(`${where(r)}: ${plan.problem}`);
  }
}

/**
 * Runs `fn(client)` against the server named by --url/--token, the one in server.json, or
 * (with --model, or none running) one started here for the run and stopped after it (with
 * --budget BYTES|auto when given).
 */
export async function withServer(argv, fn, { serveArgs = [], log = (l) => console.error(l) } = {}) {
  // Flags for a server started here would do nothing to one already running: refuse them.
  const forStarted = ["budget", "outputs"].filter((f) => argv[f] !== undefined).map((f) => `--${f}`);
  if (argv.url && (forStarted.length || argv.model || argv.fresh)) throw new Usage(`${[...(argv.model ? ["--model"] : []), ...(argv.fresh ? ["--fresh"] : []), ...forStarted].join(", ")}: for a server started here, not with --url`);
  if (!argv.url && argv.token !== undefined) throw new Usage("--token goes with --url");
  if (argv.url) return run(await connect({ url: argv.url, token: argv.token ?? process.env.WANLAB_TOKEN }), fn);
  const running = !argv.model && !argv.fresh ? await readServerFile().catch(() => undefined) : undefined;
  if (running) {
    if (forStarted.length) throw new Usage(`${forStarted.join(", ")}: for a server started here (with --model or --fresh); the one at ${running.url} is running already`);
    log(`using the server at ${running.url} (${running.model})`);
    return run(await connect(), fn);
  }
  const budget = argv.budget !== undefined ? ["--budget", String(argv.budget)] : [];
  const server = await startServer({ model: argv.model, outputs: argv.outputs, args: [...budget, ...serveArgs], log });
  try {
    return await run(await connect({ runtimeDir: server.runtimeDir }), fn);
  } finally {
    await server.stop();
  }
}

async function run(client, fn) {
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Starts `wanlab serve` in a private runtime directory; resolves once it listens. `seams`
 * ({ faults: "transient=P,fatal=P" }): through the test launcher, for the load test.
 * `runtimeDir`: this one instead (the caller's to remove); `onSpawn(child)` sees the process as
 * soon as it exists, `onStderr(text)` each piece of its stderr. `exited` resolves with
 * { code, signal, at } (at: performance.now() when it exited). */
export async function startServer({ model, outputs, args = [], env = {}, seams, log = () => {}, runtimeDir: given, onSpawn = () => {}, onStderr = () => {} }) {
  const rt = given ?? mkdtempSync(join(tmpdir(), "wanlab-rt-"));
  const argv = ["serve", "--port", "0", ...(model ? ["--model", model] : []), ...(outputs ? ["--outputs", outputs] : []), ...args];
  log(`starting wanlab ${argv.join(" ")}`);
  const command = seams ? [launcher, JSON.stringify(seams)] : [cli];
  const child = spawn(process.execPath, [...command, ...argv], { env: { ...process.env, ...env, WANLAB_RUNTIME_DIR: rt }, stdio: ["ignore", "pipe", "pipe"] });
  onSpawn(child);
  let err = "";
  child.stderr.on("data", (d) => {
    err += d;
    onStderr(String(d));
  });
  const exited = new Promise((r) => child.on("exit", (code, signal) => r({ code, signal, at: performance.now() })));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /^listening on (\S+)$/m.exec(out);
      if (m) resolve(m[1]);
    });
    exited.then(({ code }) => reject(new Error(`wanlab serve exited with ${code}: ${err.trim().split("\n").at(-1)}`)));
  });
  return {
    url,
    runtimeDir: rt,
    child,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      if (given === undefined) rmSync(rt, { recursive: true, force: true });
    },
  };
}

export { runtimeDir };

/** How a script finds its server (withServer reads these). */
export const serverFlags = [
  { flag: "model", type: "string", value: "DIR", help: "start a server on this model folder for the run (stopped after it)" },
  { flag: "budget", type: "string", value: "BYTES|auto", help: "that server's memory budget (with --model)" },
  { flag: "outputs", type: "string", value: "DIR", help: "that server's outputs folder (with --model)", shown: "wanlab serve's" },
  { flag: "fresh", type: "boolean", help: "start a server even when one is running (server.json)" },
  { flag: "url", type: "string", value: "URL", help: "use the server at this address instead" },
  { flag: "token", type: "string", value: "TOKEN", help: "its token (with --url)", shown: "$WANLAB_TOKEN" },
];

/** The generation parameters a script passes to every job, as `wanlab generate` names them;
 * absent ones take the server's defaults. `except` leaves out the ones a script sweeps. */
export function paramFlags(except = []) {
  return [
    { flag: "negative-prompt", type: "string", help: "what the videos should not show" },
    { flag: "seed", type: "integer", value: "N", help: "the noise seed", shown: "random per job" },
    { flag: "steps", type: "integer", value: "N", help: "denoising steps", shown: "50", aliases: ["num-inference-steps"] },
    { flag: "cfg-scale", type: "number", help: "classifier-free guidance scale", shown: "5" },
    { flag: "sigma-shift", type: "number", help: "the flow-matching schedule's shift", shown: "5" },
    { flag: "height", type: "integer", value: "N", help: "video height in pixels, a multiple of 16", shown: "480" },
    { flag: "width", type: "integer", value: "N", help: "video width in pixels, a multiple of 16", shown: "832" },
    { flag: "num-frames", type: "integer", value: "N", help: "frames, 4k+1", shown: "81" },
    { flag: "tiled", type: "boolean", help: "decode the VAE in tiles (less memory)" },
    { flag: "tea-cache-l1-thresh", type: "number", help: "TeaCache threshold, 0 is off", shown: "0" },
    { flag: "tea-cache-model-id", type: "string", value: "ID", help: "TeaCache's calibration (Wan2.1-T2V-1.3B, Wan2.1-T2V-14B)" },
    { flag: "input-video", type: "string", value: "FILE", help: "video to video: the input video" },
    { flag: "denoising-strength", type: "number", help: "how much of the schedule runs from the input video", shown: "1" },
  ].filter((f) => !except.includes(f.flag));
}

const paramNames = { steps: "numInferenceSteps", "cfg-scale": "cfgScale", "sigma-shift": "sigmaShift", height: "height", width: "width", "num-frames": "numFrames", seed: "seed",
  "tea-cache-l1-thresh": "teaCacheL1Thresh", "denoising-strength": "denoisingStrength", "negative-prompt": "negativePrompt", tiled: "tiled", "tea-cache-model-id": "teaCacheModelId" };

/** GenerateParams from the parsed paramFlags (only those given). */
export function paramsFromFlags(flags) {
  const p = {};
  for (const [flag, name] of Object.entries(paramNames)) if (flags[flag] !== undefined && flags[flag] !== false) p[name] = flags[flag];
  // The server reads the file: an absolute path, whatever its working directory.
  if (flags["input-video"] !== undefined) p.inputVideo = resolve(String(flags["input-video"]));
  return p;
}

/** A self-contained plotly page that opens offline: plotly.js inlined, the data inline. */
export function plotlyHtml(title, traces, layout = {}) {
  return `<!doctype html><meta charset="utf-8"><title>${title}</title>
<div id="plot" style="width:100%;height:90vh"></div>
<script>${plotlySource().replace(/<\/script/gi, "<\\/script")}</script>
<script>Plotly.newPlot("plot", ${JSON.stringify(traces)}, ${JSON.stringify({ title: { text: title, x: 0, xanchor: "left" }, margin: { t: 60 }, ...layout })}, { displaylogo: false });</script>
`;
}

/** `to` as a second name of `from` (a hard link, or a copy where links fail); replaces `to`. */
export async function linkOrCopy(from, to) {
  await rm(to, { force: true });
  await link(from, to).catch(() => copyFile(from, to));
}

/** Exit codes: 2 for usage errors, 1 for anything else. */
export function fail(e) {
  console.error(`${process.argv[1]?.split("/").at(-1)}: ${e.message}`);
  process.exitCode = e instanceof Usage || e?.name === "ParamError" ? 2 : 1;
}

/** zx's spinner on a terminal; plain (no redraws in logs and CI) otherwise. */
export function spin(title, fn) {
  return process.stderr.isTTY ? spinner(title, fn) : fn();
}

// Shared by the zx scripts: find or start a `wanlab serve`, job parameters from flags, reports.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { connectClient as connect, readServerFile, runtimeDir } from "wanlab";
import { spinner } from "zx";

export const cli = fileURLToPath(new URL("../../bin/wanlab.js", import.meta.url));
/** test/serve-launcher.ts: `wanlab serve` with test seams (injected engine faults) for the load test. */
const launcher = fileURLToPath(new URL("../../dist/test/serve-launcher.js", import.meta.url));

/** A usage error: the scripts exit 2 on these, 1 on failed jobs. */
export class Usage extends Error {}

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
  if (argv.url) return run(await connect({ url: argv.url, token: argv.token ?? process.env.WANLAB_TOKEN }), fn);
  const running = !argv.model && !argv.fresh ? await readServerFile().catch(() => undefined) : undefined;
  if (running) {
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

const numberFlags = { "num-inference-steps": "numInferenceSteps", steps: "numInferenceSteps", "cfg-scale": "cfgScale", "sigma-shift": "sigmaShift", height: "height", width: "width", "num-frames": "numFrames", seed: "seed",
  "tea-cache-l1-thresh": "teaCacheL1Thresh", "denoising-strength": "denoisingStrength" };

/** GenerateParams from the flags a script shares with `wanlab generate`. */
export function paramsFromFlags(argv) {
  const p = {};
  for (const [flag, name] of Object.entries(numberFlags)) {
    if (argv[flag] === undefined) continue;
    const n = Number(argv[flag]);
    if (!Number.isFinite(n)) throw new Usage(`--${flag} must be a number, got '${argv[flag]}'`);
    p[name] = n;
  }
  if (argv["negative-prompt"] !== undefined) p.negativePrompt = String(argv["negative-prompt"]);
  if (argv.tiled) p.tiled = true;
  if (argv["tea-cache-model-id"] !== undefined) p.teaCacheModelId = String(argv["tea-cache-model-id"]);
  // The server reads the file: an absolute path, whatever its working directory.
  if (argv["input-video"] !== undefined) p.inputVideo = resolve(String(argv["input-video"]));
  return p;
}

/** A list flag: "1,2,3" → [1, 2, 3]. */
export function numbers(flag, value, fallback) {
  if (value === undefined) return fallback;
  const list = String(value).split(",").map((s) => Number(s.trim()));
  if (!list.length || list.some((n) => !Number.isFinite(n))) throw new Usage(`--${flag} must be a comma-separated list of numbers, got '${value}'`);
  return list;
}

/** A self-contained plotly page (plotly from its CDN when opened; the data is inline). */
export function plotlyHtml(title, traces, layout = {}) {
  return `<!doctype html><meta charset="utf-8"><title>${title}</title>
<script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>
<div id="plot" style="width:100%;height:90vh"></div>
<script>Plotly.newPlot("plot", ${JSON.stringify(traces)}, ${JSON.stringify({ title, ...layout })});</script>
`;
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

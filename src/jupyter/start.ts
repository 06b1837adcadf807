// The wanlab Jupyter kernel: tslab, plus what tslab leaves to the embedder (and kernel.ts: values,
// errors and execution counts as Jupyter messages, stop_on_error honoured).
// - `import ... from "wanlab"` resolves to this package (types included) when the notebook's
//   directory has no node_modules/wanlab of its own; a project-local wanlab still wins.
// - SIGINT (the notebook's ■) aborts the running generation at its next step instead of only
//   abandoning the cell, so the cell reports where it stopped and the model stays loaded.
// - Cells know they run in the kernel (rich display, live progress).
import { existsSync, readFileSync } from "node:fs";
import Module, { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { interruptAll } from "../display/interrupt.js";
import { startKernel } from "./kernel.js";

const packageRoot = fileURLToPath(new URL("../../../", import.meta.url));
const require = createRequire(import.meta.url);
const tslabMain = require.resolve("tslab/dist/main.js");

function configPath(argv: string[]): string {
  const i = argv.indexOf("--config-path");
  if (i < 0 || !argv[i + 1]) {
    console.error("usage: start.js --config-path CONNECTION_FILE (Jupyter passes it; see `wanlab kernel install`)");
    process.exit(2);
  }
  return argv[i + 1]!;
}

/** This package's "exports": subpath → the JavaScript file it loads (the "default" condition). */
function packageExports(): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { exports?: Record<string, string | { default?: string }> };
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(pkg.exports ?? {})) {
    const file = typeof value === "string" ? value : value.default;
    if (file) out[key] = file;
  }
  return out;
}

/** Runtime: require("wanlab") and require("wanlab/SUBPATH") fall back to this package. */
function hookRuntimeResolution(): void {
  const M = Module as unknown as { _resolveFilename(request: string, parent: unknown, ...rest: unknown[]): string };
  const original = M._resolveFilename;
  M._resolveFilename = function (request, parent, ...rest) {
    try {
      return original.call(this, request, parent, ...rest);
    } catch (e) {
      const entry = request === "wanlab" ? "." : request.startsWith("wanlab/") ? `./${request.slice(7)}` : undefined;
      const target = entry === undefined ? undefined : packageExports()[entry];
      if (target) return join(packageRoot, target);
      throw e;
    }
  };
}

/** Types: tslab's TypeScript sees <dir>/node_modules/wanlab/… as this package when it is not there. */
function hookTypeResolution(): void {
  const ts = createRequire(tslabMain)("@tslab/typescript-for-tslab") as {
    sys: Record<string, ((path: string, ...rest: unknown[]) => unknown) | unknown>;
  };
  const forward = (path: string): string => {
    const m = /^(.*)[\\/]node_modules[\\/]wanlab(?=$|[\\/])(.*)$/.exec(path);
    if (!m || existsSync(path)) return path;
    return join(packageRoot, m[2]!);
  };
  for (const name of ["fileExists", "readFile", "directoryExists", "realpath", "getFileSize"]) {
    const fn = ts.sys[name];
    if (typeof fn !== "function") continue;
    ts.sys[name] = (path: string, ...rest: unknown[]) => fn.call(ts.sys, forward(path), ...rest);
  }
}

function routeInterrupts(): void {
  const tslabHandlers = process.listeners("SIGINT");
  process.removeAllListeners("SIGINT");
  process.on("SIGINT", () => {
    // A running generation takes the interrupt and its cell finishes with "cancelled at step k/N";
    // anything else is tslab's to interrupt.
    if (interruptAll() > 0) return;
    for (const h of tslabHandlers) (h as () => void)();
  });
}

const config = configPath(process.argv.slice(2));
(globalThis as Record<symbol, unknown>)[Symbol.for("wanlab.kernel")] = true;
hookRuntimeResolution();
hookTypeResolution();
// The tslab this wanlab was installed with (the hooks above live in its module instances), with
// wanlab's execute handling (kernel.ts).
startKernel(config, tslabMain);
routeInterrupts();

#!/usr/bin/env node
// The README's screenshot: executes a notebook through Jupyter on the installed wanlab kernel
// (test/python/notebooks.py, Debian's nbclient), exports it to HTML with nbconvert and shoots
// it with headless Chromium.
//   node notebooks/screenshot.mjs [01-quickstart] [--out notebooks/quickstart.png] [--height 1650]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const args = process.argv.slice(2);
const opt = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const name = args.find((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--")) ?? "01-quickstart";
const out = opt("--out", join(here, "quickstart.png"));
const height = opt("--height", "1650");

function run(cmd, argv, options = {}) {
  const r = spawnSync(cmd, argv, { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", ...options });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} exited with ${r.status}`);
  return r.stdout;
}

const tmp = mkdtempSync(join(tmpdir(), "wanlab-shot-"));
try {
  const executed = join(tmp, `${name}.ipynb`);
  run("/usr/bin/python3", [join(here, "..", "test", "python", "notebooks.py"), "execute", join(here, `${name}.ipynb`), executed], { cwd: here });
  run("/usr/bin/python3", ["-m", "nbconvert", "--to", "html", executed, "--output-dir", tmp]);
  run("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=8000", `--window-size=1000,${height}`, `--screenshot=${out}`, `file://${join(tmp, `${name}.html`)}`]);
  console.log(`wrote ${out}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

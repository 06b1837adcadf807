// The zx scripts' command lines (scripts/lib/flags.mjs): one declared table per script, --help
// made from it, unknown flags refused naming the nearest known one before any server or job,
// and the shebang runnable without zx on PATH. Also the progress lines (scripts/lib/progress.mjs)
// and the contact sheets' labels (scripts/lib/contact-sheet.mjs), and `wanlab sweep|batch`
// running the package's scripts. No server here: scripts.test.ts runs them against the tiny model.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { root, scratch, wanlab } from "./helpers.js";

type Table = { flag: string; type: string; help: string; default?: unknown; aliases?: string[]; required?: boolean }[];
interface Flags {
  defineFlags(table: Table, meta: { name: string; about?: string; examples?: string[] }): { parse(args: string[]): Record<string, unknown> | undefined; help(): string };
  nearest(name: string, names: string[]): string | undefined;
  distance(a: string, b: string): number;
}
interface Progress {
  progress(total: number, options: { stream: { isTTY?: boolean; columns?: number; write(s: string): void }; now: () => number }): { finished(ok: boolean, what: string, count?: number): void; end(): void };
  duration(s: number): string;
}
interface Sheet {
  wrapLabel(text: string, chars?: number): string[];
  varying<T>(runs: T[], describe: (r: T) => [string, unknown][]): string[];
}
const lib = async <T>(name: string) => (await import(pathToFileURL(join(root, "scripts", "lib", name)).href)) as T;

const dir = scratch("wanlab-script-flags-");
/** Runs a script as a user would; no server is running for it (WANLAB_RUNTIME_DIR is empty). */
function script(name: string, args: string[]) {
  const r = spawnSync(process.execPath, [join(root, "scripts", name), ...args], { encoding: "utf8", cwd: dir, env: { ...process.env, CI: "1", WANLAB_RUNTIME_DIR: join(dir, "none") } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("every script refuses an unknown flag with exit 2, naming the nearest known flag, before it starts a server or submits a job", () => {
  const missingModel = ["--model", join(dir, "no-model")]; // would fail differently if a server were started
  const cases: [string, string[], string][] = [
    ["sweep.mjs", ["--prompt", "a cat", "--cfgs", "1,3", "--seed", "4", ...missingModel], "sweep.mjs: unknown flag --cfgs; did you mean --cfg?"],
    ["sweep.mjs", ["--prompt", "a cat", "--seed", "4", ...missingModel], "sweep.mjs: unknown flag --seed; did you mean --seeds?"],
    ["batch.mjs", ["--stesp", "2", "--dry-run"], "batch.mjs: unknown flag --stesp; did you mean --steps?"],
    ["batch.mjs", ["--prompts", "p.txt", "--modle", "x"], "batch.mjs: unknown flag --modle; did you mean --model?"],
    ["fork.mjs", ["--prompt", "a cat", "--at", "2", "--teacache", "0.1"], "fork.mjs: unknown flag --teacache; did you mean --tea-cache?"],
    ["bench.mjs", ["--size", "16x16x1", ...missingModel], "bench.mjs: unknown flag --size; did you mean --sizes?"],
    ["loadtest.mjs", ["--job", "3"], "loadtest.mjs: unknown flag --job; did you mean --jobs?"],
    ["sweep.mjs", ["--prompt", "a cat", "--zzzzzzzz"], "sweep.mjs: unknown flag --zzzzzzzz; see --help"],
  ];
  for (const [name, args, message] of cases) {
    const r = script(name, args);
    assert.equal(r.status, 2, `${name} ${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr, `${message}\n`);
    assert.equal(r.stdout, "");
  }
});

test("scripts refuse a malformed value, a missing value, a single-valued flag given twice, a stray argument and flags that do not go together, exit 2", () => {
  writeFileSync(join(dir, "a.txt"), "a cat\n");
  const cases: [string, string[], RegExp][] = [
    ["sweep.mjs", ["--prompt", "a cat", "--cfg", "3,x"], /^sweep\.mjs: --cfg must be a comma-separated list of numbers, got '3,x'\n$/],
    ["sweep.mjs", ["--prompt", "a cat", "--height", "big"], /^sweep\.mjs: --height must be a number, got 'big'\n$/],
    ["sweep.mjs", ["--prompt"], /^sweep\.mjs: --prompt needs a value \(TEXT\)\n$/],
    ["sweep.mjs", ["--prompt", "--cfg", "3"], /^sweep\.mjs: --prompt needs a value \(TEXT\)\n$/],
    ["sweep.mjs", ["--cfg", "3"], /^sweep\.mjs: --prompt TEXT is required\n/],
    ["batch.mjs", ["--prompts", "a.txt", "--steps", "2", "--num-inference-steps", "3"], /^batch\.mjs: --steps is given twice\n$/],
    ["batch.mjs", ["--prompts", "a.txt", "extra"], /^batch\.mjs: unexpected argument 'extra'/],
    ["bench.mjs", ["--steps", "1.5"], /^bench\.mjs: --steps must be an integer, got '1\.5'\n$/],
    ["bench.mjs", ["--layouts", "1x1,two"], /^bench\.mjs: --layouts: 'two' does not match/],
    ["bench.mjs", ["--server", "--layouts", "2x1"], /^bench\.mjs: --model, --outputs, --devices and --layouts start servers of their own; not with --url or --server/],
    ["batch.mjs", ["--prompts", "a.txt", "--token", "t"], /^batch\.mjs: --token goes with --url\n$/],
  ];
  for (const [name, args, re] of cases) {
    const r = script(name, args);
    assert.equal(r.status, 2, `${name} ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test("--help of every script is made from its flag table: each flag with its help and default, within 100 columns, exit 0", () => {
  const expect: Record<string, string[]> = {
    "sweep.mjs": ["usage: sweep.mjs --prompt TEXT [flags]", "--cfg X,...", "classifier-free guidance scales (default: 5; comma-separated or repeated)",
      "--steps X,...", "also --num-inference-steps", "--seeds X,...", "--out DIR", "default: sweep", "--model DIR", "--url URL", "--tiled", "examples:"],
    "fork.mjs": ["usage: fork.mjs --prompt TEXT --at K [flags]", "--at K", "(required)", "--cfg X,...", "the continuations' classifier-free guidance scales", "--out DIR", "default: fork", "--url URL"],
    "batch.mjs": ["usage: batch.mjs --prompts FILE [flags]", "--prompts FILE", "(required)", "--steps N", "--seed N", "--dry-run", "--out DIR", "default: batch", "--budget BYTES|auto"],
    "bench.mjs": ["usage: bench.mjs [flags]", "--sizes HxWxF,...", "default: 16x16x1,32x32x5", "--layouts UxR,...", "--repeat N", "default: 2"],
    "loadtest.mjs": ["usage: loadtest.mjs [flags]", "--jobs N", "default: 200", "--faults SPEC", "default: transient=0.1,fatal=0.05", "--keep"],
  };
  for (const [name, parts] of Object.entries(expect)) {
    for (const flag of ["--help", "-h"]) {
      const r = script(name, [flag]);
      assert.equal(r.status, 0, `${name} ${flag}: ${r.stderr}`);
      assert.equal(r.stderr, "");
      for (const p of parts) assert.ok(r.stdout.includes(p), `${name} --help shows '${p}':\n${r.stdout}`);
      for (const line of r.stdout.split("\n")) assert.ok(line.length <= 100, `${name} --help line over 100 columns: ${line}`);
    }
  }
});

test("the scripts run by their shebang from the repository root with no zx (or node_modules/.bin) on PATH", () => {
  const path = (process.env.PATH ?? "").split(delimiter).filter((p) => !p.includes("node_modules")).join(delimiter);
  for (const name of ["sweep.mjs", "batch.mjs", "fork.mjs", "bench.mjs", "loadtest.mjs"]) {
    const r = spawnSync(`./scripts/${name}`, ["--help"], { encoding: "utf8", cwd: root, env: { ...process.env, PATH: path } });
    assert.equal(r.status, 0, `./scripts/${name} --help: ${r.error ?? r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: ${name.replace(".", "\\.")}`));
  }
});

test("defineFlags: defaults, lists comma-separated and repeated, aliases, --x=v, booleans; --help printed from the table", async () => {
  const { defineFlags } = await lib<Flags>("flags.mjs");
  const flags = defineFlags([
    { flag: "name", type: "string", help: "a name", required: true },
    { flag: "n", type: "integer", help: "a count", default: 3 },
    { flag: "xs", type: "numbers", help: "some numbers", default: [1] },
    { flag: "steps", type: "integer", help: "steps", aliases: ["num-inference-steps"] },
    { flag: "dry", type: "boolean", help: "do nothing" },
  ], { name: "t.mjs", about: "A test.", examples: ["t.mjs --name a"] });
  assert.deepEqual(flags.parse(["--name", "a"]), { name: "a", n: 3, xs: [1] });
  assert.deepEqual(flags.parse(["--name=a b", "--xs", "1,2", "--xs=3", "--num-inference-steps", "7", "--dry", "--n", "-4"]),
    { name: "a b", xs: [1, 2, 3], steps: 7, dry: true, n: -4 });
  assert.deepEqual(flags.parse(["--name", "a", "--dry=false"]), { name: "a", dry: false, n: 3, xs: [1] });
  assert.throws(() => flags.parse(["--name", "a", "--dry=yes"]), /--dry takes no value \(or =true, =false\), got 'yes'/);
  assert.throws(() => flags.parse(["--name", "a", "--xz", "1"]), { name: "Error", message: "unknown flag --xz; did you mean --xs?" });
  assert.throws(() => flags.parse(["--name", "a", "--stpes=4"]), { message: "unknown flag --stpes; did you mean --steps?" });
  assert.throws(() => flags.parse(["--n", "1"]), /^Error: --name TEXT is required\nusage: t\.mjs --name TEXT \[flags\]/);
  const help = flags.help();
  assert.equal(help.split("\n")[0], "usage: t.mjs --name TEXT [flags]");
  for (const line of ["  --name TEXT", "a name (required)", "  --n N", "a count (default: 3)", "  --xs X,...", "some numbers (default: 1; comma-separated or repeated)",
    "steps (also --num-inference-steps)", "  --dry", "  --help", "print this help and exit (also -h)", "A test.", "examples:\n  t.mjs --name a"])
    assert.ok(help.includes(line), `help has '${line}':\n${help}`);
  assert.throws(() => defineFlags([{ flag: "a", type: "string", help: "" }, { flag: "b", type: "string", help: "", aliases: ["a"] }], { name: "t.mjs" }), /flag --a is declared twice/);
});

test("nearest: a typo's nearest flag (a transposition is one edit); nothing when no flag is near", async () => {
  const { nearest, distance } = await lib<Flags>("flags.mjs");
  assert.equal(distance("stesp", "steps"), 1);
  assert.equal(distance("cfgs", "cfg"), 1);
  const names = ["prompt", "cfg", "shift", "steps", "seeds", "out", "model", "num-frames", "height"];
  assert.equal(nearest("cfgs", names), "cfg");
  assert.equal(nearest("stesp", names), "steps");
  assert.equal(nearest("seed", names), "seeds");
  assert.equal(nearest("frames", [...names, "fresh"]), "num-frames");
  assert.equal(nearest("hieght", names), "height");
  assert.equal(nearest("zzzzzzzz", names), undefined);
});

test("progress: one line per finished job off a terminal with n/N, elapsed, ETA and failures so far; in place on a terminal", async () => {
  const { progress, duration } = await lib<Progress>("progress.mjs");
  let t = 0;
  const lines: string[] = [];
  const p = progress(4, { stream: { write: (s) => void lines.push(s) }, now: () => t });
  t = 2000;
  p.finished(true, "cfg 3: done");
  t = 5000;
  p.finished(false, "cfg 5: failed: out of memory");
  t = 90_000;
  p.finished(true, "cfg 7: done");
  t = 100_000;
  p.finished(true, "cfg 9: done");
  p.end();
  assert.deepEqual(lines, [
    "[1/4] 2.0s elapsed, ETA 6.0s, 0 failed: cfg 3: done\n",
    "[2/4] 5.0s elapsed, ETA 5.0s, 1 failed: cfg 5: failed: out of memory\n",
    "[3/4] 1m30s elapsed, ETA 30.0s, 1 failed: cfg 7: done\n",
    "[4/4] 1m40s elapsed, 1 failed: cfg 9: done\n",
  ]);
  assert.equal(duration(4000), "1h06m");
  lines.length = 0;
  const skipping = progress(5, { stream: { write: (s) => void lines.push(s) }, now: () => t });
  skipping.finished(false, "2x1: skipped", 3);
  assert.deepEqual(lines, ["[3/5] 0.0s elapsed, ETA 0.0s, 3 failed: 2x1: skipped\n"]);
  const tty: string[] = [];
  const q = progress(3, { stream: { isTTY: true, columns: 80, write: (s) => void tty.push(s) }, now: () => t });
  q.finished(false, "line 3: failed: boom");
  q.finished(true, "line 4: done");
  q.finished(true, `\x1b[32mdone\x1b[39m ${"x".repeat(100)}`);
  q.end();
  assert.deepEqual(tty, ["\r\x1b[Kline 3: failed: boom\n", "\r\x1b[K[1/3] 0.0s elapsed, ETA 0.0s, 1 failed: line 3: failed: boom",
    "\r\x1b[K[2/3] 0.0s elapsed, ETA 0.0s, 1 failed: line 4: done", `\r\x1b[K[3/3] 0.0s elapsed, 1 failed: done ${"x".repeat(43)}…`, "\n"]); // cut to the terminal's 80 columns, colours dropped
});

test("contact sheet labels: only the parameters that vary over the grid, wrapped between parts, then words", async () => {
  const { wrapLabel, varying } = await lib<Sheet>("contact-sheet.mjs");
  const runs = [{ cfg: 3, steps: 10, seed: 1 }, { cfg: 5, steps: 10, seed: 1 }, { cfg: 3, steps: 10, seed: 2 }];
  const describe = (r: (typeof runs)[0]): [string, unknown][] => [["cfg", r.cfg], ["steps", r.steps], ["seed", r.seed]];
  assert.deepEqual(varying(runs, describe), ["cfg 3, seed 1", "cfg 5, seed 1", "cfg 3, seed 2"]);
  assert.deepEqual(varying([runs[0]!], describe), ["cfg 3, 10 steps, seed 1"]);
  assert.deepEqual(wrapLabel("cfg 3, shift 5, 10 steps, seed 42", 16), ["cfg 3, shift 5,", "10 steps,", "seed 42"]);
  assert.deepEqual(wrapLabel("line 4, seed 7, a red fox in deep snow", 16), ["line 4, seed 7,", "a red fox in", "deep snow"]);
  assert.deepEqual(wrapLabel("x".repeat(20), 8), ["xxxxxxxx", "xxxxxxxx", "xxxx"]);
});

test("wanlab sweep and wanlab batch run the package's scripts with the same flags, output and exit status; wanlab help lists them", () => {
  writeFileSync(join(dir, "two.txt"), "a cat\n# a comment\na dog\n");
  const env = { CI: "1", WANLAB_RUNTIME_DIR: join(dir, "none") };
  const viaCli = (args: string[]) => {
    const r = spawnSync(process.execPath, [join(root, "bin", "wanlab.js"), ...args], { encoding: "utf8", cwd: dir, env: { ...process.env, ...env } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const cases: [string, string[], number][] = [
    ["sweep", ["--help"], 0],
    ["batch", ["--prompts", "two.txt", "--steps", "2", "--dry-run"], 0], // prints the jobs, submits none
    ["batch", ["--stesp", "2", "--dry-run"], 2],
    ["sweep", ["--prompt", "a cat", "--cfgs", "1,3"], 2],
    ["sweep", ["--prompt", "a cat", "--url", "http://127.0.0.1:9"], 1], // nothing listens there
    ["fork", ["--help"], 0],
    ["fork", ["--prompt", "a cat", "--at", "2", "--cfgs", "1"], 2],
  ];
  for (const [name, args, status] of cases) {
    const direct = script(`${name}.mjs`, args);
    const through = viaCli([name, ...args]);
    assert.equal(through.status, status, `wanlab ${name} ${args.join(" ")}: ${through.stderr}`);
    assert.deepEqual(through, direct, `wanlab ${name} ${args.join(" ")} is scripts/${name}.mjs`);
  }
  assert.match(viaCli(["batch", "--prompts", "two.txt", "--dry-run"]).stdout, /^two\.txt:1: \{"prompt":"a cat"\}\ntwo\.txt:3: \{"prompt":"a dog"\}\n$/);
  const help = wanlab(["help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^  sweep \[flags\] .*`wanlab sweep --help`/m);
  assert.match(help.stdout, /^  batch \[flags\] .*`wanlab batch --help`/m);
  assert.match(help.stdout, /^  fork \[flags\] .*`wanlab fork --help`/m);
  for (const line of help.stdout.split("\n")) assert.ok([...line].length <= 100, `wanlab help: ${line}`);
  const sweepHelp = wanlab(["help", "sweep"]);
  assert.equal(sweepHelp.status, 0);
  assert.deepEqual(sweepHelp, wanlab(["sweep", "--help"]));
  const typo = wanlab(["swep"]);
  assert.equal(typo.status, 2);
  assert.match(typo.stderr, /^wanlab: unknown command swep; did you mean sweep\?/);
});

test("docs/scripts.md's flags section is what scripts/lib/docs-scripts.mjs makes from the flag tables", async () => {
  const { flagsSection, page } = await lib<{ flagsSection(): string; page: string }>("docs-scripts.mjs");
  const section = flagsSection();
  for (const flag of ["`--cfg X,...`", "`--seeds X,...`", "`--prompts FILE`", "`--dry-run`", "`--budget BYTES\\|auto`", "`--at K`", "`--tea-cache X,...`"]) assert.ok(section.includes(`| ${flag} |`), flag);
  assert.ok(readFileSync(page, "utf8").includes(section), "regenerate: node scripts/lib/docs-scripts.mjs --write");
});

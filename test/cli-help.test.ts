// Help for every command and subcommand: `wanlab COMMAND --help` and `-h` print the command's
// usage, what it does and each flag with its default and an example, in lines of at most 100
// columns, and exit 0 (bench and kernel included).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { wanlab } from "./helpers.js";

const commandLines = [
  ["demo"], ["generate"], ["inspect"], ["make-tiny"], ["bench"], ["bench", "dit"], ["bench", "vae"], ["bench", "t5"], ["bench", "load"],
  ["bench", "parallel"], ["bench", "projection"], ["serve"], ["kernel"], ["kernel", "install"], ["kernel", "uninstall"], ["kernel", "list"], ["doctor"],
];

function assertFits(text: string, what: string): void {
  for (const line of text.split("\n")) assert.ok(line.length <= 100, `${what}: a line of ${line.length} columns: ${line}`);
}

describe("wanlab COMMAND --help", () => {
  for (const args of commandLines)
    for (const flag of ["--help", "-h"])
      test(`wanlab ${args.join(" ")} ${flag} prints its usage and options within 100 columns and exits 0`, () => {
        const r = wanlab([...args, flag]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stderr, "");
        assert.match(r.stdout, new RegExp(`^usage: wanlab ${args[0]}`));
        assertFits(r.stdout, `${args.join(" ")} ${flag}`);
        if (args[0] !== "kernel" || args.length === 1) assert.match(r.stdout, /^options( of wanlab [^:]+)?:$/m);
      });

  test("bench --help shows each kind's usage and options", () => {
    const r = wanlab(["bench", "--help"]);
    for (const head of ["bench dit|vae|t5", "bench load DIR", "bench parallel", "bench projection"]) assert.ok(r.stdout.includes(`wanlab ${head}`), head);
    assert.match(r.stdout, /^options of wanlab bench load DIR:$/m);
    assert.match(r.stdout, /^ {2}--touch +also read every weight once/m);
  });

  test("a flag's line says what it does, its allowed values and default, then an example", () => {
    const r = wanlab(["generate", "--help"]);
    assert.match(r.stdout, /^ {2}--num-inference-steps N +denoising steps \(1 to 1000; default 50\)\n +e\.g\. --num-inference-steps 30$/m);
    assert.match(r.stdout, /^ {2}--prompt TEXT +what the video shows \(required\)$/m);
    assert.match(r.stdout, /^usage: wanlab generate --prompt TEXT \[options\]$/m);
  });

  test("wanlab help (and help COMMAND) fits 100 columns; with no command it exits 2", () => {
    const all = wanlab(["help"]);
    assert.equal(all.status, 0);
    assertFits(all.stdout, "wanlab help");
    const one = wanlab(["help", "generate"]);
    assert.equal(one.status, 0);
    assert.equal(one.stdout, wanlab(["generate", "--help"]).stdout);
    assert.equal(wanlab([]).status, 2);
  });
});

describe("mistyped commands and flags", () => {
  test("an unknown flag is named with the nearest flag of that command, and exits 2", () => {
    const r = wanlab(["generate", "--stesp", "2", "--prompt", "x"]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, "wanlab generate: unknown option --stesp; did you mean --steps?\n");
    const eq = wanlab(["generate", "--prompt", "x", "--hieght=64"]);
    assert.equal(eq.stderr, "wanlab generate: unknown option --hieght; did you mean --height?\n");
    // no parseArgs text and its misleading `--` hint
    assert.doesNotMatch(r.stderr + eq.stderr, /positional|'--'/);
  });

  test("an unknown flag nothing is close to gets no suggestion", () => {
    const r = wanlab(["make-tiny", "out", "--colour", "red"]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, "wanlab make-tiny: unknown option --colour\n");
  });

  test("an unknown command, bench kind or kernel subcommand is named with the nearest one", () => {
    const cmd = wanlab(["generat", "--prompt", "x"]);
    assert.equal(cmd.status, 2);
    assert.equal(cmd.stderr.split("\n")[0], "wanlab: unknown command generat; did you mean generate?");
    assert.match(cmd.stderr, /^Run `wanlab help` for the commands: .*\bgenerate\b/m);
    const none = wanlab(["frobnicate"]);
    assert.equal(none.status, 2);
    assert.equal(none.stderr.split("\n")[0], "wanlab: unknown command frobnicate");
    const bench = wanlab(["bench", "ditt"]);
    assert.equal(bench.status, 2);
    assert.match(bench.stderr, /^wanlab bench: bench needs a target: dit, vae, t5, load, parallel, projection \(got 'ditt'\); did you mean dit\?$/m);
    const kernel = wanlab(["kernel", "instal"]);
    assert.equal(kernel.status, 2);
    assert.match(kernel.stderr, /; did you mean install\?$/m);
  });

  test("a flag without its value, or a switch given one, is named with what it takes", () => {
    const missing = wanlab(["generate", "--prompt"]);
    assert.equal(missing.status, 2);
    assert.equal(missing.stderr, "wanlab generate: --prompt needs a value: --prompt TEXT\n");
    const valued = wanlab(["generate", "--prompt", "x", "--tiled=yes"]);
    assert.equal(valued.status, 2);
    assert.equal(valued.stderr, "wanlab generate: --tiled is a switch and takes no value\n");
  });

  test("--steps is short for --num-inference-steps; giving both is a usage error", () => {
    const r = wanlab(["generate", "--prompt", "x", "--steps", "2", "--num-inference-steps", "3"]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, "wanlab generate: --steps is short for --num-inference-steps; give one of them\n");
    const bad = wanlab(["generate", "--prompt", "x", "--steps", "1.5"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^wanlab generate: --steps must be an integer, got '1\.5' \(a decimal integer from 1 to 1000\)$/m);
  });
});

// The option table (src/options/table.ts) is the one place a flag is spelled: each command's
// --help, `wanlab help`, docs/cli.md, the CLI's range messages and the server's job schema are made
// from it, so none of them can drift from the others.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { dimsPresets, layouts } from "../models.js";
import { allowedText, cliMarkdown, commandHelp, defaultText, flagText, helpWidth, usageText } from "./usage.js";
import { apiKeyOfEngineField, commands, optionTable, rangeOf, rowsOf, type Command } from "./table.js";
import { defaults, paramRanges, teaCacheModelIds } from "../params.js";
import { jobBodySchema, paramSchemas } from "../server/schema.js";
import { root, wanlab } from "../../test/helpers.js";

/** The command line that asks each table command for its help. */
const helpArgs: Record<Command, string[]> = {
  demo: ["demo"], generate: ["generate"], inspect: ["inspect"], "make-tiny": ["make-tiny"], "bench-model": ["bench", "dit"],
  "bench-load": ["bench", "load"], "bench-parallel": ["bench", "parallel"], "bench-projection": ["bench", "projection"], serve: ["serve"], "kernel-install": ["kernel"],
  "kernel-uninstall": ["kernel"], "kernel-list": ["kernel"], doctor: ["doctor"],
};

test("docs/cli.md is the reference the table makes (node scripts/docs-cli.mjs > docs/cli.md)", () => {
  assert.equal(readFileSync(join(root, "docs", "cli.md"), "utf8"), cliMarkdown(), "docs/cli.md is stale: run `node scripts/docs-cli.mjs > docs/cli.md`");
  // Each flag is a row of its command's table (a '|' in a table cell is written '\\|').
  for (const c of commands)
    for (const r of rowsOf(c)) assert.ok(cliMarkdown().includes(`| \`${flagText(r).replace(/\|/g, "\\|")}\` |`), `docs/cli.md lacks ${flagText(r)}`);
});

test("wanlab COMMAND --help shows each of the table's flags for that command with its allowed values, and exits 0", () => {
  for (const c of commands) {
    const r = wanlab([...helpArgs[c], "--help"]);
    assert.equal(r.status, 0, `${c}: ${r.stderr}`);
    assert.match(r.stdout, /^usage: wanlab /);
    for (const row of rowsOf(c)) {
      assert.ok(r.stdout.includes(`  ${flagText(row)} `), `${helpArgs[c].join(" ")} --help lacks ${flagText(row)}`);
      const allowed = allowedText(row);
      if (allowed) assert.ok(r.stdout.replace(/\s+/g, " ").includes(allowed), `${helpArgs[c].join(" ")} --help lacks ${flagText(row)}'s ${allowed}`);
    }
  }
});

test("wanlab help lists every command with each of its flags", () => {
  const r = wanlab(["help"]);
  assert.equal(r.status, 0);
  for (const c of commands) for (const row of rowsOf(c)) assert.ok(r.stdout.includes(flagText(row)), `wanlab help lacks ${c}'s ${flagText(row)}`);
});

test("a command takes exactly its table's flags: another command's flag is a usage error naming it", () => {
  const r = wanlab(["inspect", "DIR", "--fps", "5"]);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, "wanlab inspect: unknown option --fps\n");
  assert.ok(!rowsOf("inspect").some((x) => x.flag === "fps"));
});

test("the CLI's range messages quote the table's ranges", () => {
  const [lo, hi] = rangeOf("serve", "port");
  const port = wanlab(["serve", "--port", String(hi + 1)]);
  assert.equal(port.status, 2);
  assert.match(port.stderr, new RegExp(`--port must be between ${lo} and ${hi}, got ${hi + 1}`));
  const [, maxSteps] = rangeOf("generate", "num-inference-steps");
  const steps = wanlab(["generate", "--model", "m", "--prompt", "x", "--num-inference-steps", "1.5"]);
  assert.equal(steps.status, 2);
  assert.match(steps.stderr, new RegExp(`a decimal integer from 1 to ${maxSteps}\\)`));
});

test("params.ts's ranges and defaults and the server's schema are the table's rows", () => {
  for (const [key, range] of Object.entries(paramRanges)) {
    const row = optionTable.find((r) => r.key === key && r.param)!;
    assert.deepEqual(range, row.range, key);
  }
  for (const [key, schema] of Object.entries(paramSchemas)) {
    const row = optionTable.find((r) => r.key === key && r.param);
    assert.ok(row, `no table row for the job field ${key}`);
    const type = (schema as { type?: string }).type;
    if (row.type === "integer" || row.type === "number" || row.type === "boolean" || row.type === "string") assert.equal(type, row.type, key);
    if (row.maxLength !== undefined) assert.equal((schema as { maxLength?: number }).maxLength, row.maxLength, key);
  }
  const props = jobBodySchema.properties as Record<string, { minimum?: number; maximum?: number }>;
  for (const key of ["fps", "crf"] as const) assert.deepEqual([props[key]!.minimum, props[key]!.maximum], rangeOf("generate", key), key);
  for (const [key, value] of Object.entries(defaults)) if (typeof value === "number") assert.ok(optionTable.some((r) => r.key === key && r.param), key);
});

test("the table's choices are the values the code takes (layouts, dims, TeaCache calibrations)", () => {
  const choices = (c: Command, flag: string) => optionTable.find((r) => r.flag === flag && r.commands.includes(c))!.choices;
  assert.deepEqual(choices("make-tiny", "layout"), layouts);
  assert.deepEqual(choices("make-tiny", "dims"), dimsPresets);
  assert.deepEqual(choices("bench-model", "dims"), dimsPresets);
  assert.deepEqual(choices("generate", "tea-cache-model-id"), teaCacheModelIds);
});

test("each engine field name is the snake_case of its API key", () => {
  for (const [engine, key] of apiKeyOfEngineField) assert.equal(engine, key.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase()), key);
  assert.equal(apiKeyOfEngineField.get("num_inference_steps"), "numInferenceSteps");
  assert.equal(apiKeyOfEngineField.get("tea_cache_l1_thresh"), "teaCacheL1Thresh");
});

test("every flag has a description, a default (or is required) and an example that uses it", () => {
  for (const r of optionTable.filter((x) => x.flag !== undefined)) {
    const name = `--${r.flag} of ${r.commands.join(", ")}`;
    assert.ok(r.help.length > 0, `${name} has no description`);
    assert.ok(r.required || defaultText(r) !== "", `${name} has no default`);
    assert.ok(r.example !== undefined && new RegExp(`(^| )--${r.flag}( |$)`).test(r.example), `${name}'s example does not use it: ${r.example}`);
  }
});

test("each --help states every flag's default and example, in lines of at most 100 columns", () => {
  for (const c of commands) {
    const text = commandHelp(c);
    for (const line of text.split("\n")) assert.ok(line.length <= helpWidth, `${c}: ${line.length} columns: ${line}`);
    const flat = text.replace(/\s+/g, " ");
    for (const r of rowsOf(c)) {
      assert.ok(flat.includes(`e.g. ${r.example}`), `${c} --help lacks the example of --${r.flag}`);
      if (!r.required) assert.ok(flat.includes(`default ${defaultText(r)}`), `${c} --help lacks the default of --${r.flag}`);
    }
  }
  for (const line of usageText().split("\n")) assert.ok(line.length <= helpWidth, `wanlab help: ${line.length} columns: ${line}`);
  // docs/cli.md: the synopses fit too (its tables are markdown rows)
  for (const line of cliMarkdown().split("\n").filter((l) => l.startsWith("wanlab ") || l.startsWith("       ")))
    assert.ok(line.length <= helpWidth, `docs/cli.md: ${line}`);
});

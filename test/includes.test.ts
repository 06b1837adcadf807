// scripts/check-includes.mjs, the layer check `npm test` runs: the native tree's includes all look
// down the layer order, and an include planted in a copy of the tree (never the real one) that runs
// upward, sideways between siblings, or from a folder without a layer is reported and fails it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { root, scratch } from "./helpers.js";

const script = join(root, "scripts", "check-includes.mjs");
const src = join(root, "native", "src");

function check(dir: string) {
  const r = spawnSync(process.execPath, [script, dir], { encoding: "utf8" });
  return { status: r.status, out: r.stdout + r.stderr };
}

// A copy of native/src with `line` appended to `file`; returns the copy and the planted line's number.
function plantedCopy(file: string, line: string): { dir: string; lineNo: number } {
  const dir = join(scratch(), "src");
  cpSync(src, dir, { recursive: true });
  const lines = readFileSync(join(dir, file), "utf8").split("\n").length;
  appendFileSync(join(dir, file), `${line}\n`);
  return { dir, lineNo: lines };
}

test("includes: every include in native/src looks down the layer order, and the check exits 0", () => {
  const r = check(src);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /every include looks down/);
});

test("includes: an upward include (models including pipeline) planted in a copy is reported with file, line and layers, exit 1", () => {
  const { dir, lineNo } = plantedCopy("models/dit.h", '#include "pipeline/t2v.h"');
  const r = check(dir);
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, new RegExp(`models/dit\\.h:${lineNo}: #include "pipeline/t2v\\.h" runs upward \\(models is layer 4, pipeline layer 5\\)`));
  assert.equal(check(src).status, 0, "the real tree is untouched");
});

test("includes: a sideways include between the sibling layers parallel and models is reported, exit 1", () => {
  const { dir } = plantedCopy("parallel/ring.cpp", '#include "models/dit.h"');
  const r = check(dir);
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /parallel\/ring\.cpp:\d+: #include "models\/dit\.h" runs sideways/);
});

test("includes: a formats file including checkpoint (a layout above it) is reported, exit 1", () => {
  const { dir } = plantedCopy("formats/pth.h", '  #  include "checkpoint/layout.h"');
  const r = check(dir);
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /formats\/pth\.h:\d+: #include "checkpoint\/layout\.h" runs upward/);
});

test("includes: a new folder under native/src without a layer in the table is reported, exit 1", () => {
  const { dir } = plantedCopy("common/log.h", "");
  mkdirSync(join(dir, "extras"));
  writeFileSync(join(dir, "extras", "x.cpp"), '#include "common/log.h"\n');
  const r = check(dir);
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /folder extras\/ has no layer/);
});

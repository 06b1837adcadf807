// "Did you mean": the nearest known name by edit distance, nothing when none is close.
import assert from "node:assert/strict";
import { test } from "node:test";
import { didYouMean, editDistance, nearest } from "./suggest.js";

test("a swap of two neighbouring letters is one edit, as are an insertion, a deletion and a substitution", () => {
  assert.equal(editDistance("stesp", "steps"), 1);
  assert.equal(editDistance("generat", "generate"), 1);
  assert.equal(editDistance("seeed", "seed"), 1);
  assert.equal(editDistance("hieght", "height"), 1);
  assert.equal(editDistance("widht", "width"), 1);
  assert.equal(editDistance("fps", "crf"), 3);
  assert.equal(editDistance("", "abc"), 3);
});

test("the nearest known name is suggested; a name nothing is close to gets no suggestion", () => {
  const generate = ["model", "prompt", "seed", "num-inference-steps", "steps", "height", "width", "num-frames"];
  assert.equal(nearest("stesp", generate), "steps");
  assert.equal(nearest("num-frame", generate), "num-frames");
  assert.equal(nearest("colour", ["layout", "seed", "dims"]), undefined);
  assert.equal(nearest("fps", ["json", "height", "ring", "budget"]), undefined);
  assert.equal(didYouMean("stesp", generate, "--"), "; did you mean --steps?");
  assert.equal(didYouMean("zzzzzz", generate, "--"), "");
  // a short name allows one edit: -s is no --fps, --fsp is
  assert.equal(nearest("s", ["fps", "crf", "seed"]), undefined);
  assert.equal(nearest("fsp", ["fps", "crf", "seed"]), "fps");
});

// The model constants TypeScript writes down are the engine's: the dims presets the CLI offers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { modelConstants } from "./model-facts.js";
import { dimsPresets } from "./models.js";

test("dimsPresets are the engine's dims presets, each once", () => {
  assert.deepEqual(Object.keys(modelConstants().presets).sort(), [...dimsPresets].sort());
  assert.equal(new Set(dimsPresets).size, dimsPresets.length);
});

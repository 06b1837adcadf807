// The notebook lab's rank rows: which device plays which part of a device group.
import assert from "node:assert/strict";
import { test } from "node:test";
import { rankRows } from "./lab.js";

test("rank rows follow the engine's rank layout (g = cfg · sp + ring · ulysses + ulysses index)", () => {
  const rows = rankRows({ devices: 4, ulysses: 2, ring: 2, cfg: 1 }, "cpu:0-3");
  assert.deepEqual(rows.map((r) => `${r.device} ${r.role}`), ["cpu:0 ulysses 0/2 · ring 0/2", "cpu:1 ulysses 1/2 · ring 0/2", "cpu:2 ulysses 0/2 · ring 1/2", "cpu:3 ulysses 1/2 · ring 1/2"]);
  assert.deepEqual(rankRows({ devices: 4, ulysses: 2, ring: 1, cfg: 2 }, "cpu:0-3").map((r) => r.role), ["ulysses 0/2 · cfg cond", "ulysses 1/2 · cfg cond", "ulysses 0/2 · cfg uncond", "ulysses 1/2 · cfg uncond"]);
  assert.deepEqual(rankRows({ devices: 1, ulysses: 1, ring: 1, cfg: 1 }, "cpu"), []);
});

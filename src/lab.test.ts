// The notebook lab's rank rows: which device plays which part of a device group.
import assert from "node:assert/strict";
import { test } from "node:test";
import { expandDevices, rankRows } from "./lab.js";

test("rank rows follow the engine's rank layout (g = cfg · sp + ring · ulysses + ulysses index)", () => {
  const rows = rankRows({ devices: 4, ulysses: 2, ring: 2, cfg: 1 }, "cpu:0-3");
  assert.deepEqual(rows.map((r) => `${r.device} ${r.role}`), ["cpu:0 ulysses 0/2 · ring 0/2", "cpu:1 ulysses 1/2 · ring 0/2", "cpu:2 ulysses 0/2 · ring 1/2", "cpu:3 ulysses 1/2 · ring 1/2"]);
  assert.deepEqual(rankRows({ devices: 4, ulysses: 2, ring: 1, cfg: 2 }, "cpu:0-3").map((r) => r.role), ["ulysses 0/2 · cfg cond", "ulysses 1/2 · cfg cond", "ulysses 0/2 · cfg uncond", "ulysses 1/2 · cfg uncond"]);
  assert.deepEqual(rankRows({ devices: 1, ulysses: 1, ring: 1, cfg: 1 }, "cpu"), []);
});

test("a shared GPU's ranks (cuda:0x4) are named by that GPU, each rank row its device", () => {
  assert.deepEqual(expandDevices("cuda:0x4"), ["cuda:0", "cuda:0", "cuda:0", "cuda:0"]);
  assert.deepEqual(expandDevices("cuda:3x2"), ["cuda:3", "cuda:3"]);
  assert.deepEqual(expandDevices("cpu:0x2"), []);  // CPU ranks are numbered (cpu:0-1); the engine refuses KxN there
  assert.deepEqual(expandDevices("cuda:0,2"), ["cuda:0", "cuda:2"]);
  assert.deepEqual(rankRows({ devices: 2, ulysses: 2, ring: 1, cfg: 1, transport: "gloo", shared_device: true }, "cuda:0x2").map((r) => `${r.device} ${r.role}`),
    ["cuda:0 ulysses 0/2", "cuda:0 ulysses 1/2"]);
});

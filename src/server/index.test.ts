// The server's default memory guard (guardProblem): which prediction is over which limit, in
// the words a refused job gets.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { MemoryPlanReport } from "../shared/lab.js";
import { guardProblem } from "./index.js";

test("guardProblem: on a GPU the card's total memory bounds the device peak, the host's bounds the host part", () => {
  const plan = { device: "cuda:0", peak_bytes: 90e9, encode_peak_bytes: 1e9, denoise_peak_bytes: 20e9, decode_peak_bytes: 90e9, host_bytes: 5e9, fits: true } as MemoryPlanReport;
  const card = { device: "cuda:0", name: "NVIDIA H100", total_bytes: 80e9, free_bytes: 79e9, allocated_bytes: 0, peak_allocated_bytes: 0, reserved_bytes: 0 };
  const host = { bytes: 100e9, what: "the host's available memory" };
  const v = { height: 720, width: 1280, numFrames: 81 };
  assert.match(guardProblem(v, plan, host, [card]), /^a 720x1280x81 generation is predicted to need 90\.00 GB on cuda:0 \(encode 1\.00 GB, denoise 20\.00 GB, decode 90\.00 GB\), more than the device's 80\.00 GB \(NVIDIA H100\); .*--budget none/);
  assert.equal(guardProblem(v, { ...plan, peak_bytes: 70e9 }, host, [card]), "");
  assert.match(guardProblem(v, { ...plan, peak_bytes: 70e9, host_bytes: 120e9 }, host, [card]), /needs? .*120\.0 GB of host memory beside cuda:0, more than the host's available memory, 100\.0 GB/);
  // a CPU engine: the host bounds the whole peak
  assert.equal(guardProblem(v, { ...plan, device: "cpu", host_bytes: 0 }, host, []), "");
  assert.match(guardProblem(v, { ...plan, device: "cpu", peak_bytes: 150e9, host_bytes: 0 }, host, []), /150\.0 GB on cpu .*more than the host's available memory, 100\.0 GB/);
});

// A minimal safetensors reader for tests (F32, I64 and U8), independent of the engine's C++ one.
import { readFileSync } from "node:fs";

export interface TestTensor {
  dtype: string;
  shape: number[];
  f32?: Float32Array;
  i64?: BigInt64Array;
  u8?: Uint8Array;
}

export function readSafetensors(path: string): { tensors: Record<string, TestTensor>; metadata: Record<string, string> } {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> & { __metadata__?: Record<string, string> };
  const base = 8 + n;
  const tensors: Record<string, TestTensor> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const e = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const [b, end] = e.data_offsets;
    const bytes = buf.subarray(base + b, base + end);
    const copy = new Uint8Array(bytes).buffer; // aligned copy
    const t: TestTensor = { dtype: e.dtype, shape: e.shape };
    if (e.dtype === "F32") t.f32 = new Float32Array(copy);
    if (e.dtype === "I64") t.i64 = new BigInt64Array(copy);
    if (e.dtype === "U8") t.u8 = new Uint8Array(copy);
    tensors[name] = t;
  }
  return { tensors, metadata: (header.__metadata__ ?? {}) as Record<string, string> };
}

/** |a - b| / |b| in float64. */
export function relL2(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`relL2: lengths ${a.length} and ${b.length} differ`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return Math.sqrt(num) / Math.sqrt(den || 1);
}

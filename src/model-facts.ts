// The model constants the engine itself uses, read from the addon (native/binding/model_facts.h)
// instead of copied: the dims presets, the VAE stride and the DiT patch, and per DiT the parameters
// of a block, its weight-shard buffers and the Ulysses head groups. Read on first use, so importing
// this module does not load the addon.
import { native, type DitFacts, type ModelConstants } from "./native.js";

let constants: ModelConstants | undefined;

/** modelConstants(), parsed once. */
export function modelConstants(): ModelConstants {
  constants ??= JSON.parse(native().modelConstants()) as ModelConstants;
  return constants;
}

/** The sizes ditFacts reads of a DiT. */
export interface DitShape {
  dim: number;
  ffnDim: number;
  numHeads: number;
}

const facts = new Map<string, DitFacts>();

/** The engine's facts for a DiT of this shape: `sp` ranks a block is sharded over, `ulysses` the
 * Ulysses degree, `bytesPerElement` 4 (float32) or 2 (bf16/f16). */
export function ditFacts(d: DitShape, sp = 1, ulysses = 1, bytesPerElement = 4): DitFacts {
  const key = [d.dim, d.ffnDim, d.numHeads, sp, ulysses, bytesPerElement].join(" ");
  let f = facts.get(key);
  if (!f) {
    f = JSON.parse(native().ditFacts(JSON.stringify({ dim: d.dim, ffn_dim: d.ffnDim, num_heads: d.numHeads }), sp, ulysses, bytesPerElement)) as DitFacts;
    facts.set(key, f);
  }
  return f;
}

// Prompt → UMT5 token ids, exactly as DiffSynth-Studio's Wan2.1 pipeline makes them.
//
// DiffSynth (wan_video_text_encoder.py, HuggingfaceTokenizer with clean='whitespace') runs
//   ftfy.fix_text → html.unescape(html.unescape(·)) → strip → collapse whitespace runs → strip
// and then T5TokenizerFast over the model's tokenizer.json with padding='max_length',
// truncation=True, max_length=512, add_special_tokens=True. This module does the same: the
// cleaning is ported in ./tokenizer/clean.ts (see `fixText` for what of ftfy is covered), and
// tokenizer.json runs through @huggingface/tokenizers, with two gaps of that library filled in so real umt5-xxl files
// match the Rust `tokenizers` library: the Precompiled normalizer (the library approximates the
// SentencePiece charsmap with NFKC; here the charsmap itself is read) and Unigram byte fallback.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { readJsonFile } from "./fs/json.js";
import { cleanPrompt } from "./tokenizer/clean.js";

export { cleanPrompt, fixText, htmlUnescape } from "./tokenizer/clean.js";

/** DiffSynth's text_len for Wan2.1: every prompt becomes exactly this many ids. */
export const defaultTextLen = 512;

/** The most ids a prompt may be padded to, the engine's bound on a config's text_len (beyond it: refused, not allocated). */
export const maxTextLen = 4096;

/** tokenizer.json: the real umt5-xxl one is 16.8 MB and nests 6 deep. */
export const tokenizerJsonLimits = { maxBytes: 64e6, maxDepth: 64 };
/** tokenizer_config.json. */
export const tokenizerConfigLimits = { maxBytes: 16e6, maxDepth: 64 };

export interface EncodedPrompt {
  /**
   * Token ids, padded with 0 (`<pad>`) to textLen. int64, the dtype torch embeddings take, so the
   * native addon can wrap the buffer as a Long tensor without a copy or conversion.
   */
  ids: BigInt64Array;
  /** 1 for the `length` real tokens (the prompt and its closing `</s>`), 0 for padding. */
  mask: Uint8Array;
  /** Number of real tokens, `</s>` included: DiffSynth's seq_lens (mask.sum()). */
  length: number;
}

export interface PromptTokenizer {
  /** The directory tokenizer.json was read from. */
  readonly dir: string;
  /** Cleans, tokenizes, truncates to textLen keeping the final `</s>`, and pads with 0. */
  encode(prompt: string, textLen?: number): EncodedPrompt;
  /** The ids alone, unpadded and untruncated, `</s>` included (for inspection). */
  tokenize(prompt: string): number[];
}

// ---------------------------------------------------------------------------------------------
// SentencePiece's precompiled charsmap, read as the Rust `spm_precompiled` crate reads it

/**
 * The Precompiled normalizer of tokenizer.json: a Darts double-array trie over UTF-8 keys and a
 * blob of NUL-terminated replacements. Like the Rust library, each grapheme cluster shorter than
 * 6 bytes is looked up whole first; otherwise (or when absent) each character is looked up alone.
 */
export function precompiledNormalizer(charsmapBase64: string): (text: string) => string {
  const blob = Buffer.from(charsmapBase64, "base64");
  if (blob.length < 4) throw new Error(`precompiled_charsmap: ${blob.length} bytes, too short for a trie size`);
  const trieSize = blob.readUInt32LE(0);
  if (trieSize % 4 !== 0 || 4 + trieSize > blob.length) throw new Error(`precompiled_charsmap: trie of ${trieSize} bytes does not fit ${blob.length}`);
  const units = new Uint32Array(trieSize / 4);
  for (let i = 0; i < units.length; i++) units[i] = blob.readUInt32LE(4 + 4 * i);
  const normalized = blob.subarray(4 + trieSize);
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  const offset = (u: number) => (u >>> 10) << ((u & (1 << 9)) >>> 6);
  const label = (u: number) => (u & 0x800000ff) >>> 0;
  const hasLeaf = (u: number) => ((u >>> 8) & 1) === 1;
  const value = (u: number) => u & 0x7fffffff;

  // The first (shortest) prefix match, as spm_precompiled's transform takes results[0].
  function firstMatch(key: Uint8Array): number | undefined {
    let pos = offset(units[0]!);
    for (const c of key) {
      if (c === 0) break;
      pos ^= c;
      const unit = units[pos];
      if (unit === undefined || label(unit) !== c) return undefined;
      pos ^= offset(unit);
      if (hasLeaf(unit)) return value(units[pos]!);
    }
    return undefined;
  }

  function transform(chunk: string): string | undefined {
    const at = firstMatch(encoder.encode(chunk));
    if (at === undefined) return undefined;
    let end = at;
    while (end < normalized.length && normalized[end] !== 0) end++;
    return decoder.decode(normalized.subarray(at, end));
  }

  const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });
  return (text) => {
    let out = "";
    for (const { segment } of graphemes.segment(text)) {
      if (Buffer.byteLength(segment) < 6) {
        const n = transform(segment);
        if (n !== undefined) {
          out += n;
          continue;
        }
      }
      for (const ch of segment) out += transform(ch) ?? ch;
    }
    return out;
  };
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

interface TokenizerJson {
  normalizer?: unknown;
  model?: { type?: string; vocab?: [string, number][]; unk_id?: number | null; byte_fallback?: boolean };
  added_tokens?: { content: string; id: number }[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : `a ${typeof v} (${JSON.stringify(v)?.slice(0, 40)})`;
}

/** The parts of tokenizer.json this module reads, checked; errors name the file and the key. */
export function checkTokenizerJson(j: unknown, file: string): TokenizerJson {
  const bad = (key: string, want: string, got: unknown) => new Error(`${file}: ${key} must be ${want}, got ${typeName(got)}`);
  if (!isObject(j)) throw new Error(`${file} must hold a JSON object, got ${typeName(j)}`);
  const model = j.model;
  if (!isObject(model)) throw bad("model", "an object", model);
  if (model.type !== "Unigram") throw new Error(`${file} has a ${typeof model.type === "string" ? model.type : "missing"} model; UMT5 needs Unigram`);
  if (!Array.isArray(model.vocab)) throw bad("model.vocab", "an array of [piece, score]", model.vocab);
  model.vocab.forEach((e: unknown, i: number) => {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== "string" || typeof e[1] !== "number")
      throw bad(`model.vocab[${i}]`, "[piece, score]", e);
  });
  const n = model.vocab.length;
  if (model.unk_id !== undefined && model.unk_id !== null && !(Number.isInteger(model.unk_id) && (model.unk_id as number) >= 0 && (model.unk_id as number) < n))
    throw bad("model.unk_id", `null or an index into model.vocab (0 to ${n - 1})`, model.unk_id);
  if (model.byte_fallback !== undefined && typeof model.byte_fallback !== "boolean") throw bad("model.byte_fallback", "a boolean", model.byte_fallback);
  if (j.added_tokens !== undefined) {
    if (!Array.isArray(j.added_tokens)) throw bad("added_tokens", "an array", j.added_tokens);
    j.added_tokens.forEach((t: unknown, i: number) => {
      if (!isObject(t)) throw bad(`added_tokens[${i}]`, "an object", t);
      if (typeof t.content !== "string") throw bad(`added_tokens[${i}].content`, "a string", t.content);
      if (!Number.isSafeInteger(t.id) || (t.id as number) < 0) throw bad(`added_tokens[${i}].id`, "a non-negative integer", t.id);
    });
  }
  for (const key of ["normalizer", "pre_tokenizer", "post_processor", "decoder"])
    if (j[key] !== undefined && j[key] !== null && !isObject(j[key])) throw bad(key, "an object or null", j[key]);
  return j as TokenizerJson;
}

// Swaps the library's NFKC stand-in for the charsmap itself, wherever a Precompiled sits.
function patchPrecompiled(normalizer: unknown, config: unknown): void {
  if (!normalizer || !config || typeof config !== "object") return;
  const c = config as { type?: string; precompiled_charsmap?: string | null; normalizers?: unknown[] };
  if (c.type === "Precompiled" && (normalizer as { config?: { type?: string } }).config?.type === "Precompiled") {
    if (c.precompiled_charsmap) {
      const normalize = precompiledNormalizer(c.precompiled_charsmap);
      Object.defineProperty(normalizer, "normalize", { value: normalize });
    } else {
      // The Rust library treats an empty charsmap as the identity.
      Object.defineProperty(normalizer, "normalize", { value: (t: string) => t });
    }
  } else if (c.type === "Sequence") {
    const inner = (normalizer as { normalizers?: unknown[] }).normalizers ?? [];
    (c.normalizers ?? []).forEach((sub, i) => patchPrecompiled(inner[i], sub));
  }
}

/**
 * Loads DIR/tokenizer.json (and tokenizer_config.json when present), the layout of the
 * `google/umt5-xxl` folder of an official Wan2.1 release and of diffusers' `tokenizer/`.
 */
export async function loadTokenizer(dir: string): Promise<PromptTokenizer> {
  const file = join(dir, "tokenizer.json");
  if (!existsSync(file)) throw new Error(`loadTokenizer: no tokenizer.json in ${dir}`);
  let json: TokenizerJson;
  try {
    json = checkTokenizerJson(await readJsonFile(file, tokenizerJsonLimits), file);
  } catch (e) {
    throw new Error(`loadTokenizer: ${(e as Error).message}`);
  }
  const configFile = join(dir, "tokenizer_config.json");
  let config: object = {};
  if (existsSync(configFile)) {
    try {
      const c = await readJsonFile(configFile, tokenizerConfigLimits);
      if (!isObject(c)) throw new Error(`${configFile} must hold a JSON object, got ${typeName(c)}`);
      config = c;
    } catch (e) {
      throw new Error(`loadTokenizer: ${(e as Error).message}`);
    }
  }
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, config);
    patchPrecompiled(tok.normalizer, json.normalizer);
  } catch (e) {
    throw new Error(`loadTokenizer: ${file}: ${(e as Error).message}`);
  }
  const model = json.model!;

  const vocab = new Map<string, number>();
  (model.vocab ?? []).forEach(([piece], i) => vocab.set(piece, i));
  for (const t of json.added_tokens ?? []) vocab.set(t.content, t.id);
  const unkId = model.unk_id ?? undefined;
  const byteFallback = model.byte_fallback === true;
  const utf8 = new TextEncoder();

  // A piece the vocabulary lacks is an unknown run (fused, as Rust's Unigram fuses them): with
  // byte_fallback it becomes <0xNN> pieces when all exist, else the unk id, as in Rust.
  function ids(pieces: string[]): number[] {
    const out: number[] = [];
    for (const p of pieces) {
      const id = vocab.get(p);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      if (byteFallback) {
        const bytes = [...utf8.encode(p)].map((b) => vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`));
        if (bytes.every((b) => b !== undefined)) {
          out.push(...(bytes as number[]));
          continue;
        }
      }
      if (unkId === undefined) throw new Error(`tokenizer: '${p}' is not in the vocabulary of ${file} and it has no unk_id`);
      out.push(unkId);
    }
    return out;
  }

  // T5TokenizerFast pads with its pad_token, <pad> (id 0 in UMT5).
  const padId = BigInt(vocab.get("<pad>") ?? 0);
  const post = (tokens: string[]): string[] =>
    tok.post_processor ? (tok.post_processor as unknown as (a: string[], b: null, add: boolean) => { tokens: string[] })(tokens, null, true).tokens : tokens;
  // How many ids the template adds (T5: one </s>): truncation keeps room for them.
  const added = post([]).length;

  function encodeIds(cleaned: string, textLen: number): number[] {
    const pieces = ids(tok.tokenize(cleaned, { add_special_tokens: false }));
    // Hugging Face truncation cuts the sequence before the template adds </s>, so </s> stays last.
    const kept = pieces.slice(0, Math.max(0, textLen - added));
    const specials = post([]);
    // Template tokens are added tokens; place them as the template does (T5: after the text).
    const withSpecials = post(kept.map((_, i) => `\u0000${i}`));
    return withSpecials.map((t) => (t.startsWith("\u0000") ? kept[Number(t.slice(1))]! : vocab.get(t) ?? ids([t])[0]!)).slice(0, specials.length + kept.length);
  }

  return {
    dir,
    tokenize: (prompt) => encodeIds(cleanPrompt(prompt), Number.MAX_SAFE_INTEGER),
    encode(prompt, textLen = defaultTextLen) {
      if (!Number.isInteger(textLen) || textLen < added + 1 || textLen > maxTextLen) {
        throw new Error(`encode: textLen (a model's text_len) must be an integer from ${added + 1} to ${maxTextLen}, got ${textLen}`);
      }
      const real = encodeIds(cleanPrompt(prompt), textLen);
      const ids = new BigInt64Array(textLen).fill(padId);
      const mask = new Uint8Array(textLen);
      real.forEach((id, i) => (ids[i] = BigInt(id)));
      mask.fill(1, 0, real.length);
      return { ids, mask, length: real.length };
    },
  };
}

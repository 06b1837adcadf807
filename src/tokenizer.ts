// Prompt → UMT5 token ids, exactly as DiffSynth-Studio's Wan2.1 pipeline makes them.
//
// DiffSynth (wan_video_text_encoder.py, HuggingfaceTokenizer with clean='whitespace') runs
//   ftfy.fix_text → html.unescape(html.unescape(·)) → strip → collapse whitespace runs → strip
// and then T5TokenizerFast over the model's tokenizer.json with padding='max_length',
// truncation=True, max_length=512, add_special_tokens=True. This module does the same: the
// cleaning is ported here (see `fixText` for what of ftfy is covered), and tokenizer.json runs
// through @huggingface/tokenizers, with two gaps of that library filled in so real umt5-xxl files
// match the Rust `tokenizers` library: the Precompiled normalizer (the library approximates the
// SentencePiece charsmap with NFKC; here the charsmap itself is read) and Unigram byte fallback.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { decodeHTML, decodeHTMLStrict } from "entities";
import { readJsonFile } from "./fs/json.js";

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
// Cleaning

// Python's `regex` \s (Unicode White_Space); JS \s differs (it has U+FEFF, lacks U+0085).
const ws = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const wsRun = new RegExp(`[${ws}]+`, "g");
// str.strip() also strips \x1c-\x1f (str.isspace); ftfy removes those before they get here.
const wsEdges = new RegExp(`^[${ws}\\x1c-\\x1f]+|[${ws}\\x1c-\\x1f]+$`, "g");

/** DiffSynth's clean='whitespace': ftfy.fix_text, html.unescape twice, whitespace collapsed. */
export function cleanPrompt(text: string): string {
  const basic = htmlUnescape(htmlUnescape(fixText(text))).replace(wsEdges, "");
  return basic.replace(wsRun, " ").replace(wsEdges, "");
}

// Python's html._invalid_charrefs: what &#N; means for the numbers HTML remaps.
const invalidCharrefs: Record<number, string> = {
  0x00: "\ufffd", 0x0d: "\r", 0x80: "\u20ac", 0x81: "\x81", 0x82: "\u201a", 0x83: "\u0192", 0x84: "\u201e",
  0x85: "\u2026", 0x86: "\u2020", 0x87: "\u2021", 0x88: "\u02c6", 0x89: "\u2030", 0x8a: "\u0160", 0x8b: "\u2039",
  0x8c: "\u0152", 0x8d: "\x8d", 0x8e: "\u017d", 0x8f: "\x8f", 0x90: "\x90", 0x91: "\u2018", 0x92: "\u2019",
  0x93: "\u201c", 0x94: "\u201d", 0x95: "\u2022", 0x96: "\u2013", 0x97: "\u2014", 0x98: "\u02dc", 0x99: "\u2122",
  0x9a: "\u0161", 0x9b: "\u203a", 0x9c: "\u0153", 0x9d: "\x9d", 0x9e: "\u017e", 0x9f: "\u0178",
};

// Python's html._invalid_codepoints: references to these decode to nothing.
function invalidCodepoint(n: number): boolean {
  return (n >= 0x1 && n <= 0x8) || n === 0xb || (n >= 0xe && n <= 0x1f) || (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) || (n & 0xfffe) === 0xfffe;
}

function numericRef(digits: string, hex: boolean): string {
  const n = Number.parseInt(digits, hex ? 16 : 10); // huge numbers parse to > 0x10ffff or Infinity
  const remapped = invalidCharrefs[n];
  if (remapped !== undefined) return remapped;
  if ((n >= 0xd800 && n <= 0xdfff) || !(n <= 0x10ffff)) return "\ufffd";
  if (invalidCodepoint(n)) return "";
  return String.fromCodePoint(n);
}

const htmlRef = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/** Python's html.unescape: HTML5 named references (legacy ones without ';' too) and numeric ones. */
export function htmlUnescape(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(htmlRef, (m, s: string) => {
    if (s[0] === "#") {
      const hex = s[1] === "x" || s[1] === "X";
      return numericRef(s.slice(hex ? 2 : 1).replace(/;$/, ""), hex);
    }
    // One reference at a time: the HTML5 longest-prefix rule for legacy names is html.unescape's.
    return decodeHTML(m);
  });
}

// ftfy's own unescape_html: only references ending in ';', plus all-caps forms of lowercase names.
const ftfyRef = /&#?[0-9A-Za-z]{1,24};/g;

function ftfyUnescape(text: string): string {
  return text.replace(ftfyRef, (m) => {
    if (m.startsWith("&#")) {
      const r = htmlUnescape(m);
      return r.includes(";") ? m : r;
    }
    const r = decodeHTMLStrict(m);
    if (r !== m) return r;
    const lower = m.toLowerCase();
    if (m === m.toUpperCase() && lower !== m && decodeHTML(m) === m) {
      const l = decodeHTMLStrict(lower);
      if (l !== lower) return l.toUpperCase();
    }
    return m;
  });
}

// Windows-1252 bytes 0x80-0x9f; ftfy's "sloppy" codec keeps the five undefined ones as Latin-1.
const cp1252High = "\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178";
const cp1252Byte = new Map<string, number>([...cp1252High].map((c, i) => [c, 0x80 + i]));

/** Bytes of text in sloppy Windows-1252, or undefined when a character is outside it. */
function sloppy1252(text: string): Uint8Array | undefined {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const b = c < 0x80 || (c >= 0xa0 && c <= 0xff) ? c : cp1252Byte.get(text[i]!);
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });
// A multi-byte UTF-8 sequence, as read through Latin-1/Windows-1252: the mark of mojibake.
const utf8Sequence = /[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}/;

/**
 * ftfy.fix_encoding, for its common case only: UTF-8 that was decoded as Windows-1252 or
 * Latin-1 ("cafÃ©", "doesnâ€™t", "âœ”"), undone when the whole text re-encodes to valid UTF-8
 * holding at least one multi-byte sequence, else run by run inside other text (ftfy's
 * decode_inconsistent_utf8). ftfy's badness heuristic (fixes are applied without it), its other single-byte
 * codecs (1251, 1250, ISO-8859-2, MacRoman, cp437), restore_byte_a0, lossy sequences
 * and embedded mojibake with other leads (see `embedded`) are not covered.
 */
function fixEncoding(text: string): string {
  for (;;) {
    if (/^[\x00-\x7f]*$/.test(text)) return text;
    const fixed = decode1252AsUtf8(text) ?? fixEmbedded(text);
    if (fixed === text) return text;
    text = fixed;
  }
}

function decode1252AsUtf8(text: string): string | undefined {
  const bytes = sloppy1252(text);
  if (!bytes || !utf8Sequence.test(String.fromCharCode(...bytes))) return undefined;
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return undefined;
  }
}

// ftfy's decode_inconsistent_utf8, for Windows-1252 mojibake embedded in text that has other
// characters too ("中 cafÃ©"): runs of lead + continuation characters not preceded by a
// continuation character, each fixed alone when it is shorter than the text.
const cont = `\\x80-\\xbf${[...cp1252High].filter((c) => c.charCodeAt(0) > 0xff).join("")}`;
// Without ftfy's badness rules the leads are limited to the frequent, rarely legitimate ones:
// Â Ã (U+0080-U+00FF), â (punctuation, symbols), ã-é ï (CJK, fullwidth), ð (emoji); "ß’" stays.
const embedded = new RegExp(`(?<![${cont}])(?:[\\xc2\\xc3][${cont}]|[\\xe2-\\xe9\\xef][${cont}]{2}|\\xf0[${cont}]{3})+`, "g");

function fixEmbedded(text: string): string {
  return text.replace(embedded, (run) => (run.length < text.length ? fixEncoding(run) : run));
}

const ligatures: Record<string, string> = {
  "\u0132": "IJ", "\u0133": "ij", "\u0149": "\u02bcn", "\u01f1": "DZ", "\u01f2": "Dz", "\u01f3": "dz",
  "\u01c4": "D\u017d", "\u01c5": "D\u017e", "\u01c6": "d\u017e", "\u01c7": "LJ", "\u01c8": "Lj", "\u01c9": "lj",
  "\u01ca": "NJ", "\u01cb": "Nj", "\u01cc": "nj", "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi",
  "\ufb04": "ffl", "\ufb05": "\u017ft", "\ufb06": "st",
};

const fixers: ((t: string) => string)[] = [
  // fix_c1_controls: C1 controls are Windows-1252 characters read as Latin-1
  (t) => t.replace(/[\x80-\x9f]/g, (c) => cp1252High[c.charCodeAt(0) - 0x80]!),
  // fix_latin_ligatures
  (t) => t.replace(/[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g, (c) => ligatures[c]!),
  // fix_character_width: the halfwidth/fullwidth block by NFKC, and the ideographic space
  (t) => t.replace(/[\u3000\uff01-\uffef]/g, (c) => (c === "\u3000" ? " " : c.normalize("NFKC"))),
  // uncurl_quotes
  (t) => t.replace(/[\u201c-\u201f]/g, '"').replace(/[\u02bc\u2018-\u201b]/g, "'"),
  // fix_line_breaks
  (t) => t.replace(/\r\n|[\r\u2028\u2029\u0085]/g, "\n"),
  // fix_surrogates: a JS string pairs surrogates by itself; lone ones become U+FFFD
  (t) => t.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd"),
  // remove_terminal_escapes (Python's \d is any Unicode digit)
  (t) => t.replace(/\x1b\[(?:\p{Nd}|;)*[a-zA-Z]/gu, ""),
  // remove_control_chars
  (t) => t.replace(/[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g, ""),
];

/**
 * ftfy.fix_text with its default configuration, for prompts. Covered: unescape_html="auto"
 * (ftfy's rule: off from the first line holding '<' on), fix_encoding (the UTF-8-as-1252/Latin-1
 * case, see fixEncoding), fix_c1_controls, fix_latin_ligatures, fix_character_width,
 * uncurl_quotes, fix_line_breaks, fix_surrogates, remove_terminal_escapes, remove_control_chars
 * and NFC, applied line by line and repeated until nothing changes, in ftfy's order.
 * NFC and NFKC use Node's ICU Unicode tables, which may be newer than Python's.
 */
export function fixText(text: string): string {
  let unescape = true;
  const out: string[] = [];
  for (const segment of text.match(/[^\n]*\n|[^\n]+/g) ?? []) {
    if (unescape && segment.includes("<")) unescape = false;
    let t = segment;
    for (;;) {
      const before = t;
      if (unescape) t = ftfyUnescape(t);
      t = fixEncoding(t);
      for (const fix of fixers) t = fix(t);
      t = t.normalize("NFC");
      if (t === before) break;
    }
    out.push(t);
  }
  return out.join("");
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

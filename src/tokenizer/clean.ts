// Prompt cleaning as DiffSynth-Studio's Wan2.1 pipeline does it before tokenizing
// (wan_video_text_encoder.py, clean='whitespace'): ftfy.fix_text → html.unescape twice → strip →
// collapse whitespace runs → strip. ftfy and Python's html are ported here (see fixText for what
// of ftfy is covered).
import { decodeHTML, decodeHTMLStrict } from "entities";

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

"""Golden prompt tokens for test/tokenizer.test.ts, made the way DiffSynth-Studio makes them.

DiffSynth's HuggingfaceTokenizer (clean='whitespace') runs ftfy.fix_text, html.unescape twice and
strip, collapses whitespace, then calls T5TokenizerFast(padding='max_length', truncation=True,
max_length=512, add_special_tokens=True). T5TokenizerFast is the Rust `tokenizers` pipeline of
tokenizer.json with truncation (longest_first, right) and padding (right, id 0) enabled, which is
what this script sets up directly (transformers itself is not needed).

    npm run build:ts && node bin/wanlab.js make-tiny /tmp/tiny
    PYTHONPATH=/work/main/.cache/pydeps /usr/bin/python3 test/golden/make_tokens.py /tmp/tiny/google/umt5-xxl/tokenizer.json
"""
import html
import json
import base64
import copy
import os
import struct
import sys

import ftfy
import regex as re
import tokenizers
from tokenizers import Tokenizer
from tokenizers.normalizers import Precompiled

TEXT_LEN = 512


def basic_clean(text):
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = re.sub(r"\s+", " ", text)
    return text.strip()


def clean(text):
    return whitespace_clean(basic_clean(text))


PROMPTS = {
    "english": "A cat walks on the grass, realistic style.",
    "whitespace": "  a photo\tof a\n\ncat \r\n on\u00a0the \u3000 road  ",
    "html_entities": "rock &amp;amp; roll &lt;b&gt; caf&eacute; &#39;quoted&#39; &#x4e2d; &amp;lt;",
    "curly_quotes": "\u201ca dog\u201d and \u2018a cat\u2019 \u2026 it\u2019s",
    "fullwidth": "\uff21\uff22\uff23\uff11\uff12\uff13\uff01 \uff4c\uff4f\uff55\uff44",
    "ligatures": "\ufb01eld of \ufb02owers, \ufb00ect, \u0133",
    "mojibake": "caf\u00c3\u00a9 cr\u00c3\u00a8me br\u00c3\u00bbl\u00c3\u00a9e",
    "chinese": "\u4e00\u53ea\u732b\u5728\u8349\u5730\u4e0a\u884c\u8d70\uff0c\u5199\u5b9e\u98ce\u683c",
    "emoji": "a dog \U0001f436 and a cat \U0001f431 \u2764\ufe0f",
    "empty": "",
    "long": " ".join(["a photo of a cat on the road"] * 120),
    "special_token_text": "a cat </s> on <pad> grass",
    "control_chars": "a\u0000 cat\u0007 on\u200b the\ufeff grass\u00ad",
}

# Cleaning alone, for the parts of ftfy that prompts rarely hit.
CLEAN_ONLY = [
    "&EACUTE;TUDE &NTILDE; &nTILDE;",
    "x &ldquo;y&rdquo; <b> &ldquo;z&rdquo;",
    "line one\r\nline two\u2028three\u0085four",
    "\u00e2\u0153\u201d No problems",
    "The Mona Lisa doesn\u00e2\u20ac\u2122t have eyebrows.",
    "\u00c3\u00a0 la carte",
    "na\u00efve caf\u00e9 \u00fcber",
    "e\u0301 NFC",
    "\u1e9b\u0323 ",
    "\x1b[36mcolour\x1b[0m",
    "&amp &copy &#128512; &#x80; &#0; &#1; &#xd800; &#65533;",
    "&notit; &notin; &ampx",
    "I \u2665 NY \u00bd",
    "\ufe0f\u200d tab\there",
    "Price: 5\u00e2\u201a\u00ac",
    "\u00ef\u00bc\u00a1",
    "\u4e2d caf\u00c3\u00a9 \u2163",
    "stra\u00df\u2019 \u4e2d",
    "\u00e4\u00b8\u00ad\u00e6\u2013\u2021 \u2163",
    "\u00f0\u0178\u0090\u00b6 dog \u4e2d",
]


def darts_charsmap(mapping):
    """A SentencePiece precompiled charsmap (Darts double-array trie + NUL-terminated blob).

    Real umt5-xxl tokenizer.json files carry nmt_nfkc's charsmap, which is not available offline;
    this small one exercises the same reader, including its quirks (shortest prefix match, whole
    graphemes under 6 bytes first)."""
    blob, values = b"", {}
    for key, rep in mapping.items():
        values[key.encode()] = len(blob)
        blob += rep.encode() + b"\0"
    root = {}
    for key, value in values.items():
        node = root
        for b in key:
            node = node.setdefault(b, {})
        node[None] = value
    units, used = {}, {0}

    def place(node, pos, label):
        labels = [0 if c is None else c for c in node]
        off = 1
        while not all((pos ^ off ^ c) not in used and (pos ^ off ^ c) != 0 for c in labels):
            off += 1
        used.update(pos ^ off ^ c for c in labels)
        units[pos] = (label & 0xFF) | ((1 << 8) if None in node else 0) | (off << 10)
        for c, child in node.items():
            if c is None:
                units[pos ^ off] = (1 << 31) | child
            else:
                place(child, pos ^ off ^ c, c)

    place(root, 0, 0)
    trie = b"".join(struct.pack("<I", units.get(i, 0)) for i in range(max(units) + 1))
    return struct.pack("<I", len(trie)) + trie + blob


CHARSMAP = {"e": "E", "e\u0301": "X", "\u00e9": "e\u0301!", "\u3000": " ", "\ufb01": "fi", "\u2163": "IV",
            "x\u0301\u0301\u0301": "Q", "\u00a0": " ", "\u200b": "", "\u00bd": "  1/2  "}
CHARSMAP_TEXTS = ["hello", "e\u0301", "\u00e9t\u00e9", "a\u3000b", "\ufb01ne", "\u2163", "x\u0301\u0301\u0301 x\u0301",
                  "\U0001f436e", "a\u00a0\u00a0b\u200bc"]
# Prompts through a umt5-xxl-shaped normalizer: Precompiled, then Replace(" {2,}" → " "), Strip.
UMT5_SHAPED = ["a cat on the road", "the eel ate", "caf\u00e9 on a \u00bd road \u00bd", "field\u200b of \u2163"]


def main():
    path = sys.argv[1]
    tok = Tokenizer.from_file(path)
    tok.enable_truncation(max_length=TEXT_LEN)
    tok.enable_padding(length=TEXT_LEN, pad_id=0, pad_token="<pad>")
    cases = []
    for name, prompt in PROMPTS.items():
        cleaned = clean(prompt)
        enc = tok.encode(cleaned, add_special_tokens=True)
        assert len(enc.ids) == TEXT_LEN
        length = sum(enc.attention_mask)
        assert enc.attention_mask == [1] * length + [0] * (TEXT_LEN - length)
        assert all(i == 0 for i in enc.ids[length:])
        cases.append({
            "name": name,
            "prompt": prompt,
            "cleaned": cleaned,
            "ids": enc.ids[:length],
            "length": length,
            "mask_length": length,
        })
    charsmap = darts_charsmap(CHARSMAP)
    pre = Precompiled(charsmap)
    shaped = json.load(open(path, encoding="utf-8"))
    shaped["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        {"type": "Strip", "strip_left": False, "strip_right": True},
    ]}
    shaped_tok = Tokenizer.from_str(json.dumps(shaped))
    shaped_tok.enable_truncation(max_length=TEXT_LEN)
    out = {
        "tokenizer": "tiny model (make-tiny), google/umt5-xxl/tokenizer.json",
        "text_len": TEXT_LEN,
        "versions": {"ftfy": ftfy.__version__, "tokenizers": tokenizers.__version__, "python": sys.version.split()[0]},
        "cases": cases,
        "precompiled": {
            "charsmap": base64.b64encode(charsmap).decode(),
            "cases": [{"text": t, "normalized": pre.normalize_str(t)} for t in CHARSMAP_TEXTS],
            "normalizer": shaped["normalizer"],
            "tokens": [{"prompt": t, "cleaned": clean(t), "ids": shaped_tok.encode(clean(t)).ids} for t in UMT5_SHAPED],
        },
        "clean_only": [{"text": t, "cleaned": clean(t), "fix_text": ftfy.fix_text(t)} for t in CLEAN_ONLY],
    }
    dest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tokens.json")
    with open(dest, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(f"wrote {dest}: {len(cases)} prompts, {len(CLEAN_ONLY)} clean-only strings")


if __name__ == "__main__":
    main()

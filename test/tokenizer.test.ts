// Prompt tokens against golden ids made by Python (ftfy, html, the Rust `tokenizers` library) on
// the tiny model's tokenizer.json: test/golden/make_tokens.py wrote test/golden/data/tokens.json.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { root, scratch, wanlab } from "./helpers.js";
import { cleanPrompt, fixText, loadTokenizer, precompiledNormalizer, type PromptTokenizer } from "../kernel/tokenizer.js";

interface Golden {
  text_len: number;
  cases: { name: string; prompt: string; cleaned: string; ids: number[]; length: number; mask_length: number }[];
  clean_only: { text: string; cleaned: string; fix_text: string }[];
  precompiled: {
    charsmap: string;
    cases: { text: string; normalized: string }[];
    normalizer: unknown;
    tokens: { prompt: string; cleaned: string; ids: number[] }[];
  };
}

const golden = JSON.parse(readFileSync(join(root, "test", "golden", "data", "tokens.json"), "utf8")) as Golden;
const dir = scratch();
const model = join(dir, "tiny");
const tokenizerDir = join(model, "google", "umt5-xxl");
let tok: PromptTokenizer;

before(async () => {
  const made = wanlab(["make-tiny", model]);
  assert.equal(made.status, 0, made.stderr);
  tok = await loadTokenizer(tokenizerDir);
});

describe("prompt tokens match DiffSynth's (Python golden)", () => {
  for (const c of golden.cases) {
    test(c.name, () => {
      assert.equal(cleanPrompt(c.prompt), c.cleaned);
      const e = tok.encode(c.prompt);
      assert.ok(e.ids instanceof BigInt64Array);
      assert.equal(e.ids.length, golden.text_len);
      assert.equal(e.mask.length, golden.text_len);
      assert.equal(e.length, c.length);
      assert.deepEqual([...e.ids.subarray(0, e.length)].map(Number), c.ids);
      assert.ok(e.ids.subarray(e.length).every((id) => id === 0n), "padding is id 0");
      assert.equal(e.mask.reduce((a, b) => a + b, 0), c.mask_length);
      assert.ok(e.mask.subarray(0, e.length).every((m) => m === 1));
    });
  }

  test("a prompt past text_len is cut keeping </s> last", () => {
    const long = golden.cases.find((c) => c.name === "long")!;
    assert.equal(long.length, golden.text_len);
    assert.equal(long.ids.at(-1), 1);
    const full = tok.tokenize(long.prompt);
    assert.ok(full.length > golden.text_len);
    assert.deepEqual(long.ids, [...full.slice(0, golden.text_len - 1), 1]);
    const short = tok.encode(long.prompt, 8);
    assert.deepEqual([...short.ids].map(Number), [...full.slice(0, 7), 1]);
  });
});

describe("cleaning matches ftfy + html.unescape", () => {
  for (const c of golden.clean_only) {
    test(JSON.stringify(c.text), () => {
      assert.equal(fixText(c.text), c.fix_text);
      assert.equal(cleanPrompt(c.text), c.cleaned);
    });
  }
});

describe("Precompiled charsmap matches the Rust tokenizers library", () => {
  test("normalizer alone", () => {
    const normalize = precompiledNormalizer(golden.precompiled.charsmap);
    for (const c of golden.precompiled.cases) assert.equal(normalize(c.text), c.normalized, JSON.stringify(c.text));
  });

  test("a umt5-xxl-shaped tokenizer.json (Precompiled, Replace, Strip)", async () => {
    const json = JSON.parse(readFileSync(join(tokenizerDir, "tokenizer.json"), "utf8"));
    json.normalizer = golden.precompiled.normalizer;
    const shaped = join(dir, "shaped");
    mkdirSync(shaped);
    writeFileSync(join(shaped, "tokenizer.json"), JSON.stringify(json));
    const t = await loadTokenizer(shaped);
    for (const c of golden.precompiled.tokens) assert.deepEqual(t.tokenize(c.prompt), c.ids, JSON.stringify(c.prompt));
  });
});

describe("errors", () => {
  test("a directory without tokenizer.json is named", async () => {
    const empty = join(dir, "empty");
    mkdirSync(empty);
    await assert.rejects(loadTokenizer(empty), (e: Error) => e.message.includes(empty) && e.message.includes("tokenizer.json"));
  });

  test("textLen must leave room for </s>", () => {
    assert.throws(() => tok.encode("a cat", 1), /textLen must be an integer ≥ 2, got 1/);
  });
});

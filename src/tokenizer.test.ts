// Prompt tokens against golden ids made by Python (ftfy, html, the Rust `tokenizers` library) on
// the tiny model's tokenizer.json: test/golden/make_tokens.py wrote test/golden/data/tokens.json.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { root, scratch, wanlab } from "../test/helpers.js";
import { cleanPrompt, fixText, loadTokenizer, precompiledNormalizer, type PromptTokenizer } from "./tokenizer.js";

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
    assert.throws(() => tok.encode("a cat", 1), /textLen \(a model's text_len\) must be an integer from 2 to 4096, got 1/);
  });

  test("a text_len beyond the limit is refused by name, never allocated (no 'Invalid typed array length', no 8 GB fill)", () => {
    for (const n of [1e9, 1e10, 4097])
      assert.throws(() => tok.encode("a cat", n), new RegExp(`^Error: encode: textLen \\(a model's text_len\\) must be an integer from 2 to 4096, got ${n}$`));
    assert.equal(tok.encode("a cat", 4096).ids.length, 4096);
  });
});

describe("tokenizer.json and tokenizer_config.json are read within limits; errors name the file and the key", () => {
  const copy = (name: string, edit: (json: Record<string, any>) => void): string => {
    const d = join(dir, name);
    mkdirSync(d);
    const json = JSON.parse(readFileSync(join(tokenizerDir, "tokenizer.json"), "utf8"));
    edit(json);
    writeFileSync(join(d, "tokenizer.json"), JSON.stringify(json));
    return d;
  };

  test("a tokenizer.json over 64 MB is refused before it is read", async () => {
    const d = join(dir, "huge");
    mkdirSync(d);
    const f = join(d, "tokenizer.json");
    writeFileSync(f, "");
    truncateSync(f, 65e6); // sparse: the size alone refuses it
    await assert.rejects(loadTokenizer(d), new RegExp(`^Error: loadTokenizer: ${f} is 65\\.0 MB, over the 64\\.0 MB this file may have$`));
  });

  test("deep nesting is refused before parsing, naming the file", async () => {
    const d = join(dir, "deep");
    mkdirSync(d);
    writeFileSync(join(d, "tokenizer.json"), `{"model":${"[".repeat(100000)}${"]".repeat(100000)}}`);
    await assert.rejects(loadTokenizer(d), /loadTokenizer: .*deep\/tokenizer\.json nests arrays and objects more than 64 deep; refused/);
    const c = copy("deep-config", () => {});
    writeFileSync(join(c, "tokenizer_config.json"), "[".repeat(70) + "]".repeat(70));
    await assert.rejects(loadTokenizer(c), /loadTokenizer: .*deep-config\/tokenizer_config\.json nests arrays and objects more than 64 deep/);
  });

  test("a FIFO as tokenizer.json is refused at once, not waited on", async () => {
    const d = join(dir, "fifo");
    mkdirSync(d);
    execFileSync("mkfifo", [join(d, "tokenizer.json")]);
    await assert.rejects(loadTokenizer(d), /loadTokenizer: .*fifo\/tokenizer\.json is not a regular file/);
  });

  test("wrong types name the key", async () => {
    await assert.rejects(loadTokenizer(copy("vocab", (j) => (j.model.vocab[3] = [5, "x"]))), /tokenizer\.json: model\.vocab\[3\] must be \[piece, score\], got an array/);
    await assert.rejects(loadTokenizer(copy("vocab-type", (j) => (j.model.vocab = "all"))), /tokenizer\.json: model\.vocab must be an array of \[piece, score\], got a string/);
    await assert.rejects(loadTokenizer(copy("unk", (j) => (j.model.unk_id = 1e9))), /tokenizer\.json: model\.unk_id must be null or an index into model\.vocab \(0 to \d+\), got a number \(1000000000\)/);
    await assert.rejects(loadTokenizer(copy("added", (j) => (j.added_tokens = [{ content: 1, id: 0 }]))), /tokenizer\.json: added_tokens\[0\]\.content must be a string, got a number/);
    await assert.rejects(loadTokenizer(copy("model", (j) => (j.model = 7))), /tokenizer\.json: model must be an object, got a number \(7\)/);
    await assert.rejects(loadTokenizer(copy("bpe", (j) => (j.model.type = "BPE"))), /tokenizer\.json has a BPE model; UMT5 needs Unigram/);
    const c = copy("config-array", () => {});
    writeFileSync(join(c, "tokenizer_config.json"), "[]");
    await assert.rejects(loadTokenizer(c), /tokenizer_config\.json must hold a JSON object, got an array/);
  });
});

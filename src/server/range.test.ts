// Byte ranges of a job's files (src/server/range.ts), as a video player asks for them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { byteRange } from "./range.js";

test("one range: from-to, from the start to the end, the last N bytes; clipped to the file", () => {
  assert.deepEqual(byteRange("bytes=0-99", 1000), { start: 0, end: 99 });
  assert.deepEqual(byteRange("bytes=500-", 1000), { start: 500, end: 999 });
  assert.deepEqual(byteRange("bytes=-100", 1000), { start: 900, end: 999 });
  assert.deepEqual(byteRange("bytes=-5000", 1000), { start: 0, end: 999 });
  assert.deepEqual(byteRange("bytes=900-5000", 1000), { start: 900, end: 999 });
});

test("past the end is unsatisfiable; anything else answers the whole file", () => {
  assert.equal(byteRange("bytes=1000-", 1000), "unsatisfiable");
  assert.equal(byteRange("bytes=-0", 1000), "unsatisfiable");
  for (const h of [undefined, "", "bytes=-", "bytes=5-2", "items=0-1", "bytes=0-1,5-6", "bytes=a-b"]) assert.equal(byteRange(h, 1000), undefined, String(h));
});

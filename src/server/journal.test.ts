// The job journal's file: a torn last line is repaired on open, and a write that fails part-way
// stops the journal rather than leave a partial record before a whole one.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { scratch } from "../../test/helpers.js";
import { openJournal, repairJournal } from "./journal.js";

test("repairJournal: a torn last line is cut off and kept aside; whole lines are left alone", async () => {
  const d = scratch("wanlab-journal-");
  const p = join(d, "journal.jsonl");
  assert.equal(await repairJournal(p), undefined, "no journal yet");
  writeFileSync(p, '{"t":"cancel","id":"a","at":1}\n');
  assert.equal(await repairJournal(p), undefined);
  appendFileSync(p, '{"t":"submit","id":"b","at":2,"par');
  const r = await repairJournal(p, new Date(0));
  assert.deepEqual(r, { aside: `${p}.torn-1970-01-01T00-00-00-000Z`, bytes: 34 });
  assert.equal(readFileSync(p, "utf8"), '{"t":"cancel","id":"a","at":1}\n');
  assert.equal(readFileSync(r!.aside, "utf8"), '{"t":"submit","id":"b","at":2,"par');
  appendFileSync(p, "\0\0\0\0\n"); // a whole line of zeros a crashed filesystem left
  assert.equal((await repairJournal(p, new Date(1)))?.bytes, 5);
  assert.equal(readFileSync(p, "utf8"), '{"t":"cancel","id":"a","at":1}\n');
});

test("a write that fails and cannot be cut back stops the journal: no record is ever written after a partial one", async () => {
  const d = scratch("wanlab-journal-full-");
  const full = join(d, "full");
  // a private copy of /dev/full (char 1:7): every write fails with ENOSPC, nothing can be truncated
  assert.equal(spawnSync("mknod", [full, "c", "1", "7"]).status, 0);
  const j = await openJournal(full);
  try {
    await assert.rejects(j.append({ t: "cancel", id: "a", at: 1 }), /ENOSPC|no space/i);
    await assert.rejects(j.append({ t: "cancel", id: "b", at: 2 }), new RegExp(`${full}: a write failed .* and could not be cut back to the last whole record .*; no more records are written`));
  } finally {
    await j.close();
  }
});

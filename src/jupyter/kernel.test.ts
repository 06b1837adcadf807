// The kernel's execute queue: execution counts, execute_input / execute_result / error messages,
// and Jupyter's stop_on_error (true aborts what is queued behind a failed cell; false runs it).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CellCapture, ExecuteQueue } from "./kernel.js";

function kernel() {
  const capture = new CellCapture();
  const out = capture.console();
  const executor = {
    async execute(src: string): Promise<boolean> {
      await new Promise((r) => setTimeout(r, 5));
      if (src === "fail") {
        out.error(Object.assign(new Error("cfgScale must be a number in [0, 100], got -1"), { name: "ParamError", field: "cfgScale" }));
        return false;
      }
      if (src === "bad ts") {
        out.error("%s%d:%d - %s", "", 1, 7, "Cannot find name 'x'.");
        return false;
      }
      if (src !== "nothing") out.log(src === "seed" ? 42n : src);
      return true;
    },
    interrupt() {},
    close() {},
  };
  const sent: [string, Record<string, unknown>][] = [];
  const io = { send: (t: string, c: Record<string, unknown>) => void sent.push([t, c]), writeStream() {}, writeDisplayData() {} };
  const queue = new ExecuteQueue(executor, capture, () => {});
  return { sent, run: (code: string, extra: Record<string, unknown> = {}) => queue.run({ code, ...extra }, io) };
}

describe("ExecuteQueue", () => {
  test("numbers each cell, echoes its input and sends its value as the execute_result", async () => {
    const k = kernel();
    assert.deepEqual(await k.run("'a'"), { status: "ok", execution_count: 1, user_expressions: {}, payload: [] });
    await k.run("nothing");
    await k.run("seed");
    assert.deepEqual(k.sent.map(([t, c]) => `${t} ${c.execution_count}`), ["execute_input 1", "execute_result 1", "execute_input 2", "execute_input 3", "execute_result 3"]);
    assert.deepEqual(k.sent.at(-1)![1].data, { "text/plain": "42" });
    await k.run("quiet", { silent: true });
    assert.equal(k.sent.length, 5, "a silent request sends nothing and is not counted");
  });

  test("an error is a Jupyter error in the reply and on iopub; TypeScript diagnostics too", async () => {
    const k = kernel();
    const r = await k.run("fail", { stop_on_error: false });
    assert.equal(r.status, "error");
    assert.equal(r.ename, "ParamError");
    assert.equal(r.evalue, "cfgScale must be a number in [0, 100], got -1");
    assert.equal(k.sent.at(-1)![0], "error");
    const ts = await k.run("bad ts", { stop_on_error: false });
    assert.equal(ts.ename, "TypeScript error");
    assert.equal(ts.evalue, "1:7 - Cannot find name 'x'.");
  });

  test("stop_on_error (the default) aborts the requests queued behind a failed cell", async () => {
    const k = kernel();
    const replies = await Promise.all([k.run("fail"), k.run("'next'"), k.run("'after'")]);
    assert.deepEqual(replies.map((r) => r.status), ["error", "aborted", "aborted"]);
    await new Promise((r) => setTimeout(r, 250));
    assert.equal((await k.run("'later'")).status, "ok", "a request sent after the abort window runs");
  });

  test("stop_on_error: false (nbconvert --allow-errors) runs every later cell", async () => {
    const k = kernel();
    const replies = await Promise.all([k.run("fail", { stop_on_error: false }), k.run("'next'", { stop_on_error: false }), k.run("'after'", { stop_on_error: false })]);
    assert.deepEqual(replies.map((r) => r.status), ["error", "ok", "ok"]);
    assert.deepEqual(replies.map((r) => r.execution_count), [1, 2, 3]);
  });
});

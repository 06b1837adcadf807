// How a cell's failure reads in the notebook: a one-line evalue, the field, and no frames from the
// kernel or the package unless WANLAB_TRACE asks for them.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ParamError, resolveParams } from "../params.js";
import { CancelledError } from "../shared/lab.js";
import { compileError, jupyterError, traceRequested } from "./errors.js";

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("did not throw");
}

describe("jupyterError", () => {
  test("a ParamError: its name, its message as one line, the field; package frames hidden and counted", () => {
    const e = thrown(() => resolveParams({ prompt: "x", width: 33 }));
    assert.ok(e instanceof ParamError);
    const j = jupyterError(e, false);
    assert.equal(j.ename, "ParamError");
    assert.equal(j.evalue, "width must be a multiple of 16, got 33");
    assert.ok(j.traceback.includes("field: width"));
    assert.ok(!j.traceback.some((l) => /params\.js|dist[\\/]src/.test(l)), j.traceback.join("\n"));
    assert.match(j.traceback.at(-1)!, /^\(\d+ internal frames? hidden; WANLAB_TRACE=1 shows them\)$/);
  });

  test("with the trace asked for, every frame is kept", () => {
    const e = thrown(() => resolveParams({ prompt: "x", width: 33 }));
    const j = jupyterError(e, true);
    assert.ok(j.traceback.some((l) => /params\.js/.test(l)), j.traceback.join("\n"));
    assert.ok(!j.traceback.some((l) => /hidden/.test(l)));
    assert.equal(traceRequested({ WANLAB_TRACE: "1" }), true);
    assert.equal(traceRequested({}), false);
  });

  test("a multi-line message keeps its first line as the value and the rest in the traceback", () => {
    const j = jupyterError(new CancelledError("cancelled at step 3/50; the model is still loaded\nsecond line"), false);
    assert.equal(j.ename, "CancelledError");
    assert.equal(j.evalue, "cancelled at step 3/50; the model is still loaded");
    assert.ok(j.traceback.includes("second line"));
  });

  test("frames of the user's own files stay; a thrown non-error is shown as its value", () => {
    const e = new Error("boom");
    e.stack = "Error: boom\n    at work (/home/me/project/lib.js:3:9)\n    at evalmachine.<anonymous>:1:1\n    at Script.runInThisContext (node:vm:137:12)";
    const j = jupyterError(e, false);
    assert.deepEqual(j.traceback.slice(1), ["    at work (/home/me/project/lib.js:3:9)", "(2 internal frames hidden; WANLAB_TRACE=1 shows them)"]);
    assert.deepEqual(jupyterError(42, false).evalue, "42");
  });

  test("TypeScript diagnostics are one error whose value is the first", () => {
    const j = compileError(["1:7 - Cannot find name 'lab2'.", "2:1 - Unreachable code."]);
    assert.equal(j.ename, "TypeScript error");
    assert.equal(j.evalue, "1:7 - Cannot find name 'lab2'.");
    assert.equal(j.traceback.length, 2);
  });
});

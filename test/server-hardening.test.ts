// Issue 17, the server's part: the default memory guard, outputs confined by real folders,
// HTTP edge cases, the runtime directory and a stale server.json, a journal that survives a
// torn tail, and shutdown within its grace. All against the tiny model, loopback only.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { MemoryPlanReport } from "../src/engine.js";
import { jsonDepth } from "../src/fs/json.js";
import { processStart } from "../src/server/runtime.js";
import { scratch, wanlab } from "./helpers.js";
import { long, startServer, tiny, waitFor, waitState, type RunningServer } from "./serve.js";

const dir = scratch("wanlab-server-hard-");
const model = join(dir, "tiny");
const outputs = join(dir, "outputs");
let s: RunningServer;

before(async () => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
  s = await startServer(["--model", model, "--outputs", outputs], join(dir, "run"));
});
after(async () => {
  if (s && s.child.exitCode === null) {
    s.child.kill("SIGKILL");
    await s.exited;
  }
});

async function submit(server: RunningServer, body: unknown): Promise<string> {
  const res = await server.api("/v1/jobs", { method: "POST", json: body });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}

const journalOf = (out: string) => readFileSync(join(out, "journal.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, any>);

describe("the default memory guard", () => {
  test("without --budget a job predicted over the host's memory is refused at submit naming the prediction, the limit and --budget none", async () => {
    assert.match(s.stderr(), /no --budget: jobs predicted over the host's available memory \(MemAvailable when the server started\) \(\d+\.\d+ GB\) are refused at submit; --budget none accepts them|no --budget: jobs predicted over this container's memory limit/);
    const huge = { prompt: "x", height: 4096, width: 4096, numFrames: 1001 };
    const res = await s.api("/v1/jobs", { method: "POST", json: huge });
    assert.equal(res.status, 400);
    const j = (await res.json()) as { error: string; field: string };
    assert.equal(j.field, "budget");
    assert.match(j.error, /a 4096x4096x1001 generation is predicted to need \d+\.\d+ GB on cpu \(encode .*, denoise .*, decode .*\), more than (the host's available memory|this container's memory limit).*, \d+\.\d+ GB; .*--budget none to accept such jobs anyway/);
    assert.equal(((await (await s.api("/v1/jobs")).json()) as { jobs: unknown[] }).jobs.length, 0, "nothing was queued");
    // /v1/plan says the same
    const plan = (await (await s.api("/v1/plan", { method: "POST", json: { height: 4096, width: 4096, numFrames: 1001 } })).json()) as MemoryPlanReport;
    assert.equal(plan.fits, false);
    assert.equal(plan.problem, j.error);
    assert.ok(plan.peak_bytes > 100e9);
    // what fits runs
    const small = (await (await s.api("/v1/plan", { method: "POST", json: tiny })).json()) as MemoryPlanReport;
    assert.equal(small.fits, true);
    const id = await submit(s, { prompt: "fits", ...tiny });
    assert.equal((await waitState(s, id, ["done", "failed"])).state, "done");
  });

  test("serve({ guard: false }) (--budget none) accepts it", async () => {
    const { serve } = await import("../src/server/index.js");
    const lines: string[] = [];
    const server = await serve({ model, outputs: join(dir, "outputs-noguard"), runtimeDir: join(dir, "run-noguard"), guard: false, log: (l) => lines.push(l) });
    try {
      assert.ok(!lines.some((l) => /no --budget/.test(l)), lines.join("\n"));
      const plan = (await (await fetch(`${server.url}/v1/plan`, { method: "POST", headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" }, body: JSON.stringify({ height: 4096, width: 4096, numFrames: 1001 }) })).json()) as MemoryPlanReport;
      assert.equal(plan.fits, true);
    } finally {
      await server.close();
    }
  });
});

describe("outputs confined by real folders", () => {
  test("a symbolic link inside the outputs folder is refused at submit naming output; nothing is written through it", async () => {
    const outside = join(dir, "outside");
    mkdirSync(outside);
    mkdirSync(outputs, { recursive: true });
    symlinkSync(outside, join(outputs, "etclink"));
    for (const output of ["etclink", "etclink/sub"]) {
      const res = await s.api("/v1/jobs", { method: "POST", json: { prompt: "x", output, ...tiny } });
      assert.equal(res.status, 400, output);
      const j = (await res.json()) as { error: string; field: string };
      assert.equal(j.field, "output");
      assert.match(j.error, /goes through 'etclink', a symbolic link/);
    }
    writeFileSync(join(outputs, "afile"), "x");
    const file = await s.api("/v1/jobs", { method: "POST", json: { prompt: "x", output: "afile/sub", ...tiny } });
    assert.equal(file.status, 400);
    assert.match(((await file.json()) as { error: string }).error, /'afile', which exists and is not a folder/);
    assert.deepEqual(readdirSync(outside), []);
  });

  test("a symbolic link swapped in after submit is not followed: the job fails naming the folder, nothing is written outside", async () => {
    const outside = join(dir, "outside2");
    mkdirSync(outside);
    const blocker = await submit(s, { prompt: "long", ...long, numInferenceSteps: 300 });
    const id = await submit(s, { prompt: "x", output: "later/deeper", ...tiny });
    symlinkSync(outside, join(outputs, "later")); // after the submit's checks, before the job runs
    await s.api(`/v1/jobs/${blocker}`, { method: "DELETE" });
    const j = await waitState(s, id, ["done", "failed"]);
    assert.equal(j.state, "failed");
    assert.match(j.error, /output folder .*later is a symbolic link; the job's files are written only into real folders inside the outputs directory/);
    assert.deepEqual(readdirSync(outside), []);
    assert.match(s.stderr(), new RegExp(`job ${id} failed: output folder`), "the failure is logged");
    assert.equal((await s.api("/v1/health")).status, 200);
  });

  test("names that cannot be created are refused at submit: a 300-byte segment, journal.jsonl, server.json", async () => {
    const cases: [string, RegExp][] = [
      ["a".repeat(300), /has a segment of 300 bytes; a folder name can have at most 255/],
      ["ok/" + "é".repeat(150), /has a segment of 300 bytes/],
      ["journal.jsonl", /must not use the name 'journal.jsonl', which the server keeps for itself/],
      ["journal.jsonl.torn-x", /must not use the name 'journal\.jsonl\.torn-x'/],
      ["x/server.json", /must not use the name 'server.json'/],
      [".abc.tmp", /hidden segments/],
    ];
    for (const [output, message] of cases) {
      const res = await s.api("/v1/jobs", { method: "POST", json: { prompt: "x", output, ...tiny } });
      assert.equal(res.status, 400, output);
      const j = (await res.json()) as { error: string; field: string };
      assert.equal(j.field, "output", output);
      assert.match(j.error, message);
    }
  });
});

describe("HTTP edge cases", () => {
  test("a deeply nested body → 400 naming the body (not 500); the depth is counted without parsing", async () => {
    assert.equal(jsonDepth('{"a":"[[[[{{"}', 4), 1, "brackets in strings do not count");
    assert.equal(jsonDepth('{"a":"\\"[[["}', 4), 1, "nor after an escaped quote");
    for (const body of ["[".repeat(20000) + "]".repeat(20000), `{"prompt":${"[".repeat(17)}${"]".repeat(17)}}`, "{".repeat(30000)]) {
      const res = await s.api("/v1/jobs", { method: "POST", body, headers: { "content-type": "application/json" } });
      assert.equal(res.status, 400);
      const j = (await res.json()) as { error: string; field: string };
      assert.equal(j.field, "body");
      assert.match(j.error, /the request body nests deeper than 16 levels/);
    }
    assert.equal((await s.api("/v1/health")).status, 200);
  });

  test("a body that is not an object → 400 'the request body must be a JSON object'", async () => {
    for (const body of ["[]", '"a cat"', "1", "null", "true"]) {
      for (const path of ["/v1/jobs", "/v1/plan"]) {
        const res = await s.api(path, { method: "POST", body, headers: { "content-type": "application/json" } });
        assert.equal(res.status, 400, `${path} ${body}`);
        const j = (await res.json()) as { error: string; field: string };
        assert.equal(j.field, "body");
        assert.match(j.error, /^the request body must be a JSON object/);
      }
    }
    const none = await s.api("/v1/jobs", { method: "POST", headers: { "content-type": "application/json" } });
    assert.equal(none.status, 400);
    assert.match(((await none.json()) as { error: string }).error, /the request body must be a JSON object/);
  });

  test("DELETE with a JSON content type and no body cancels; two concurrent DELETEs of a queued job agree", async () => {
    const blocker = await submit(s, { prompt: "long", ...long });
    const a = await submit(s, { prompt: "queued a", ...tiny });
    const b = await submit(s, { prompt: "queued b", ...tiny });
    const res = await s.api(`/v1/jobs/${a}`, { method: "DELETE", headers: { "content-type": "application/json" } });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { state: string }).state, "cancelled");
    const both = await Promise.all([s.api(`/v1/jobs/${b}`, { method: "DELETE" }), s.api(`/v1/jobs/${b}`, { method: "DELETE" })]);
    for (const r of both) {
      const j = (await r.json()) as { state: string };
      assert.ok(r.status === 200 || r.status === 409, `${r.status}`);
      assert.equal(j.state, "cancelled");
    }
    assert.equal(journalOf(outputs).filter((r) => r.id === b && r.t === "cancelled").length, 1, "journalled once");
    const r = await s.api(`/v1/jobs/${blocker}`, { method: "DELETE" });
    assert.ok(r.status === 200 || r.status === 202);
    await waitState(s, blocker, ["cancelled"]);
  });

  test("an output file deleted on the server → 404 naming it, not 500", async () => {
    const id = await submit(s, { prompt: "x", ...tiny });
    const j = await waitState(s, id, ["done"]);
    rmSync(j.outputs[0]);
    const res = await s.api(`/v1/jobs/${id}/files/video.mp4`);
    assert.equal(res.status, 404);
    assert.match(((await res.json()) as { error: string }).error, /output 'video.mp4' is no longer on the server/);
    assert.equal((await s.api(`/v1/jobs/${id}/files/manifest.json`)).status, 200);
  });

  test("Authorization: the scheme is case-insensitive (RFC 7235); the token is not", async () => {
    for (const scheme of ["bearer", "BEARER", "Bearer"]) assert.equal((await s.api("/v1/health", { headers: { authorization: `${scheme} ${s.token}` } })).status, 200, scheme);
    assert.equal((await s.api("/v1/health", { headers: { authorization: `bearer ${s.token.toUpperCase()}x` } })).status, 401);
    assert.equal((await s.api("/v1/health", { headers: { authorization: `Bearer${s.token}` } })).status, 401);
  });
});

describe("the runtime directory", () => {
  test("a stale server.json whose pid now belongs to another program does not block serve", async () => {
    const rt = join(dir, "run-stale");
    mkdirSync(rt, { mode: 0o700 });
    const other = spawn("sleep", ["60"], { stdio: "ignore" });
    try {
      assert.ok(processStart(other.pid!), "/proc/PID/stat is readable");
      writeFileSync(join(rt, "server.json"), JSON.stringify({ url: "http://127.0.0.1:1", token: "t", pid: other.pid, pidStart: "1", model }), { mode: 0o600 });
      const a = await startServer(["--model", model, "--outputs", join(dir, "outputs-stale")], rt);
      try {
        assert.match(a.stderr(), new RegExp(`server.json is stale \\(process ${other.pid} is now another program \\(sleep 60\\), started after the server that wrote it\\); replacing it`));
        const info = JSON.parse(readFileSync(join(rt, "server.json"), "utf8"));
        assert.equal(info.pid, a.child.pid);
        assert.equal(info.pidStart, processStart(a.child.pid!));
      } finally {
        a.child.kill("SIGTERM");
        await a.exited;
      }
      // the server that wrote it still running: refused, as before
      const b = await startServer(["--model", model, "--outputs", join(dir, "outputs-stale")], rt);
      try {
        const r = wanlab(["serve", "--model", model, "--outputs", join(dir, "outputs-stale2")], { WANLAB_RUNTIME_DIR: rt });
        assert.equal(r.status, 1);
        assert.match(r.stderr, new RegExp(`another wanlab server \\(pid ${b.child.pid}\\) is running`));
      } finally {
        b.child.kill("SIGTERM");
        await b.exited;
      }
    } finally {
      other.kill();
    }
  });

  test("a runtime directory others can write (0777) is refused naming it and the fix; nothing is loaded", () => {
    const rt = join(dir, "run-open");
    mkdirSync(rt);
    chmodSync(rt, 0o777);
    const r = wanlab(["serve", "--model", model, "--outputs", join(dir, "outputs-open")], { WANLAB_RUNTIME_DIR: rt });
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`runtime directory ${rt} has mode 0777: others can write it and could replace server.json; run \`chmod 700 ${rt}\``));
    assert.doesNotMatch(r.stderr, /loading/);
    assert.ok(!existsSync(join(rt, "server.json")));
    assert.equal(statSync(rt).mode & 0o777, 0o777, "left as it was");
  });
});

describe("journal", () => {
  test("a job failed on restore leaves no hidden scratch folder", async () => {
    const out = join(dir, "outputs-scratch");
    const rt = join(dir, "run-scratch");
    let a = await startServer(["--model", model, "--outputs", out], rt);
    const id = await submit(a, { prompt: "doomed", output: "sub", ...long });
    for (let i = 0; i < 2; i++) {
      await waitState(a, id, ["running"]);
      await waitFor("its scratch folder", async () => (existsSync(join(out, "sub", `.${id}.tmp`)) ? true : undefined));
      a.child.kill("SIGKILL");
      await a.exited;
      a = await startServer(["--model", model, "--outputs", out], rt);
    }
    try {
      const j = await waitState(a, id, ["failed"]);
      assert.match(j.error, /interrupted 2 times/);
      assert.deepEqual(readdirSync(join(out, "sub")), []);
    } finally {
      a.child.kill("SIGTERM");
      await a.exited;
    }
  });
});

describe("shutdown", () => {
  test("SIGTERM: the running job gets --grace, then is cancelled and re-queued in the journal; the server exits 0 and the job runs again after a restart", async () => {
    const out = join(dir, "outputs-grace");
    const rt = join(dir, "run-grace");
    let a = await startServer(["--model", model, "--outputs", out, "--grace", "1"], rt);
    const id = await submit(a, { prompt: "long", ...long });
    await waitState(a, id, ["running"]);
    const t0 = Date.now();
    a.child.kill("SIGTERM");
    assert.equal(await a.exited, 0);
    const took = (Date.now() - t0) / 1000;
    assert.ok(took < 1 + 5, `stopped in ${took} s`);
    assert.match(a.stderr(), new RegExp(`job ${id} gets up to 1 s to finish \\(--grace\\)`));
    assert.match(a.stderr(), new RegExp(`job ${id} re-queued in the journal; it runs again when the server restarts`));
    assert.ok(!existsSync(join(rt, "server.json")));
    assert.deepEqual(journalOf(out).filter((r) => r.id === id).map((r) => r.t), ["submit", "start", "requeue"]);
    a = await startServer(["--model", model, "--outputs", out], rt);
    try {
      assert.match(a.stderr(), /resuming 1 job\(s\)/);
      await waitState(a, id, ["running", "done"]);
    } finally {
      a.child.kill("SIGKILL");
      await a.exited;
    }
  });

  test("a second SIGTERM stops at once, journaling the running job as re-queued", async () => {
    const out = join(dir, "outputs-second");
    const rt = join(dir, "run-second");
    const a = await startServer(["--model", model, "--outputs", out, "--grace", "600"], rt);
    const id = await submit(a, { prompt: "long", ...long });
    await waitState(a, id, ["running"]);
    a.child.kill("SIGTERM");
    await waitFor("the stopping line", async () => (/gets up to 600 s/.test(a.stderr()) ? true : undefined), 10_000);
    const t0 = Date.now();
    a.child.kill("SIGTERM");
    assert.equal(await a.exited, 0);
    assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
    assert.match(a.stderr(), /second signal: cancelling and re-queueing the running job now/);
    assert.deepEqual(journalOf(out).filter((r) => r.id === id).map((r) => r.t), ["submit", "start", "requeue"]);
    assert.ok(!existsSync(join(rt, "server.json")));
  });

  test("an engine that does not return after its cancel does not hold the stop: the server exits 0 without it", async () => {
    const out = join(dir, "outputs-busy");
    const rt = join(dir, "run-busy");
    // the test hook: give the engine no time at all after its cancel
    const a = await startServer(["--model", model, "--outputs", out, "--grace", "0"], rt, {}, { stopWaitMs: 0 });
    const id = await submit(a, { prompt: "big", height: 480, width: 832, numFrames: 81, numInferenceSteps: 50 });
    // inside the engine's denoising loop (a block takes a good fraction of a second here)
    await waitFor("the denoising stage", async () => (((await (await a.api(`/v1/jobs/${id}`)).json()) as { stage?: string }).stage === "denoise" ? true : undefined));
    const t0 = Date.now();
    a.child.kill("SIGTERM");
    assert.equal(await a.exited, 0, a.stderr());
    assert.ok(Date.now() - t0 < 3000, `stopped in ${Date.now() - t0} ms`);
    assert.match(a.stderr(), /the engine did not return within 0 s of its cancel; stopping without it/);
    assert.deepEqual(journalOf(out).filter((r) => r.id === id).map((r) => r.t), ["submit", "start", "requeue"]);
    assert.ok(!existsSync(join(rt, "server.json")));
  });
});

describe("weights changed underneath", () => {
  /** The tiny model's DiT weights (memory-mapped by the engine). */
  const weightsOf = (m: string) => {
    const files = readdirSync(m).filter((f) => f.endsWith(".safetensors")).map((f) => join(m, f));
    files.sort((a, b) => statSync(b).size - statSync(a).size);
    assert.ok(files.length > 0, `no .safetensors in ${m}`);
    return files[0]!;
  };

  test("a model file changed since load: jobs are refused (503 at submit, failed if it ran) naming it, logged; the server stays up", async () => {
    const m = join(dir, "tiny-changed");
    assert.equal(wanlab(["make-tiny", m]).status, 0);
    const a = await startServer(["--model", m, "--outputs", join(dir, "outputs-changed")], join(dir, "run-changed"));
    try {
      const ok = await submit(a, { prompt: "before", ...tiny });
      assert.equal((await waitState(a, ok, ["done", "failed"])).state, "done");
      const file = weightsOf(m);
      // a job that runs while the file changes fails naming it
      const running = await submit(a, { prompt: "long", ...long });
      await waitState(a, running, ["running"]);
      appendFileSync(file, Buffer.alloc(64)); // size and mtime change; nothing mapped is cut off
      const j = await waitState(a, running, ["done", "failed", "cancelled"]);
      if (j.state === "failed") {
        assert.ok(j.error.includes(file), j.error);
        assert.match(a.stderr(), new RegExp(`job ${running} failed: model file .* since the engine loaded it`));
      }
      // a new job is refused at submit: the server's condition, not the request's
      const res = await a.api("/v1/jobs", { method: "POST", json: { prompt: "after", ...tiny } });
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { error: string }).error, new RegExp(`model file ${file} grew from \\d+ to \\d+ bytes since the engine loaded it`));
      assert.match(a.stderr(), /refused a job: model file .* grew/);
      assert.equal((await a.api("/v1/health")).status, 200);
      assert.ok(existsSync(join(dir, "run-changed", "server.json")));
      a.child.kill("SIGTERM");
      assert.equal(await a.exited, 0);
    } finally {
      if (a.child.exitCode === null) a.child.kill("SIGKILL");
      await a.exited;
    }
  });

  test("a fatal SIGBUS in the engine removes server.json on the way down (status 135, one line naming it)", async () => {
    const rt = join(dir, "run-sigbus");
    const a = await startServer(["--model", model, "--outputs", join(dir, "outputs-sigbus")], rt);
    try {
      assert.ok(existsSync(join(rt, "server.json")));
      a.child.kill("SIGBUS"); // as a read of a truncated mapped weights file would raise it
      assert.equal(await a.exited, 135, a.stderr());
      assert.match(a.stderr(), /wanlab: fatal: SIGBUS/);
      assert.ok(!existsSync(join(rt, "server.json")), "server.json removed");
    } finally {
      if (a.child.exitCode === null) a.child.kill("SIGKILL");
      await a.exited;
    }
  });
});

// What `wanlab serve` prints while it works (src/server/console.ts): one line per job event,
// in order, each with a timestamp and the job's id: accepted (size, steps, client), started,
// progress, done in X s with the path, failed with the reason and field, cancelled where the
// engine stopped, re-queued by a shutdown and after the restart; refusals with the field; none
// of them with --quiet. And GET /, the one route without a token: the version and the routes.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { serve } from "../src/server/index.js";
import { apiRoutes } from "../src/server/home.js";
import { root, scratch, wanlab } from "./helpers.js";
import { long, startServer, waitFor, waitState, type RunningServer } from "./serve.js";

const dir = scratch("wanlab-server-console-");
const model = join(dir, "tiny");
const notAVideo = join(dir, "not-a-video.mp4");
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
const small = { height: 32, width: 32, numFrames: 1, numInferenceSteps: 2 };
let s: RunningServer;

before(async () => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
  writeFileSync(notAVideo, "plain text, not a video\n");
  s = await startServer(["--model", model, "--outputs", join(dir, "outputs")], join(dir, "run"));
});
after(async () => {
  if (s && s.child.exitCode === null) {
    s.child.kill("SIGTERM");
    await s.exited;
  }
});

/** The job-event lines of a server's log: [timestamp, id, what]. */
function jobLines(log: string): [string, string, string][] {
  return [...log.matchAll(/^wanlab serve: (\S+) job (\S+) (.*)$/gm)].map((m) => [m[1]!, m[2]!, m[3]!]);
}

async function submit(server: RunningServer, body: unknown, agent = "console-test/1"): Promise<string> {
  const res = await server.api("/v1/jobs", { method: "POST", json: body, headers: { "user-agent": agent } });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}

describe("the console", () => {
  test("a done, a refused, a failed and a cancelled job: one timestamped line per event, in order", async () => {
    const ok = await submit(s, { prompt: "a cat\nwith \x1b[31mred", seed: 7, ...small });
    const done = await waitState(s, ok, ["done", "failed"]);
    assert.equal(done.state, "done", done.error);

    const refused = await s.api("/v1/jobs", { method: "POST", json: { prompt: "x", ...small, height: 17 }, headers: { "user-agent": "console-test/1" } });
    assert.equal(refused.status, 400);

    const bad = await submit(s, { prompt: "v2v", ...small, inputVideo: notAVideo });
    const failed = await waitState(s, bad, ["done", "failed"]);
    assert.equal(failed.state, "failed");

    const stopped = await submit(s, { prompt: "long", ...long });
    await waitFor("a step of the long job", async () => {
      const j = (await (await s.api(`/v1/jobs/${stopped}`)).json()) as { step: number };
      return j.step >= 1 ? true : undefined;
    });
    assert.equal((await s.api(`/v1/jobs/${stopped}`, { method: "DELETE" })).status < 300, true);
    const cancelled = await waitState(s, stopped, ["cancelled"]);
    await waitFor("the cancelled line", async () => (s.stderr().includes(`job ${stopped} cancelled`) ? true : undefined), 5000);

    const log = s.stderr();
    assert.doesNotMatch(log, /\x1b/, "no escape codes reach the console (stderr is not a TTY; the prompt's ESC is escaped)");
    const lines = jobLines(log);
    for (const [at] of lines) assert.match(at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const events = lines.map(([, id, what]) => `${id === ok ? "ok" : id === bad ? "bad" : id === stopped ? "stopped" : id} ${what.replace(/^step .*/, "step")}`);
    // progress: at every tenth of the steps (both steps of 2), none in the cancelled job's first 10 s
    // below its first tenth (100 of 1000 steps at most ~10 s in)
    const kinds = events.map((e) => e.split(/[ :(]/).slice(0, 2).join(" "));
    assert.deepEqual(kinds.filter((k) => !k.startsWith("stopped step")), [
      "ok accepted", "ok started", "ok step", "ok step", "ok done",
      "bad accepted", "bad started", "bad failed",
      "stopped accepted", "stopped started", "stopped cancelled",
    ], events.join("\n"));

    const of = (id: string) => lines.filter(([, j]) => j === id).map(([, , what]) => what);
    const [accepted, started, step1, step2, finished] = of(ok);
    assert.equal(accepted, 'accepted from 127.0.0.1 (console-test/1): 32x32, 1 frame, 2 steps, seed 7, "a cat\\nwith \\u001b[31mred"');
    assert.match(started!, /^started after \d+\.\d s in the queue$/);
    assert.match(step1!, /^step 1\/2 \(50%\), ETA \d+\.\d s of denoising$/);
    assert.equal(step2, "step 2/2 (100%), decoding");
    assert.match(finished!, /^done in \d+\.\d s: (.*)$/);
    assert.equal(finished!.replace(/^done in \d+\.\d s: /, ""), done.outputs[0], "the line names the video's path");

    assert.match(log, /^wanlab serve: \S+ refused a job from 127\.0\.0\.1 \(console-test\/1\): height must be a multiple of 16, got 17 \(field height\)$/m);
    const failedLine = of(bad).at(-1)!;
    assert.equal(failedLine, `failed: ${failed.error} (field inputVideo)`);
    assert.match(failedLine, /inputVideo .*not-a-video\.mp4: ffmpeg could not read it/);

    const at = /^cancelled at step (\d+)\/1000, block (\d+)\/(\d+) \(denoise\)$/.exec(of(stopped).at(-1)!);
    assert.ok(at, of(stopped).join("\n"));
    assert.match(cancelled.error, new RegExp(`step ${at[1]}/1000, block ${at[2]}/${at[3]}`), "the line says where the engine stopped, as the CancelledError does");
  });

  test("a shutdown re-queues the running job and the restarted server says so, then runs it", async () => {
    const runtime = join(dir, "run-restart");
    const outputs = join(dir, "outputs-restart");
    const a = await startServer(["--model", model, "--outputs", outputs, "--grace", "0"], runtime);
    const id = await submit(a, { prompt: "interrupted", ...long, numInferenceSteps: 200 });
    // a step taken: its start is journalled and announced (a signal before that is another story)
    await waitFor("a step of the job", async () => (((await (await a.api(`/v1/jobs/${id}`)).json()) as { step: number }).step >= 1 ? true : undefined));
    a.child.kill("SIGTERM");
    assert.equal(await a.exited, 0, a.stderr());
    assert.deepEqual(jobLines(a.stderr()).map(([, , what]) => what.split(/[ :(]/)[0]).filter((w) => w !== "step"), ["accepted", "started", "re-queued"], a.stderr());
    assert.match(a.stderr(), new RegExp(`job ${id} re-queued: server shutdown: the grace period ended while it ran`));

    const b = await startServer(["--model", model, "--outputs", outputs], runtime);
    try {
      await waitState(b, id, ["running", "done"]);
      await b.api(`/v1/jobs/${id}`, { method: "DELETE" });
      await waitState(b, id, ["cancelled", "done"]);
      await waitFor("the last line", async () => (/job \S+ (cancelled|done)/.test(b.stderr()) ? true : undefined), 5000);
      const whats = jobLines(b.stderr()).filter(([, j]) => j === id).map(([, , w]) => w).filter((w) => !w.startsWith("step "));
      assert.equal(whats[0], "re-queued: after a restart (queued in the journal)", b.stderr());
      assert.match(whats[1]!, /^started \(attempt 2\) after/, b.stderr());
    } finally {
      b.child.kill("SIGTERM");
      await b.exited;
    }
  });

  test("quiet: no job lines and no refusal lines; the server's own lines stay", async () => {
    const lines: string[] = [];
    const server = await serve({ model, outputs: join(dir, "outputs-quiet"), runtimeDir: join(dir, "run-quiet"), quiet: true, log: (l) => lines.push(l) });
    try {
      const res = await fetch(`${server.url}/v1/jobs`, { method: "POST", headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" }, body: JSON.stringify({ prompt: "q", ...small }) });
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as { id: string };
      const bad = await fetch(`${server.url}/v1/jobs`, { method: "POST", headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" }, body: JSON.stringify({ prompt: "q", ...small, height: 17 }) });
      assert.equal(bad.status, 400);
      await waitFor("the quiet job", async () => {
        const j = (await (await fetch(`${server.url}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${server.token}` } })).json()) as { state: string };
        return j.state === "done" ? true : undefined;
      });
    } finally {
      await server.close();
    }
    assert.ok(lines.some((l) => /model loaded/.test(l)), lines.join("\n"));
    assert.deepEqual(lines.filter((l) => / job |refused a job/.test(l)), []);
  });

  test("wanlab serve --quiet prints no job lines", async () => {
    const q = await startServer(["--model", model, "--outputs", join(dir, "outputs-q"), "--quiet"], join(dir, "run-q"));
    try {
      const id = await submit(q, { prompt: "q", ...small });
      await waitState(q, id, ["done"]);
      assert.equal((await q.api("/v1/jobs", { method: "POST", json: { prompt: "q", ...small, height: 17 } })).status, 400);
    } finally {
      q.child.kill("SIGTERM");
      await q.exited;
    }
    assert.deepEqual(jobLines(q.stderr()), []);
    assert.doesNotMatch(q.stderr(), /refused a job/);
    assert.match(q.stderr(), /model loaded/);
  });
});

describe("GET /", () => {
  test("answers without a token: the server's version and every route, and nothing about jobs or the model", async () => {
    const id = await submit(s, { prompt: "secret prompt", ...small });
    await waitState(s, id, ["done", "failed"]);
    const res = await fetch(`${s.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; charset=utf-8/);
    const page = await res.text();
    assert.match(page, new RegExp(`^wanlab serve ${version.replace(/\./g, "\\.")}:`));
    assert.match(page, /Authorization: Bearer TOKEN/);
    for (const [method, path] of apiRoutes) assert.match(page, new RegExp(`^  ${method} ${path.replace(/[/.]/g, "\\$&")} +\\S`, "m"), `${method} ${path}`);
    for (const secret of [id, "secret prompt", s.token, model, dir]) assert.ok(!page.includes(secret), `the page shows ${secret}`);
    assert.equal((await fetch(`${s.url}/`, { method: "HEAD" })).status, 200);
    assert.equal((await fetch(`${s.url}/?x=1`)).status, 200);
    assert.equal((await s.api("/")).status, 200, "with the token as well");
  });

  test("every other path still needs the token; the API's answers are unchanged", async () => {
    for (const path of ["/v1/jobs", "/v1/queue", "/v1/stats", "/index.html", "//v1/jobs"]) {
      assert.equal((await fetch(s.url + path)).status, 401, path);
    }
    assert.equal((await fetch(`${s.url}/`, { method: "POST" })).status, 401);
    const res = await s.api("/nope");
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: "no route GET /nope" });
  });
});

// The hostile-input suite: corrupted copies of the tiny model, hostile
// pickles, deep JSON, outputs over special files, malformed command lines and bad HTTP bodies,
// each run as a child process under a memory cap (the resident memory of its process tree) and
// a time limit. A hostile case must be refused with an error naming the culprit; a control must
// run normally; none may exceed its cap, crash, hang or exit 0 with a wrong result. The table of
// every case's outcome is printed at the end (and written as JSON to $WANLAB_HOSTILE_REPORT).
import assert from "node:assert/strict";
import { cpSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { scratch } from "./helpers.js";
import { caps, cases } from "./hostile/cases.js";
import { judgeProcess, MiB, outcomeTable, runLimited, type CaseResult } from "./hostile/harness.js";
import { HttpSuite, httpCases } from "./hostile/http.js";
import { makeModels, runCase, type Models } from "./hostile/suite.js";

const root = scratch("wanlab-hostile-");
let models: Models;
const results: CaseResult[] = [];

before(() => {
  models = makeModels(root);
});

after(() => {
  console.log(`\nhostile-input suite:\n${outcomeTable(results)}`);
  if (process.env.WANLAB_HOSTILE_REPORT) writeFileSync(process.env.WANLAB_HOSTILE_REPORT, JSON.stringify(results, null, 2) + "\n");
});

function record(r: CaseResult): CaseResult {
  results.push(r);
  return r;
}

function verdict(r: CaseResult): string {
  return `${r.name}: ${r.outcome} (expected ${r.expect})${r.problem ? `: ${r.problem}` : ""}; exit ${r.signal ?? r.code}, ` +
    `peak ${(r.peakRssBytes / MiB).toFixed(0)} MiB of ${(r.capBytes / MiB).toFixed(0)}, ${r.seconds.toFixed(1)} s; ${r.error}`;
}

// The gate itself can fail: each way a case can go wrong is recognised (small, synthetic processes).
describe("the harness", () => {
  const node = (code: string) => [process.execPath, ["-e", code]] as const;
  const limits = { capBytes: 200 * MiB, timeoutMs: 3000 };
  const judged = async (code: string, expect: "refused" | "ok" = "refused", errorMatches: RegExp[] = []) => {
    const [cmd, args] = node(code);
    const r = await runLimited(cmd, [...args], limits);
    return { r, j: judgeProcess(r, expect, errorMatches) };
  };
  test("a process tree growing past its cap is killed and judged over-cap, children included", async () => {
    const hog = "const a = []; for (;;) a.push(Buffer.alloc(32 * 2 ** 20, 1));";
    const { r, j } = await judged(`require("node:child_process").spawnSync(process.execPath, ["-e", ${JSON.stringify(hog)}], { stdio: "inherit" })`);
    assert.equal(j.outcome, "over-cap", JSON.stringify(j));
    assert.ok(r.peakRssBytes > limits.capBytes && r.peakRssBytes < limits.capBytes + 256 * MiB, String(r.peakRssBytes));
  });
  test("a process past its time limit is killed and judged a hang", async () => {
    const { r, j } = await judged("setInterval(() => {}, 1000)");
    assert.equal(j.outcome, "hang");
    assert.ok(r.seconds >= 3 && r.seconds < 6, String(r.seconds));
  });
  test("a signal or an uncaught exception is a crash", async () => {
    assert.equal((await judged('process.kill(process.pid, "SIGSEGV")')).j.outcome, "crash");
    assert.equal((await judged('throw new Error("boom")')).j.outcome, "crash");
  });
  test("exit 0 where a refusal is due is wrong-ok; a refusal must name its culprit", async () => {
    assert.equal((await judged("0")).j.outcome, "wrong-ok");
    const named = await judged('console.error("wanlab inspect: m/config.json: text_len 1e9"); process.exit(1)', "refused", [/config\.json/, /text_len/]);
    assert.deepEqual(named.j, { outcome: "refused", problem: undefined });
    const vague = await judged('console.error("wanlab inspect: type must be string"); process.exit(1)', "refused", [/config\.json/]);
    assert.match(vague.j.problem ?? "", /does not name the culprit/);
  });
});

describe("corrupted models, hostile pickles, deep JSON, special outputs, bad command lines", () => {
  for (const c of cases) {
    test(c.name, { skip: c.skip?.() }, async () => {
      const r = record(await runCase(c, models, root));
      assert.ok(r.pass, verdict(r));
      if (c.name === "control_generate_on_the_pristine_tiny_model_writes_a_video")
        assert.ok(r.peakRssBytes < caps.generate / 2, `a normal generate peaks at ${(r.peakRssBytes / MiB).toFixed(0)} MiB, too close to the ${caps.generate / MiB} MiB cap`);
    });
  }
});

describe("bad HTTP bodies against a running server", () => {
  let http: HttpSuite;
  before(async () => {
    http = new HttpSuite(models.official, root, caps.server);
    await http.start();
  });
  after(() => http?.stop());
  for (const c of httpCases) {
    test(c.name, async () => {
      const r = record(await http.run(c));
      assert.ok(r.pass, verdict(r));
    });
  }
  test("http_server_serves_a_normal_small_job_after_all_hostile_bodies", async () => {
    const r = record(await http.control("http_server_serves_a_normal_small_job_after_all_hostile_bodies"));
    assert.ok(r.pass, verdict(r));
  });
});

describe("a model file changed under a running server", () => {
  let http: HttpSuite;
  before(async () => {
    const dir = join(root, "changed");
    cpSync(models.official, join(dir, "model"), { recursive: true });
    http = new HttpSuite(join(dir, "model"), dir, caps.server);
    await http.start();
  });
  after(() => http?.stop());
  const name = "http_dit_file_truncated_under_the_server_fails_the_next_job_naming_it_without_sigbus";
  test(name, async () => {
    const r = record(await http.modelChanged(name, "diffusion_pytorch_model.safetensors"));
    assert.ok(r.pass, verdict(r));
  });
});

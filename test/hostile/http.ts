// The HTTP cases of the hostile-input suite: bad request bodies against one running
// `wanlab serve` (loopback, the tiny model), started under the harness's memory cap. Each must
// get a 4xx naming the problem, never a 5xx, never 2xx; the server must stay alive throughout
// and serve a normal small job afterwards.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { cliPath } from "../helpers.js";
import { addressSpaceBackstop, firstErrorLine, MiB, watch, type CaseResult, type Watched } from "./harness.js";
import { deepJson, deepObjects } from "./files.js";

export interface HttpCase {
  name: string;
  method?: "POST" | "DELETE" | "GET";
  path?: string;
  /** The raw body (a string is sent as UTF-8; an object as JSON). */
  body?: string | Buffer | Record<string, unknown>;
  contentType?: string;
  /** Patterns the answer (its error and field) must match. */
  error?: RegExp[];
  /** The allowed statuses (default: any 4xx). */
  status?: number[];
  /** Prepares the case in the server's outputs folder (`outputs`) or in `scratch`. */
  setup?: (outputs: string, scratch: string) => void;
  /** A check afterwards, whatever the answer (nothing written outside, say). */
  verify?: (outputs: string, scratch: string) => string | undefined;
}

const tiny = { height: 16, width: 16, numFrames: 1, numInferenceSteps: 1 };

export const httpCases: HttpCase[] = [
  { name: "http_body_nested_30k_arrays_deep_is_a_400_not_a_500", body: deepJson(30_000, "prompt"), error: [/nest|deep/i] },
  { name: "http_body_nested_10k_objects_deep_is_a_400_not_a_500", body: deepObjects(10_000), status: [400], error: [/nest|deep/i] },
  { name: "http_plan_body_nested_30k_arrays_deep_is_a_400_not_a_500", path: "/v1/plan", body: deepJson(30_000, "height"), error: [/nest|deep/i] },
  { name: "http_body_that_is_an_array_is_a_400_saying_an_object_is_needed", body: "[]", error: [/object/i] },
  { name: "http_body_that_is_a_string_is_a_400_saying_an_object_is_needed", body: '"a cat"', error: [/object/i] },
  { name: "http_body_that_is_null_is_a_400", body: "null" },
  { name: "http_body_that_is_a_number_is_a_400", body: "5" },
  { name: "http_body_that_is_empty_with_a_json_type_is_a_400", body: "" },
  { name: "http_body_of_invalid_utf8_is_a_400", body: Buffer.from([0x7b, 0x22, 0x70, 0x72, 0x6f, 0x6d, 0x70, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) },
  { name: "http_body_of_one_mebibyte_is_a_413", body: JSON.stringify({ prompt: "x".repeat(MiB) }), status: [413] },
  { name: "http_body_as_text_plain_is_a_4xx", body: JSON.stringify({ prompt: "x", ...tiny }), contentType: "text/plain" },
  { name: "http_prompt_as_a_number_is_a_400_naming_prompt", body: { prompt: 5, ...tiny }, error: [/prompt/] },
  { name: "http_height_as_text_is_a_400_naming_height", body: { prompt: "x", ...tiny, height: "x" }, error: [/height/] },
  { name: "http_seed_as_an_object_is_a_400_naming_seed", body: { prompt: "x", ...tiny, seed: {} }, error: [/seed/] },
  { name: "http_height_1e9_is_a_400_naming_height", body: { prompt: "x", ...tiny, height: 1e9 }, error: [/height/] },
  { name: "http_height_1e400_is_a_400_naming_height", body: `{"prompt":"x","height":1e400,"width":16,"numFrames":1,"numInferenceSteps":1}`, error: [/height/] },
  { name: "http_width_16_5_is_a_400_naming_width", body: { prompt: "x", ...tiny, width: 16.5 }, error: [/width/] },
  { name: "http_num_frames_1e6_is_a_400_naming_num_frames", body: { prompt: "x", ...tiny, numFrames: 1e6 + 1 }, error: [/numFrames/] },
  { name: "http_steps_1e9_is_a_400_naming_num_inference_steps", body: { prompt: "x", ...tiny, numInferenceSteps: 1e9 }, error: [/numInferenceSteps/] },
  { name: "http_seed_1e30_is_a_400_naming_seed", body: { prompt: "x", ...tiny, seed: 1e30 }, error: [/seed/] },
  { name: "http_proto_key_is_a_400_naming_it", body: `{"prompt":"x","height":16,"width":16,"numFrames":1,"numInferenceSteps":1,"__proto__":{"height":4096}}`, error: [/__proto__/] },
  { name: "http_output_naming_a_300_byte_segment_is_a_400_naming_output", body: { prompt: "x", ...tiny, output: "a".repeat(300) }, error: [/output/] },
  { name: "http_output_named_journal_jsonl_is_a_400_naming_output", body: { prompt: "x", ...tiny, output: "journal.jsonl" }, error: [/output/] },
  { name: "http_output_through_a_symlink_out_of_the_outputs_folder_is_a_400_and_nothing_is_written_there", body: { prompt: "x", ...tiny, output: "elsewhere-link" },
    setup: (outputs, scratch) => { mkdirSync(join(scratch, "elsewhere"), { recursive: true }); symlinkSync(join(scratch, "elsewhere"), join(outputs, "elsewhere-link")); },
    verify: (_o, scratch) => { const f = readdirSync(join(scratch, "elsewhere")); return f.length ? `the job wrote outside the outputs folder: ${f.join(", ")}` : undefined; },
    error: [/output/] },
  // last: where it is wrongly accepted, the job's allocation may take the server down
  { name: "http_job_of_4096x4096x1001_frames_without_a_budget_is_refused_at_submit", body: { prompt: "x", height: 4096, width: 4096, numFrames: 1001, numInferenceSteps: 1 },
    error: [/memory|budget|GB|GiB|predict/i] },
];

interface Server {
  watched: Watched;
  url: string;
  token: string;
}

async function startServer(model: string, scratch: string, capBytes: number): Promise<Server> {
  const runtime = join(scratch, "run");
  const watched = watch(process.execPath, [cliPath, "serve", "--model", model, "--port", "0", "--outputs", join(scratch, "outputs")],
    { capBytes, timeoutMs: 600_000 }, { env: { WANLAB_RUNTIME_DIR: runtime }, addressSpace: addressSpaceBackstop() });
  const end = Date.now() + 60_000;
  for (;;) {
    const m = /^listening on (\S+)$/m.exec(watched.stdout());
    if (m) {
      const info = JSON.parse(readFileSync(join(runtime, "server.json"), "utf8")) as { token: string };
      return { watched, url: m[1]!, token: info.token };
    }
    if (watched.child.exitCode !== null || watched.child.signalCode !== null || Date.now() > end) {
      watched.kill();
      throw new Error(`wanlab serve did not start: ${watched.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function alive(s: Server): boolean {
  return s.watched.child.exitCode === null && s.watched.child.signalCode === null;
}

async function send(s: Server, c: HttpCase): Promise<{ status: number; text: string } | { failed: string; timedOut: boolean }> {
  const body = c.body === undefined ? undefined : typeof c.body === "string" || Buffer.isBuffer(c.body) ? c.body : JSON.stringify(c.body);
  try {
    const res = await fetch(s.url + (c.path ?? "/v1/jobs"), {
      method: c.method ?? "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": c.contentType ?? "application/json" },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, text: await res.text() };
  } catch (e) {
    const err = e as Error;
    return { failed: `${err.name}: ${err.message}`, timedOut: err.name === "TimeoutError" };
  }
}

/** Runs every HTTP case against one server, then a normal job; one result per case. */
export class HttpSuite {
  private server?: Server;
  private startError?: string;
  /** `model` is the folder it serves (a private copy where a case changes it), `scratch` its own folder. */
  constructor(private model: string, private scratch: string, private capBytes: number) {}

  async start(): Promise<void> {
    try {
      this.server = await startServer(this.model, this.scratch, this.capBytes);
    } catch (e) {
      this.startError = (e as Error).message;
    }
  }

  /** The server's state as a failed result, or undefined while it is healthy. */
  private broken(name: string, t0: number): CaseResult | undefined {
    const s = this.server;
    const base = { name, kind: "http", expect: "refused" as const, pass: false, code: null, signal: null, capBytes: this.capBytes, seconds: (Date.now() - t0) / 1000 };
    if (!s) return { ...base, outcome: "crash", problem: `the server did not start: ${this.startError}`, peakRssBytes: 0, error: "" };
    if (alive(s)) return undefined;
    const overCap = s.watched.peak() > this.capBytes;
    return { ...base, outcome: overCap ? "over-cap" : "crash", code: s.watched.child.exitCode, signal: s.watched.child.signalCode,
      problem: overCap ? "the server was killed past its memory cap" : "the server is gone", peakRssBytes: s.watched.peak(), error: firstErrorLine(s.watched.stderr()) };
  }

  async run(c: HttpCase): Promise<CaseResult> {
    const t0 = Date.now();
    const dead = this.broken(c.name, t0);
    if (dead) return dead;
    const s = this.server!;
    const outputs = join(this.scratch, "outputs");
    try {
      c.setup?.(outputs, this.scratch);
    } catch (e) {
      return { name: c.name, kind: "http", expect: "refused", outcome: "crash", pass: false, problem: `the case itself failed: ${(e as Error).message}`, code: null, signal: null,
        capBytes: this.capBytes, seconds: 0, peakRssBytes: s.watched.peak(), error: "" };
    }
    const r = await send(s, c);
    const later = await this.settle(c, outputs);
    const seconds = (Date.now() - t0) / 1000;
    const base = { name: c.name, kind: "http", expect: "refused" as const, code: null, signal: null, capBytes: this.capBytes, seconds, peakRssBytes: s.watched.peak() };
    const after = this.broken(c.name, t0);
    if (after) return after;
    if ("failed" in r) return { ...base, outcome: r.timedOut ? "hang" : "crash", pass: false, problem: r.failed, error: "" };
    let error = r.text;
    let json: { error?: string; field?: string; id?: string } = {};
    try {
      json = JSON.parse(r.text);
      error = [json.field, json.error].filter(Boolean).join(": ");
    } catch {
      /* not JSON */
    }
    const res = { ...base, code: r.status, error: `${r.status} ${error}`.split("\n")[0]! };
    if (later && r.status < 500) return { ...res, outcome: r.status < 400 ? "wrong-ok" : "refused", pass: false, problem: later };
    if (r.status >= 500) return { ...res, outcome: "crash", pass: false, problem: `answered ${r.status}` };
    if (r.status < 400) {
      // accepted: cancel it so a wrongly accepted job cannot occupy the server
      if (json.id) await send(s, { name: "cancel", method: "DELETE", path: `/v1/jobs/${json.id}` });
      return { ...res, outcome: "wrong-ok", pass: false, problem: `answered ${r.status} where a refusal was due` };
    }
    if (c.status && !c.status.includes(r.status)) return { ...res, outcome: "refused", pass: false, problem: `answered ${r.status}, expected ${c.status.join(" or ")}` };
    const missing = (c.error ?? []).filter((re) => !re.test(error));
    if (missing.length) return { ...res, outcome: "refused", pass: false, problem: `the answer does not name the culprit (${missing.join(", ")})` };
    if (/^\s*must be|^: /.test(json.error ?? "")) return { ...res, outcome: "refused", pass: false, problem: "the error names an empty field" };
    return { ...res, outcome: "refused", pass: true };
  }

  /** The case's own check once any job it started had time to run (a tiny job takes about a second). */
  private async settle(c: HttpCase, outputs: string): Promise<string | undefined> {
    if (!c.verify) return undefined;
    const first = c.verify(outputs, this.scratch);
    if (first) return first;
    await new Promise((r) => setTimeout(r, 3000));
    return c.verify(outputs, this.scratch);
  }

  /** The control: a normal small job, done, with its video, after all the hostile bodies. */
  async control(name: string): Promise<CaseResult> {
    const t0 = Date.now();
    const dead = this.broken(name, t0);
    if (dead) return { ...dead, expect: "ok" };
    const s = this.server!;
    const result = (outcome: CaseResult["outcome"], problem: string | undefined, error = ""): CaseResult => ({
      name, kind: "http", expect: "ok", outcome, pass: outcome === "ok" && !problem, problem, code: null, signal: null, capBytes: this.capBytes,
      seconds: (Date.now() - t0) / 1000, peakRssBytes: s.watched.peak(), error,
    });
    const health = await send(s, { name, method: "GET", path: "/v1/health" });
    if ("failed" in health || health.status !== 200) return result("crash", `GET /v1/health: ${"failed" in health ? health.failed : health.status}`);
    const sub = await send(s, { name, body: { prompt: "a cat", seed: 1, ...tiny } });
    if ("failed" in sub || sub.status !== 202) return result("wrong-ok", `POST /v1/jobs: ${"failed" in sub ? sub.failed : `${sub.status} ${sub.text}`}`);
    const id = (JSON.parse(sub.text) as { id: string }).id;
    const end = Date.now() + 120_000;
    for (;;) {
      const dead2 = this.broken(name, t0);
      if (dead2) return { ...dead2, expect: "ok" };
      const g = await send(s, { name, method: "GET", path: `/v1/jobs/${id}` });
      if ("failed" in g) return result("crash", g.failed);
      const j = JSON.parse(g.text) as { state: string; error?: string; outputs?: string[] };
      if (j.state === "done") {
        const missing = (j.outputs ?? []).filter((f) => !existsSync(f));
        return result("ok", !j.outputs?.length || missing.length ? `outputs missing: ${missing.join(", ")}` : undefined);
      }
      if (j.state === "failed" || j.state === "cancelled") return result("wrong-ok", `the job ended ${j.state}: ${j.error}`, j.error);
      if (Date.now() > end) return result("hang", "the job did not finish in 120 s");
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A model file truncated under the running server (its weights memory-mapped): the next job
   * is refused (4xx, or 503 while the model is unusable) or fails naming the file, and the
   * server lives on (no SIGBUS). */
  async modelChanged(name: string, file: string): Promise<CaseResult> {
    const t0 = Date.now();
    const dead = this.broken(name, t0);
    if (dead) return dead;
    const s = this.server!;
    const result = (outcome: CaseResult["outcome"], pass: boolean, problem: string | undefined, error = "", code: number | null = null): CaseResult => ({
      name, kind: "http", expect: "refused", outcome, pass, problem, code, signal: null, capBytes: this.capBytes,
      seconds: (Date.now() - t0) / 1000, peakRssBytes: s.watched.peak(), error,
    });
    const path = join(this.model, file);
    truncateSync(path, Math.floor(statSync(path).size / 2));
    const names = (text: string) => text.includes(file);
    const sub = await send(s, { name, body: { prompt: "a cat", seed: 1, ...tiny } });
    const gone = this.broken(name, t0);
    if (gone) return gone;
    if ("failed" in sub) return result(sub.timedOut ? "hang" : "crash", false, sub.failed);
    // 503 is a deliberate refusal here (the server cannot serve until the model is restored); any other 5xx is a fault
    if (sub.status >= 500 && sub.status !== 503) return result("crash", false, `POST /v1/jobs answered ${sub.status}`, sub.text, sub.status);
    if (sub.status >= 400) return result("refused", names(sub.text), names(sub.text) ? undefined : `the refusal does not name ${file}`, sub.text, sub.status);
    const id = (JSON.parse(sub.text) as { id: string }).id;
    const end = Date.now() + 60_000;
    for (;;) {
      const gone2 = this.broken(name, t0);
      if (gone2) return gone2;
      const g = await send(s, { name, method: "GET", path: `/v1/jobs/${id}` });
      if ("failed" in g) return result("crash", false, g.failed);
      const j = JSON.parse(g.text) as { state: string; error?: string };
      if (j.state === "done") return result("wrong-ok", false, "the job ran to done on a truncated model file");
      if (j.state === "failed" || j.state === "cancelled") {
        const e = j.error ?? "";
        return result("refused", names(e), names(e) ? undefined : `the job's error does not name ${file}`, e);
      }
      if (Date.now() > end) return result("hang", false, "the job did not end in 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL to its group after 10 s). */
  async stop(): Promise<void> {
    const s = this.server;
    if (!s || !alive(s)) return;
    s.watched.child.kill("SIGTERM");
    const t = setTimeout(() => s.watched.kill(), 10_000);
    await s.watched.done;
    clearTimeout(t);
  }
}

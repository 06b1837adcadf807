// The offline reports of sweep and batch (scripts/lib/report.mjs → OUT/report.html): the page
// made from run records, then a real sweep and batch on the tiny model opened in headless
// Chromium with the network off (test/browser.ts): charts drawn with visible titles, every run
// labelled, its video and frames loaded from --out, its manifest link resolving, a failed job's
// reason shown, and no request leaving the machine.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { launchBrowser, type Page } from "./browser.js";
import { cliPath, root, scratch, wanlab } from "./helpers.js";
import { startServer, type RunningServer } from "./serve.js";

interface Run { label: string; params: [string, unknown][]; prompt?: string; state: string; error?: string; video?: string; manifest?: string; strip?: string;
  timings?: { generate_s: number; write_s: number; engine: { encode_s: number; denoise_s: number; decode_s: number } } }
interface Figure { id: string; data: { type: string; x: unknown[]; y: number[]; name?: string }[]; layout: { title: { text: string }; xaxis: { title: { text: string } }; yaxis: { title: { text: string } } } }
interface ReportLib {
  reportHtml(r: { title: string; about?: string[]; links?: { href: string; text: string }[]; axes: string[]; runs: Run[]; plotly: string }): string;
  reportFigures(r: { axes: string[]; runs: Run[] }): Figure[];
}
const lib = async () => (await import(pathToFileURL(join(root, "scripts", "lib", "report.mjs")).href)) as ReportLib;

const dir = scratch("wanlab-scripts-report-");
const model = join(dir, "tiny");
let server: RunningServer;

const timings = (generate_s: number) => ({ generate_s, write_s: 0.5, engine: { encode_s: 0.1, denoise_s: generate_s - 0.2, decode_s: 0.1 } });
const records: Run[] = [
  { label: "cfg 3, seed 1", params: [["cfg", 3], ["seed", "1"]], state: "done", video: "runs/00 cfg3/video.mp4", manifest: "runs/00 cfg3/manifest.json", strip: "data:image/jpeg;base64,AAAA", timings: timings(1.5) },
  { label: "cfg 5, seed 1", params: [["cfg", 5], ["seed", "1"]], state: "done", video: "runs/01/video.mp4", manifest: "runs/01/manifest.json", timings: timings(2.5) },
  { label: "cfg <7>, seed 1", params: [["cfg", 7], ["seed", "1"]], prompt: "a \"red\" fox & a hen", state: "failed", error: "inputVideo x.mp4: ffmpeg could not read it" },
];

test("reportHtml: a card per run with its label, parameters, video, frames, manifest link and timings; a failure with its reason; plotly inlined once", async () => {
  const { reportHtml } = await lib();
  const plotly = "window.Plotly = { newPlot() {} }; /* plotly-source-marker */ const s = '</script>';";
  const html = reportHtml({ title: "sweep: a <cat>", about: ["3 runs"], links: [{ href: "contact-sheet.png", text: "contact sheet" }], axes: ["cfg"], runs: records, plotly });
  assert.equal(html.split("plotly-source-marker").length, 2, "plotly.js once");
  assert.ok(html.includes("const s = '<\\/script>';"), "a </script> inside plotly.js does not end its tag");
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, "nothing loads from the network");
  assert.match(html, /<title>sweep: a &lt;cat&gt;<\/title>/);
  const cards = html.split("<figure").slice(1);
  assert.equal(cards.length, 3);
  assert.match(cards[0]!, /class="run done"[^]*<span class="label">cfg 3, seed 1<\/span>[^]*<b>cfg<\/b> 3[^]*<b>seed<\/b> 1/);
  assert.match(cards[0]!, /<img class="strip" alt="frames of cfg 3, seed 1" src="data:image\/jpeg;base64,AAAA">/);
  assert.match(cards[0]!, /<video [^>]*src="runs\/00%20cfg3\/video\.mp4"><\/video>/);
  assert.match(cards[0]!, /<a class="manifest" href="runs\/00%20cfg3\/manifest\.json">manifest<\/a>/);
  assert.match(cards[0]!, /generate 1\.50 s \(encode 0\.10, denoise 1\.30, decode 0\.10\), write 0\.50 s/);
  assert.match(cards[2]!, /class="run failed"[^]*cfg &lt;7&gt;, seed 1[^]*<p class="prompt">a &quot;red&quot; fox &amp; a hen<\/p>/);
  assert.match(cards[2]!, /<p class="error">failed: inputVideo x\.mp4: ffmpeg could not read it<\/p>/);
  assert.doesNotMatch(cards[2]!, /<video|class="manifest"/);
  assert.match(html, /<p class="about summary">3 runs: 2 done, 1 failed<\/p>/);
});

test("reportFigures: generate time against each swept parameter (done runs only) and each run's time by stage, every chart titled on both axes", async () => {
  const { reportFigures } = await lib();
  const figs = reportFigures({ axes: ["cfg", "seed"], runs: records });
  assert.deepEqual(figs.map((f) => [f.id, f.layout.title.text, f.layout.xaxis.title.text, f.layout.yaxis.title.text]), [
    ["time-vs-cfg", "generate time vs cfg", "cfg", "generate time (s)"],
    ["time-vs-seed", "generate time vs seed", "seed", "generate time (s)"],
    ["time-by-stage", "time per run by stage", "run", "seconds"],
  ]);
  assert.deepEqual([figs[0]!.data[0]!.x, figs[0]!.data[0]!.y], [[3, 5], [1.5, 2.5]]);
  assert.deepEqual(figs[2]!.data.map((t) => [t.name, t.x, t.y]), [
    ["encode", ["cfg 3, seed 1", "cfg 5, seed 1"], [0.1, 0.1]], ["denoise", ["cfg 3, seed 1", "cfg 5, seed 1"], [1.3, 2.3]],
    ["decode", ["cfg 3, seed 1", "cfg 5, seed 1"], [0.1, 0.1]], ["write", ["cfg 3, seed 1", "cfg 5, seed 1"], [0.5, 0.5]],
  ]);
});

before(async () => {
  assert.equal(wanlab(["make-tiny", model]).status, 0);
  server = await startServer(["--model", model, "--outputs", join(dir, "served")], join(dir, "run"));
});
after(async () => {
  server.child.kill("SIGTERM");
  await server.exited;
});

/** `wanlab NAME ARGS` in the scratch folder, against the server started above. */
function cli(args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", cwd: dir, env: { ...process.env, CI: "1", WANLAB_RUNTIME_DIR: join(dir, "run") } });
}

/** The mean gray level of a w×h crop of a PNG (255 white). */
function meanGray(png: string, r: { x: number; y: number; width: number; height: number }): number {
  const out = spawnSync("ffmpeg", ["-v", "error", "-i", png, "-vf", `crop=${Math.round(r.width)}:${Math.round(r.height)}:${Math.round(r.x)}:${Math.round(r.y)}`, "-f", "rawvideo", "-pix_fmt", "gray", "-"]);
  assert.equal(out.status, 0, String(out.stderr));
  return out.stdout.reduce((a, v) => a + v, 0) / out.stdout.length;
}

/** What every report must show in the page: plotly's charts with their titles clear of the
 * modebar, a card per run with its label, its frames and (done runs) a video that loads. */
async function checkReport(page: Page, expect: { charts: string[]; labels: string[]; videos: number }) {
  await page.waitFor(`document.querySelectorAll(".chart .main-svg").length >= ${expect.charts.length}`, 15_000);
  assert.equal(await page.evaluate("typeof Plotly"), "object", "plotly.js is in the page");
  const charts = await page.evaluate<{ title: string; x: string; y: string; overlap: boolean }[]>(`[...document.querySelectorAll(".chart")].map((c) => {
    const t = c.querySelector(".gtitle").getBoundingClientRect(), m = c.querySelector(".modebar").getBoundingClientRect();
    return { title: c.querySelector(".gtitle").textContent, x: c.querySelector(".xtitle")?.textContent ?? "", y: c.querySelector(".ytitle").textContent,
      overlap: t.left < m.right && m.left < t.right && t.top < m.bottom && m.top < t.bottom };
  })`);
  assert.deepEqual(charts.map((c) => c.title), expect.charts);
  assert.ok(charts.every((c) => c.y && !c.overlap), JSON.stringify(charts));
  assert.deepEqual(await page.evaluate(`[...document.querySelectorAll(".run .label")].map((e) => e.textContent)`), expect.labels);
  await page.waitFor(`[...document.querySelectorAll("video")].every((v) => v.readyState >= 1 || v.error)`, 10_000);
  const videos = await page.evaluate<{ src: string; ready: number; error: number | null; width: number; small: boolean }[]>(
    `[...document.querySelectorAll("video")].map((v) => ({ src: v.currentSrc, ready: v.readyState, error: v.error && v.error.code, width: v.videoWidth, small: v.classList.contains("small") }))`);
  assert.equal(videos.length, expect.videos);
  assert.ok(videos.every((v) => v.src.startsWith("file:") && v.ready >= 1 && v.error === null && v.width === 32 && v.small), `every video loads from --out (32 px wide: scaled up pixel for pixel): ${JSON.stringify(videos)}`);
  assert.ok(await page.evaluate(`[...document.querySelectorAll("img.strip")].every((i) => i.complete && i.naturalWidth > 0)`), "every frame strip shows");
  assert.equal(await page.evaluate(`document.querySelectorAll("img.strip").length`), expect.videos);
  assert.deepEqual([page.failedRequests, page.errors], [[], []], "no request left the machine; no script error");
}

/** The manifest each card links to: a file under --out whose parameters are the card's. */
async function manifests(page: Page): Promise<{ label: string; manifest: { params: Record<string, unknown> } }[]> {
  const links = await page.evaluate<{ label: string; href: string }[]>(
    `[...document.querySelectorAll(".run")].filter((r) => r.querySelector("a.manifest")).map((r) => ({ label: r.querySelector(".label").textContent, href: r.querySelector("a.manifest").href }))`);
  return links.map((l) => ({ label: l.label, manifest: JSON.parse(readFileSync(fileURLToPath(l.href), "utf8")) }));
}

test("a sweep's report.html in headless Chromium with the network off: charts with titles, labelled runs, videos from --out, manifests that resolve", async (t) => {
  const browser = await launchBrowser(t, { offline: true });
  if (!browser) return;
  const r = cli(["sweep", "--prompt", "a cat", "--cfg", "3,5", "--seeds", "1,2", "--steps", "1", "--height", "32", "--width", "32", "--num-frames", "5", "--out", "sw"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`report ${join(dir, "sw", "report.html")}\\n$`));
  const report = join(dir, "sw", "report.html");
  const html = readFileSync(report, "utf8");
  const plotly = readFileSync(join(root, "node_modules", "plotly.js-cartesian-dist-min", "plotly-cartesian.min.js"), "utf8");
  assert.equal(html.split(plotly.slice(0, 200)).length, 2, "plotly.js inlined once");
  assert.equal(readFileSync(join(dir, "sw", "sweep.html"), "utf8"), html, "sweep.html is the same report");
  const page = await browser.open(pathToFileURL(report).href);
  const labels = ["cfg 3, seed 1", "cfg 3, seed 2", "cfg 5, seed 1", "cfg 5, seed 2"];
  await checkReport(page, { charts: ["generate time vs cfg", "generate time vs seed", "time per run by stage"], labels, videos: 4 });
  assert.deepEqual((await manifests(page)).map((m) => [m.label, m.manifest.params.cfgScale, m.manifest.params.seed]),
    [["cfg 3, seed 1", 3, "1"], ["cfg 3, seed 2", 3, "2"], ["cfg 5, seed 1", 5, "1"], ["cfg 5, seed 2", 5, "2"]]);
  assert.deepEqual(await page.evaluate(`[...document.querySelectorAll(".run .params")].map((e) => e.textContent)`),
    labels.map((l) => `cfg ${l[4]} shift 5 steps 1 seed ${l.at(-1)}`));
  // the screenshot shows the titles: dark text where the page says each title is
  const shot = join(dir, "sweep.png");
  await page.screenshot(shot);
  const rects = await page.evaluate<{ x: number; y: number; width: number; height: number }[]>(
    `[...document.querySelectorAll(".chart .gtitle, .run .label")].map((e) => e.getBoundingClientRect().toJSON())`);
  assert.equal(rects.length, 7);
  for (const rect of rects.filter((x) => x.y + x.height < 900)) assert.ok(meanGray(shot, rect) < 235, `text drawn at ${JSON.stringify(rect)}`);
  if (process.env.WANLAB_REPORT_SCREENSHOT) writeFileSync(process.env.WANLAB_REPORT_SCREENSHOT, readFileSync(shot));
});

test("a batch's report.html with a failed line: its reason in its card, the others' videos and manifests; exit 1", async (t) => {
  const browser = await launchBrowser(t, { offline: true });
  if (!browser) return;
  writeFileSync(join(dir, "not-a-video.mp4"), "not a video\n");
  writeFileSync(join(dir, "jobs.jsonl"), `{"prompt": "a cat", "seed": 1}\n{"prompt": "a broken input", "inputVideo": ${JSON.stringify(join(dir, "not-a-video.mp4"))}, "denoisingStrength": 0.5}\n{"prompt": "a dog", "seed": 2, "numInferenceSteps": 2}\n`);
  const r = cli(["batch", "--prompts", "jobs.jsonl", "--steps", "1", "--height", "32", "--width", "32", "--num-frames", "5", "--out", "b"]);
  assert.equal(r.status, 1, r.stderr);
  const page = await browser.open(pathToFileURL(join(dir, "b", "report.html")).href);
  await checkReport(page, { charts: ["generate time vs seed", "generate time vs steps", "time per run by stage"], labels: ["line 1", "line 2", "line 3"], videos: 2 });
  const failed = await page.evaluate<{ label: string; error: string }[]>(`[...document.querySelectorAll(".run.failed")].map((r) => ({ label: r.querySelector(".label").textContent, error: r.querySelector(".error").textContent }))`);
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.label, "line 2");
  assert.match(failed[0]!.error, /^failed: inputVideo \S*not-a-video\.mp4: ffmpeg could not read it/);
  assert.deepEqual(await page.evaluate(`[...document.querySelectorAll(".run .prompt")].map((e) => e.textContent)`), ["a cat", "a broken input", "a dog"]);
  assert.deepEqual((await manifests(page)).map((m) => [m.label, m.manifest.params.prompt]), [["line 1", "a cat"], ["line 3", "a dog"]]);
});

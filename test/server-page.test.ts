// The status page of `wanlab serve` (src/server/page.ts): the link printed at start signs a
// browser in with an HttpOnly, SameSite=Strict cookie and leaves the token out of the address
// bar; the cookie reads and never writes; without it the data answer 401. In headless Chromium
// with the network off: a job submitted through the API shows its progress and latent preview
// to done, and its video plays in the page.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { launchBrowser } from "./browser.js";
import { root, scratch, wanlab } from "./helpers.js";
import { startServer, waitFor, waitState, type RunningServer } from "./serve.js";

const dir = scratch("wanlab-server-page-");
const model = join(dir, "tiny");
let s: RunningServer;
let link: string;

before(async () => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
  s = await startServer(["--model", model, "--outputs", join(dir, "outputs")], join(dir, "run"));
  const m = await waitFor("the status page link on the console", async () => /^wanlab serve: status page: (\S+)/m.exec(s.stderr()) ?? undefined, 10_000);
  link = m[1]!;
});
after(async () => {
  if (s && s.child.exitCode === null) {
    s.child.kill("SIGTERM");
    await s.exited;
  }
});

async function submit(body: unknown): Promise<string> {
  const res = await s.api("/v1/jobs", { method: "POST", json: body });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}

describe("signing in", () => {
  test("the link printed at start is the server's URL with its token", () => {
    assert.equal(link, `${s.url}/?token=${s.token}`);
  });

  test("the link sets an HttpOnly SameSite=Strict cookie and redirects to / without the token", async () => {
    const res = await fetch(link, { redirect: "manual" });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), "/");
    const cookie = res.headers.get("set-cookie") ?? "";
    assert.match(cookie, /^wanlab-\d+=[\w-]+; Path=\/; HttpOnly; SameSite=Strict$/);
    assert.ok(!cookie.includes(s.token), "the cookie holds the token itself");
    const jar = cookie.split(";")[0]!;
    const page = await fetch(`${s.url}/`, { headers: { cookie: jar } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'; script-src 'nonce-/);
    assert.match(await page.text(), /id="running"/);
    assert.equal((await fetch(`${s.url}/v1/status`, { headers: { cookie: jar } })).status, 200);
    // the cookie reads; submitting and cancelling still need the bearer token
    const post = await fetch(`${s.url}/v1/jobs`, { method: "POST", headers: { cookie: jar, "content-type": "application/json" }, body: JSON.stringify({ prompt: "x" }) });
    assert.equal(post.status, 401);
    assert.equal((await fetch(`${s.url}/v1/jobs/x`, { method: "DELETE", headers: { cookie: jar } })).status, 401);
    assert.equal((await fetch(`${s.url}/v1/shutdown`, { method: "POST", headers: { cookie: jar } })).status, 401);
  });

  test("without the cookie or token the data answer 401 and a browser is told to open the link", async () => {
    for (const path of ["/v1/status", "/v1/jobs", "/v1/events", "/v1/jobs/x/preview", "/v1/jobs/x/files/video.mp4"]) {
      assert.equal((await fetch(s.url + path)).status, 401, path);
      assert.equal((await fetch(s.url + path, { headers: { cookie: "wanlab-1=forged" } })).status, 401, `${path} with a forged cookie`);
    }
    const hint = await fetch(`${s.url}/`, { headers: { accept: "text/html" } });
    assert.equal(hint.status, 200);
    assert.match(await hint.text(), /Open the link the server printed when it\s+started/);
    const wrong = await fetch(`${s.url}/?token=not-the-token`, { redirect: "manual" });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("set-cookie"), null);
    assert.match(await wrong.text(), /does not match this server/);
    // programs keep the bearer token and the plain-text list of routes
    assert.equal((await s.api("/v1/status")).status, 200);
    assert.match(await (await fetch(`${s.url}/`)).text(), /^wanlab serve /);
  });
});

describe("the page in headless Chromium, offline", () => {
  test("shows a job's progress and latent preview to done, and plays its video", async (t) => {
    const b = await launchBrowser(t, { offline: true });
    if (!b) return;
    const page = await b.open(link);
    assert.deepEqual(await page.evaluate("[location.pathname, location.search, document.cookie]"), ["/", "", ""]);
    await page.waitFor("document.getElementById('conn').textContent === 'live'", 10_000);
    assert.equal(await page.evaluate("events.readyState"), 1, "the page follows /v1/events");

    const id = await submit({ prompt: "a lighthouse at dusk", seed: 3, height: 48, width: 48, numFrames: 9, numInferenceSteps: 40 });
    const steps = new Set<number>();
    let preview = 0;
    await waitFor("the job in the page's recent jobs", async () => {
      const seen = await page.evaluate<{ text: string | null; preview: number; done: boolean }>(`({
        text: document.getElementById('progress-text') && document.getElementById('progress-text').textContent,
        preview: (document.querySelector('#preview:not([hidden]) img') || {}).naturalWidth || 0,
        done: !!document.querySelector('#recent figure[data-id="${id}"] video'),
      })`);
      const m = /denoise: step (\d+)\/40 · ETA/.exec(seen.text ?? "");
      if (m) steps.add(Number(m[1]));
      preview = Math.max(preview, seen.preview);
      return seen.done ? true : undefined;
    }, 30_000);
    assert.ok([...steps].filter((n) => n > 0 && n < 40).length >= 2, `the page showed steps ${[...steps].join(", ")}: it should show the progress advance`);
    assert.ok(preview > 0, "the page never showed a latent preview");
    assert.equal((await waitState(s, id, ["done"])).state, "done");
    assert.match(await page.evaluate<string>(`document.querySelector('#recent figure[data-id="${id}"] figcaption').textContent`), /^done in .*a lighthouse at dusk48×48, 9 frames, 40 steps, cfg 5, shift 5, seed 3/);

    const played = await page.evaluate<{ time: number; ready: number; duration: number; width: number; error: number | null }>(`(async () => {
      const v = document.querySelector('#recent figure[data-id="${id}"] video');
      if (v.readyState < 1) await new Promise((r, j) => { v.addEventListener('loadedmetadata', r, { once: true }); v.addEventListener('error', () => j(new Error('video error ' + v.error.code)), { once: true }); });
      await v.play();
      await new Promise((r) => setTimeout(r, 700));
      return { time: v.currentTime, ready: v.readyState, duration: v.duration, width: v.videoWidth, error: v.error && v.error.code };
    })()`);
    assert.equal(played.error, null);
    assert.equal(played.width, 48);
    assert.ok(played.duration > 0.5 && played.duration < 0.7, `duration ${played.duration} (9 frames at 15 fps)`);
    assert.ok(played.time > 0 && played.ready >= 2, `the video did not play: ${JSON.stringify(played)}`);
    // the player may seek: byte ranges of the video
    const whole = await s.api(`/v1/jobs/${id}/files/video.mp4`);
    const size = (await whole.arrayBuffer()).byteLength;
    assert.equal(whole.headers.get("accept-ranges"), "bytes");
    const part = await s.api(`/v1/jobs/${id}/files/video.mp4`, { headers: { range: "bytes=100-199" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 100-199/${size}`);
    assert.equal((await part.arrayBuffer()).byteLength, 100);
    assert.equal((await s.api(`/v1/jobs/${id}/files/video.mp4`, { headers: { range: `bytes=${size}-` } })).status, 416);

    // A running job with its preview, two waiting: what docs/server.md shows.
    const running = await submit({ prompt: "a red fox running through snow", seed: 11, height: 64, width: 96, numFrames: 9, numInferenceSteps: 400 });
    const queued = [await submit({ prompt: "waves on a pebble beach", seed: 1, height: 48, width: 48, numFrames: 5, numInferenceSteps: 20 }),
      await submit({ prompt: "a city street at night, rain", seed: 2, cfgScale: 6, height: 48, width: 80, numFrames: 5, numInferenceSteps: 30 })];
    await page.waitFor(`document.querySelector('#preview:not([hidden]) img') && document.querySelector('#preview img').naturalWidth > 0 && document.querySelectorAll('#queue tbody tr[data-id]').length === 2`, 15_000);
    assert.deepEqual(await page.evaluate("[...document.querySelectorAll('#queue tbody tr')].map((r) => r.children[1].textContent)"), ["waves on a pebble beach", "a city street at night, rain"]);
    const shot = process.env.WANLAB_UPDATE_SCREENSHOTS ? join(root, "docs", "images", "status-page.png") : join(dir, "status-page.png");
    mkdirSync(join(shot, ".."), { recursive: true });
    await page.screenshot(shot);
    assert.ok(statSync(shot).size > 10_000, "the screenshot is nearly empty");
    assert.deepEqual(readFileSync(shot).subarray(1, 4).toString(), "PNG");
    for (const j of [...queued, running]) await s.api(`/v1/jobs/${j}`, { method: "DELETE" });
    await page.waitFor(`/^cancelled/.test((document.querySelector('#recent figure[data-id="${running}"] figcaption') || {}).textContent) && !document.querySelector('#queue tbody tr[data-id]')`, 10_000);
    assert.deepEqual(page.errors, []);
    assert.deepEqual(page.failedRequests, []);
    await b.close();
  });
});

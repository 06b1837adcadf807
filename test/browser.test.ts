// The headless-Chromium harness the page tests stand on: it loads local files and local servers,
// runs expressions, takes screenshots and, offline, refuses every request that would leave the machine.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { launchBrowser } from "./browser.js";
import { scratch } from "./helpers.js";

const page = `<!doctype html><title>t</title><h1 id="h">hello</h1>
<img id="remote" src="https://cdn.example.com/x.png">
<script>fetch("/data").then(r => r.text()).then(x => document.body.dataset.local = x);</script>`;

test("offline Chromium loads local pages and servers but no remote request", async (t) => {
  const b = await launchBrowser(t, { offline: true, width: 400, height: 300 });
  if (!b) return;
  const dir = scratch();
  const server = createServer((req, res) => {
    res.setHeader("content-type", req.url === "/" ? "text/html" : "text/plain");
    res.end(req.url === "/" ? page : "from localhost");
  }).listen(0, "127.0.0.1");
  t.after(() => { server.closeAllConnections(); server.close(); });
  await new Promise((r) => server.once("listening", r));
  const port = (server.address() as { port: number }).port;

  const p = await b.open(`http://127.0.0.1:${port}/`);
  assert.equal(await p.evaluate("document.getElementById('h').textContent"), "hello");
  await p.waitFor("document.body.dataset.local === 'from localhost'", 5000);
  await p.waitFor("document.getElementById('remote').complete", 5000);
  assert.equal(await p.evaluate("document.getElementById('remote').naturalWidth"), 0);
  assert.ok(p.failedRequests.some((r) => r.startsWith("https://cdn.example.com/x.png")), p.failedRequests.join("\n"));

  const file = join(dir, "page.html");
  writeFileSync(file, "<!doctype html><p id=p>from a file</p>");
  await p.goto(`file://${file}`);
  assert.equal(await p.evaluate("document.getElementById('p').textContent"), "from a file");
  const png = join(dir, "shot.png");
  await p.screenshot(png);
  assert.deepEqual([...readFileSync(png).subarray(1, 4)], [0x50, 0x4e, 0x47]);
  await assert.rejects(p.waitFor("window.never", 300), /never satisfied window\.never/);
});

// Headless Chromium for the tests of pages people look at (the sweep report, the server's status
// page): the DevTools protocol over --remote-debugging-pipe (JSON messages ending in NUL on file
// descriptors 3 and 4), so no npm package and no debugging port. Outside CI a machine without
// Chromium skips these tests; in CI (CI=true) a missing Chromium fails them.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import type { TestContext } from "node:test";

/** Where Chromium is: $CHROMIUM_PATH, Debian's binary behind its wrapper script, or the wrapper. */
export function findChromium(): string | null {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  for (const c of candidates) if (c && existsSync(c)) return c;
  return null;
}

export interface BrowserOptions {
  /** Refuse every request to a host other than localhost/127.0.0.1 (file: and data: still load). */
  offline?: boolean;
  /** Viewport in CSS pixels; default 1280×900. */
  width?: number;
  height?: number;
}

/** One tab. Expressions are evaluated in the page; promises are awaited; values come back as JSON. */
export interface Page {
  evaluate<T = unknown>(expression: string): Promise<T>;
  /** Polls `expression` every 100 ms until it is truthy; throws naming it after `timeoutMs`. */
  waitFor(expression: string, timeoutMs?: number): Promise<void>;
  /** A PNG of the viewport (or the whole page with `fullPage`). */
  screenshot(file: string, opts?: { fullPage?: boolean }): Promise<void>;
  /** Loads another URL in this tab and waits for its load event. */
  goto(url: string): Promise<void>;
  /** Uncaught exceptions and console.error lines seen so far. */
  readonly errors: string[];
  /** Requests that failed, as "URL: reason" (with `offline`, every request that left the machine). */
  readonly failedRequests: string[];
}

export interface Browser {
  open(url: string): Promise<Page>;
  close(): Promise<void>;
}

interface Pending {
  resolve(v: any): void;
  reject(e: Error): void;
  method: string;
}

type Listener = (params: any, sessionId?: string) => void;

class Connection {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private listeners = new Map<string, Listener[]>();
  private buffer = "";
  private closedError: Error | null = null;

  constructor(private readonly out: Writable, input: Readable) {
    input.setEncoding("utf8");
    input.on("data", (chunk: string) => {
      this.buffer += chunk;
      let end: number;
      while ((end = this.buffer.indexOf("\0")) >= 0) {
        const text = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 1);
        this.dispatch(JSON.parse(text));
      }
    });
    input.on("close", () => this.fail(new Error("Chromium closed its DevTools pipe")));
  }

  private dispatch(msg: any): void {
    if (typeof msg.id === "number") {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
      else p.resolve(msg.result);
      return;
    }
    for (const l of this.listeners.get(msg.method) ?? []) l(msg.params, msg.sessionId);
  }

  fail(e: Error): void {
    this.closedError = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  send(method: string, params: object = {}, sessionId?: string): Promise<any> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const msg: any = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.out.write(JSON.stringify(msg) + "\0");
    });
  }

  on(method: string, l: Listener): void {
    const ls = this.listeners.get(method) ?? [];
    ls.push(l);
    this.listeners.set(method, ls);
  }
}

const LOCAL = /^(file:|data:|blob:|about:|https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\/)/;

/** Starts headless Chromium, or skips the test (outside CI) when there is none. */
export async function launchBrowser(t: TestContext, opts: BrowserOptions = {}): Promise<Browser | null> {
  const exe = findChromium();
  if (!exe) {
    if (process.env.CI) throw new Error("Chromium is required for the page tests in CI: apt-get install chromium");
    t.skip("no Chromium on this machine (apt-get install chromium, or set CHROMIUM_PATH)");
    return null;
  }
  const profile = mkdtempSync(join(tmpdir(), "wanlab-chromium-"));
  const args = [
    "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
    `--user-data-dir=${profile}`, "about:blank",
  ];
  // Every host but this machine's resolves to nothing: a page that needs the network shows it.
  if (opts.offline) args.push("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1");
  const child: ChildProcess = spawn(exe, args, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => { stderr = (stderr + d).slice(-4000); });
  const conn = new Connection(child.stdio[3] as Writable, child.stdio[4] as Readable);
  child.on("exit", (code) => conn.fail(new Error(`Chromium exited (${code}): ${stderr.trim().slice(-1000)}`)));
  await conn.send("Browser.getVersion");

  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    const exited = new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
    void conn.send("Browser.close").catch(() => {});
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  };
  t.after(close);

  const open = async (url: string): Promise<Page> => {
    const { targetId } = await conn.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await conn.send("Target.attachToTarget", { targetId, flatten: true });
    const send = (m: string, p: object = {}) => conn.send(m, p, sessionId);
    const errors: string[] = [];
    const failedRequests: string[] = [];
    const urls = new Map<string, string>();
    let loaded: (() => void) | null = null;
    conn.on("Page.loadEventFired", (_p, s) => { if (s === sessionId && loaded) loaded(); });
    conn.on("Runtime.exceptionThrown", (p, s) => {
      if (s === sessionId) errors.push(p.exceptionDetails?.exception?.description ?? p.exceptionDetails?.text ?? "exception");
    });
    conn.on("Runtime.consoleAPICalled", (p, s) => {
      if (s === sessionId && p.type === "error") errors.push(p.args.map((a: any) => a.value ?? a.description).join(" "));
    });
    conn.on("Network.requestWillBeSent", (p, s) => { if (s === sessionId) urls.set(p.requestId, p.request.url); });
    conn.on("Network.loadingFailed", (p, s) => {
      if (s === sessionId && !p.canceled) failedRequests.push(`${urls.get(p.requestId) ?? p.requestId}: ${p.errorText}`);
    });
    if (opts.offline) {
      conn.on("Fetch.requestPaused", (p, s) => {
        if (s !== sessionId) return;
        if (LOCAL.test(p.request.url)) void send("Fetch.continueRequest", { requestId: p.requestId }).catch(() => {});
        else void send("Fetch.failRequest", { requestId: p.requestId, errorReason: "InternetDisconnected" }).catch(() => {});
      });
      await send("Fetch.enable", { patterns: [{ urlPattern: "*" }] });
    }
    await send("Page.enable");
    await send("Runtime.enable");
    await send("Network.enable");
    await send("Emulation.setDeviceMetricsOverride", {
      width: opts.width ?? 1280, height: opts.height ?? 900, deviceScaleFactor: 1, mobile: false,
    });

    const goto = async (target: string): Promise<void> => {
      const done = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${target} did not finish loading in 20 s`)), 20_000);
        loaded = () => { clearTimeout(timer); loaded = null; resolve(); };
      });
      const r = await send("Page.navigate", { url: target });
      if (r.errorText) throw new Error(`${target}: ${r.errorText}`);
      await done;
    };

    const evaluate = async <T>(expression: string): Promise<T> => {
      const r = await send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
      if (r.exceptionDetails) {
        const d = r.exceptionDetails;
        throw new Error(`in the page, ${expression}: ${d.exception?.description ?? d.text}`);
      }
      return r.result.value as T;
    };

    const waitFor = async (expression: string, timeoutMs = 10_000): Promise<void> => {
      const until = Date.now() + timeoutMs;
      let last: unknown;
      for (;;) {
        try {
          last = await evaluate(expression);
          if (last) return;
        } catch (e) {
          last = (e as Error).message;
        }
        if (Date.now() > until) throw new Error(`the page never satisfied ${expression} in ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    const screenshot = async (file: string, o: { fullPage?: boolean } = {}): Promise<void> => {
      const params: any = { format: "png" };
      if (o.fullPage) {
        const m = await send("Page.getLayoutMetrics");
        const size = m.cssContentSize ?? m.contentSize;
        params.captureBeyondViewport = true;
        params.clip = { x: 0, y: 0, width: Math.ceil(size.width), height: Math.ceil(size.height), scale: 1 };
      }
      const r = await send("Page.captureScreenshot", params);
      writeFileSync(file, Buffer.from(r.data, "base64"));
    };

    await goto(url);
    return { evaluate, waitFor, screenshot, goto, errors, failedRequests };
  };

  return { open, close };
}

// Test helper: run `wanlab serve` as a user would (a child process) and talk to it.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cliPath } from "./helpers.js";
import type { LauncherSeams } from "./serve-launcher.js";

/** test/serve-launcher.ts: `wanlab serve` with test seams injected. */
export const launcherPath = fileURLToPath(new URL("./serve-launcher.js", import.meta.url));

export interface RunningServer {
  child: ChildProcess;
  url: string;
  token: string;
  runtimeDir: string;
  stdout: () => string;
  stderr: () => string;
  /** fetch with the bearer token (override with headers.authorization). */
  api(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** `wanlab serve ARGS` in a child process; with `seams` (injected engine faults, shorter waits)
 * through test/serve-launcher.ts instead of bin/wanlab.js. */
export async function startServer(args: string[], runtimeDir: string, env: Record<string, string> = {}, seams?: LauncherSeams): Promise<RunningServer> {
  const command = seams ? [launcherPath, JSON.stringify(seams)] : [cliPath];
  const child = spawn(process.execPath, [...command, "serve", ...args], {
    env: { ...process.env, WANLAB_RUNTIME_DIR: runtimeDir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no 'listening on' within 30 s; stderr: ${err}`)), 30_000);
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /^listening on (\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
  const info = JSON.parse(readFileSync(join(runtimeDir, "server.json"), "utf8")) as { token: string };
  return {
    child, url, token: info.token, runtimeDir, exited,
    stdout: () => out,
    stderr: () => err,
    api(path, init = {}) {
      const { json, headers, ...rest } = init;
      return fetch(url + path, {
        ...rest,
        headers: { authorization: `Bearer ${info.token}`, ...(json !== undefined ? { "content-type": "application/json" } : {}), ...(headers as Record<string, string>) },
        body: json !== undefined ? JSON.stringify(json) : rest.body,
      });
    },
  };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls GET /v1/jobs/ID until the job is in one of `states`. */
export function waitState(s: RunningServer, id: string, states: string[], timeoutMs = 60_000): Promise<Record<string, any>> {
  return waitFor(`job ${id} to be ${states.join("/")}`, async () => {
    const j = (await (await s.api(`/v1/jobs/${id}`)).json()) as Record<string, any>;
    return states.includes(j.state) ? j : undefined;
  }, timeoutMs);
}

export const tiny = { height: 16, width: 16, numFrames: 1, numInferenceSteps: 1 };
/** Long enough to catch it running (hundreds of steps at 32×32). */
export const long = { height: 32, width: 32, numFrames: 1, numInferenceSteps: 1000 };

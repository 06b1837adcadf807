// Running the hostile-input suite: the tiny models made once, each case on its own copy, in its
// own scratch folder, as a child process under the harness's limits.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cliPath } from "../helpers.js";
import { caps, generateArgs, timeouts, type Case } from "./cases.js";
import { firstErrorLine, judgeProcess, runLimited, type CaseResult } from "./harness.js";

export const enginePath = fileURLToPath(new URL("../../../native/build/wanlab-engine", import.meta.url));

export interface Models {
  official: string;
  sharded: string;
}

/** The pristine tiny models (official and sharded layouts), made once per run under `root`. */
export function makeModels(root: string): Models {
  const m = { official: join(root, "official"), sharded: join(root, "sharded") };
  for (const [layout, dir] of Object.entries(m)) {
    const r = spawnSync(process.execPath, [cliPath, "make-tiny", dir, "--layout", layout], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`make-tiny ${layout} failed: ${r.stderr}`);
  }
  return m;
}

/** `args` merged into `base`: a flag `args` gives replaces the same flag (and its value) in `base`. */
export function withArgs(base: string[], args: string[]): string[] {
  const flags = new Set(args.filter((a) => a.startsWith("--")));
  const out: string[] = [];
  for (let i = 0; i < base.length; i++) {
    if (flags.has(base[i]!)) {
      if (i + 1 < base.length && !base[i + 1]!.startsWith("--")) i++;
      continue;
    }
    out.push(base[i]!);
  }
  return [...out, ...args];
}

function command(c: Case, dir: string, scratch: string): [string, string[]] {
  const extra = c.args?.(dir, scratch) ?? [];
  switch (c.run) {
    case "inspect":
      return [process.execPath, [cliPath, "inspect", dir, ...extra]];
    case "generate":
      return [process.execPath, [cliPath, ...withArgs(generateArgs(dir, scratch), extra)]];
    case "engine-inspect":
      return [enginePath, ["inspect", dir, ...extra]];
    case "cli":
      return [process.execPath, [cliPath, ...extra]];
  }
}

/** Runs one case: a fresh copy of its base model, corrupted, then the command under its limits. */
export async function runCase(c: Case, models: Models, root: string): Promise<CaseResult> {
  const scratch = join(root, "cases", c.name.replace(/[^\w.-]+/g, "_"));
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const dir = join(scratch, "model");
  const capKey = c.run === "engine-inspect" ? "engine" : c.run;
  const capBytes = c.capBytes ?? caps[capKey];
  const base = { name: c.name, kind: c.run, expect: c.expect, capBytes };
  try {
    if (c.base !== "none") cpSync(models[c.base], dir, { recursive: true });
    c.mutate?.(dir, scratch);
    const [cmd, args] = command(c, dir, scratch);
    const r = await runLimited(cmd, args, { capBytes, timeoutMs: c.timeoutMs ?? timeouts[capKey] }, { cwd: scratch });
    const named = existsSync(join(scratch, "culprit.txt")) ? [new RegExp(readFileSync(join(scratch, "culprit.txt"), "utf8").replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))] : [];
    const j = judgeProcess(r, c.expect, [...(c.error ?? []), ...named], c.check ? () => c.check!(dir, scratch) : undefined);
    const later = c.after?.(dir, scratch);
    const problem = j.problem ?? later;
    const error = firstErrorLine(r.stderr);
    return { ...base, outcome: j.outcome, pass: j.outcome === c.expect && !problem, problem, code: r.code, signal: r.signal, peakRssBytes: r.peakRssBytes, seconds: r.seconds, error };
  } catch (e) {
    return { ...base, outcome: "crash", pass: false, problem: `the case itself failed: ${(e as Error).message}`, code: null, signal: null, peakRssBytes: 0, seconds: 0, error: "" };
  } finally {
    // the model copy is the bulk; the scratch stays for inspection until the run's folder goes
    rmSync(dir, { recursive: true, force: true });
  }
}

// The hostile-input harness: runs one case as a child process under a memory cap (the resident
// memory of the whole process tree, polled from /proc every 50 ms, the tree killed past the cap)
// and a time limit (the tree killed, outcome "hang"), and judges how it ended.
//
// A hostile case must be "refused": a non-zero exit, no signal, no stack trace, and an error
// that names the culprit (each case lists the patterns its error must match). A control case
// must be "ok": exit 0 and whatever its own check asks of the result. Anything else fails the
// case: "crash" (a signal such as SIGSEGV/SIGBUS/SIGABRT, a stack trace, a 5xx), "hang",
// "over-cap", "wrong-ok" (exit 0, or 2xx, where a refusal was due; or a control whose result is
// wrong).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

export type Outcome = "refused" | "ok" | "crash" | "hang" | "over-cap" | "wrong-ok";

export interface CaseResult {
  name: string;
  kind: string;
  /** What the case demands: a refusal or a normal run. */
  expect: "refused" | "ok";
  outcome: Outcome;
  /** outcome === expect and every check held. */
  pass: boolean;
  /** Why the case failed (undefined when it passed). */
  problem?: string;
  code: number | null;
  signal: string | null;
  peakRssBytes: number;
  capBytes: number;
  seconds: number;
  /** The first line of the error (stderr, or the HTTP answer's error). */
  error: string;
}

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/** Process ids of `pid`'s descendants (children first), from /proc/PID/task/TID/children, or,
 * where the kernel lacks that file, from every process's parent in /proc/N/stat. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const direct = (p: number): number[] => {
    try {
      const kids: number[] = [];
      for (const tid of readdirSync(`/proc/${p}/task`))
        for (const c of readFileSync(`/proc/${p}/task/${tid}/children`, "utf8").split(" ")) if (c.trim()) kids.push(Number(c));
      return kids;
    } catch {
      return [];
    }
  };
  const stack = direct(pid);
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...direct(p));
  }
  return out;
}

/** VmRSS and VmHWM of one process in bytes (0 once it is gone). */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? 0) * 1024;
    return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

export interface Limits {
  /** Resident bytes of the whole process tree beyond which it is killed ("over-cap"). */
  capBytes: number;
  /** Wall-clock limit ("hang"). */
  timeoutMs: number;
}

/** A child process tree under watch: its memory polled, killed past the cap or the time limit. */
export interface Watched {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Peak resident bytes so far: the largest polled sum over the tree, or a process's VmHWM. */
  peak(): number;
  /** Resolves when the tree's root exits (after its tree was killed if a limit fired). */
  done: Promise<RunResult>;
  /** Kills the whole tree (SIGKILL to its process group). */
  kill(): void;
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  peakRssBytes: number;
  seconds: number;
  /** Set when the harness killed it. */
  killedFor?: "cap" | "time";
}

/** Whether `prlimit --as` can be the hard backstop: tested once (node and libtorch reserve much
 * address space, so an address-space limit may break them; then it is left out). */
let asBackstop: number | undefined | null = null;
export function addressSpaceBackstop(): number | undefined {
  if (asBackstop !== null) return asBackstop;
  asBackstop = undefined;
  const env = process.env.WANLAB_HOSTILE_AS;
  if (env === "0" || env === "off") return asBackstop;
  const bytes = env ? Number(env) : 16 * GiB;
  const probe = spawnSync("prlimit", [`--as=${bytes}`, process.execPath, "-e", "process.exit(0)"], { stdio: "ignore", timeout: 20_000 });
  if (probe.status === 0) asBackstop = bytes;
  return asBackstop;
}

/** Spawns `cmd args` in its own process group under `limits` (and, where it works, under
 * `prlimit --as` as a hard backstop). */
export function watch(cmd: string, args: string[], limits: Limits, opts: { cwd?: string; env?: Record<string, string>; addressSpace?: number } = {}): Watched {
  const as = opts.addressSpace;
  const [file, argv] = as ? ["prlimit", [`--as=${as}`, cmd, ...args]] : [cmd, args];
  const start = process.hrtime.bigint();
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so the whole tree can be killed at once
  });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out.length < 4 * MiB ? (out += d) : undefined));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err.length < 4 * MiB ? (err += d) : undefined));
  let peak = 0;
  let killedFor: "cap" | "time" | undefined;
  const kill = () => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      /* already gone */
    }
  };
  const poll = () => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    let sum = 0;
    for (const p of [child.pid, ...descendants(child.pid)]) {
      const m = memoryOf(p);
      sum += m.rss;
      peak = Math.max(peak, m.hwm);
    }
    peak = Math.max(peak, sum);
    if (sum > limits.capBytes && !killedFor) {
      killedFor = "cap";
      kill();
    }
  };
  const timer = setInterval(poll, 50);
  const deadline = setTimeout(() => {
    if (!killedFor) killedFor = "time";
    kill();
  }, limits.timeoutMs);
  const done = new Promise<RunResult>((resolve) => {
    child.on("error", (e) => (err += `\nspawn failed: ${e.message}`));
    child.on("close", (code, signal) => {
      clearInterval(timer);
      clearTimeout(deadline);
      kill(); // anything the root left behind in its group
      resolve({ code, signal, stdout: out, stderr: err, peakRssBytes: peak, seconds: Number(process.hrtime.bigint() - start) / 1e9, killedFor });
    });
  });
  poll();
  return { child, stdout: () => out, stderr: () => err, peak: () => peak, done, kill };
}

/** Runs `cmd args` to its end under `limits`. */
export function runLimited(cmd: string, args: string[], limits: Limits, opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  return watch(cmd, args, limits, { ...opts, addressSpace: addressSpaceBackstop() }).done;
}

/** An uncaught exception's stack trace, a C++ abort or a V8 fatal error in a process's output. */
export function crashTrace(stderr: string): string | undefined {
  const m =
    /^\s+at .+(\(.+:\d+:\d+\)|:\d+:\d+)$/m.exec(stderr) ??
    /terminate called after throwing|Aborted \(core dumped\)|Segmentation fault|FATAL ERROR:|Fatal error in|node:internal\/process|^Uncaught /m.exec(stderr);
  return m ? m[0].trim() : undefined;
}

/** The first line that says something: the error a user reads (progress bars and blank lines skipped). */
export function firstErrorLine(stderr: string): string {
  const lines = stderr.split(/\r?\n|\r/).map((l) => l.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").trim()).filter(Boolean);
  return lines.find((l) => /^wanlab(-engine)? [\w-]+: /.test(l)) ?? lines.find((l) => /error|refus|must|cannot|invalid|exceed/i.test(l)) ?? lines[lines.length - 1] ?? "";
}

export interface Judgement {
  outcome: Outcome;
  problem?: string;
}

/** How a process ended, as one of the outcomes. `expect` is what the case demands; `errorMatches`
 * the patterns its error must match when refused; `check` (for an ok run) what its result must be. */
export function judgeProcess(r: RunResult, expect: "refused" | "ok", errorMatches: RegExp[] = [], check?: () => string | undefined): Judgement {
  if (r.killedFor === "cap") return { outcome: "over-cap", problem: `killed at ${(r.peakRssBytes / MiB).toFixed(0)} MiB resident` };
  if (r.killedFor === "time") return { outcome: "hang", problem: `killed after ${r.seconds.toFixed(1)} s` };
  if (r.signal) return { outcome: "crash", problem: `killed by ${r.signal}` };
  if (r.code !== null && r.code >= 128) return { outcome: "crash", problem: `exit ${r.code} (a signal in a child?)` };
  const trace = crashTrace(r.stderr);
  if (trace) return { outcome: "crash", problem: `stack trace or fatal error in stderr: ${trace}` };
  if (r.code === 0) {
    if (expect === "refused") return { outcome: "wrong-ok", problem: "exit 0 where a refusal was due" };
    const bad = check?.();
    return bad ? { outcome: "wrong-ok", problem: bad } : { outcome: "ok" };
  }
  const missing = errorMatches.filter((re) => !re.test(r.stderr));
  if (expect === "refused" && missing.length) return { outcome: "refused", problem: `the error does not name the culprit (${missing.join(", ")}): ${firstErrorLine(r.stderr)}` };
  return { outcome: "refused", problem: expect === "ok" ? `exit ${r.code}: ${firstErrorLine(r.stderr)}` : undefined };
}

/** Kills the tree rooted at `pid`, by its process group (spawned detached). */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    /* gone */
  }
}

/** The table of all outcomes, one row per case. */
export function outcomeTable(results: CaseResult[]): string {
  const rows = [["case", "kind", "expect", "outcome", "pass", "exit", "peak MiB", "cap MiB", "seconds", "error"]];
  for (const r of results)
    rows.push([r.name, r.kind, r.expect, r.outcome, r.pass ? "yes" : "NO", r.signal ?? String(r.code ?? "-"), (r.peakRssBytes / MiB).toFixed(0),
      (r.capBytes / MiB).toFixed(0), r.seconds.toFixed(1), (r.problem ? `[${r.problem}] ` : "") + r.error].map((c) => c.replace(/\s+/g, " ").slice(0, 160)));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  const failed = results.filter((r) => !r.pass).length;
  return [line(rows[0]!), ...rows.slice(1).map(line), `${results.length} cases, ${results.length - failed} as required, ${failed} not`].join("\n");
}

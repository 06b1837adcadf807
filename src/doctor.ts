// `wanlab doctor`: can this machine run wanlab, and where will runs go? The engine's own report
// (native/src/tools/doctor.h: libtorch, CUDA, NCCL, what `--devices auto` picks, small runs of
// every CUDA path on every visible GPU), plus what the TypeScript side needs: the addon loading,
// ffmpeg (FFMPEG_PATH → ffmpeg-static → PATH) and the Jupyter kernel.
import { inspect } from "node:util";
import { listKernels } from "./jupyter/kernelspec.js";
import { addonPath, native } from "./native.js";
import { findFfmpeg, type Ffmpeg } from "./video/ffmpeg.js";
import { bytesIn } from "./terminal/format.js";

/** One check on a CUDA device: a relative L2 against float32 on that device, or an own kernel's
 * comparison with its host emulation, or why it could not run. */
export interface DeviceCheck {
  ok: boolean;
  rel_l2?: number;
  tolerance?: number;
  values_differing_from_host_emulation?: number;
  unavailable?: string;
  error?: string;
}

export interface EngineReport {
  libtorch: { version: string; cuda: boolean; c10d: { gloo: boolean; nccl: boolean }; config: string[] };
  cpu: { threads: number; hardware_threads: number };
  environment: Record<string, string>;
  auto_devices: { chosen: string; why: string };
  /** The host's memory, and what --budget auto allows where runs go (absent when it cannot). */
  host_memory: { total_bytes: number; available_bytes: number };
  budget_auto?: { device: string; bytes: number; how: string };
  cuda_devices: { device: string; name: string; compute_capability: string; total_bytes: number; free_bytes: number;
    checks: Record<string, DeviceCheck> }[];
  runs_on: string;
  problems: string[];
  warnings: string[];
  ok: boolean;
  message: string;
}

export interface DoctorReport {
  /** No problems: runs work (possibly on the CPU; `message` says where). */
  ok: boolean;
  runs_on: string;
  message: string;
  /** What stops a run or makes it wrong. */
  problems: string[];
  /** What makes it slower or less convenient. */
  warnings: string[];
  node: { version: string; platform: string; arch: string };
  addon: { path: string; ok: boolean; error?: string };
  engine?: EngineReport;
  ffmpeg: { ok: boolean; error?: string } & Partial<Ffmpeg>;
  jupyter: { kernels: { name: string; dir: string }[] };
}

/** The report; printed (a notebook cell's last value, console.log) it reads as doctorText. */
export async function doctor(): Promise<DoctorReport> {
  const problems: string[] = [], warnings: string[] = [];
  let engine: EngineReport | undefined;
  let addonError: string | undefined;
  try {
    engine = JSON.parse(await native().doctor()) as EngineReport;
    problems.push(...engine.problems);
    warnings.push(...engine.warnings);
  } catch (e) {
    addonError = (e as Error).message;
    problems.push(`the native addon does not load (${addonError}): run \`npm run build\``);
  }
  let ffmpeg: DoctorReport["ffmpeg"];
  try {
    ffmpeg = { ok: true, ...(await findFfmpeg()) };
  } catch (e) {
    ffmpeg = { ok: false, error: (e as Error).message };
    problems.push(`${ffmpeg.error} (videos are written and shown through it)`);
  }
  const kernels = listKernels().map((k) => ({ name: k.name, dir: k.dir }));
  if (kernels.length === 0) warnings.push("the Jupyter kernel is not installed: wanlab kernel install");
  const report: DoctorReport = {
    ok: problems.length === 0,
    runs_on: engine?.runs_on ?? "nowhere (the engine does not load)",
    message: engine?.message ?? "the engine does not load",
    problems,
    warnings,
    node: { version: process.version, platform: process.platform, arch: process.arch },
    addon: { path: addonPath, ok: addonError === undefined, ...(addonError ? { error: addonError } : {}) },
    ...(engine ? { engine } : {}),
    ffmpeg,
    jupyter: { kernels },
  };
  Object.defineProperty(report, inspect.custom, { value: () => doctorText(report), enumerable: false });
  return report;
}

function checkText(name: string, c: DeviceCheck): string {
  if (c.unavailable !== undefined) return `${name} unavailable`;
  if (c.error !== undefined) return `${name} FAILED`;
  const detail = c.rel_l2 !== undefined ? ` ${c.rel_l2.toExponential(1)}` : "";
  return `${name} ${c.ok ? "ok" : "WRONG"}${detail}`;
}

/** The report as aligned terminal lines (the same facts as --json, less the build configuration). */
export function doctorText(r: DoctorReport): string {
  const rows: [string, string][] = [["node", `${r.node.version} (${r.node.platform} ${r.node.arch})`]];
  rows.push(["addon", r.addon.ok ? r.addon.path : `does not load: ${r.addon.error}`]);
  const e = r.engine;
  if (e) {
    const backends = ["gloo", ...(e.libtorch.c10d.nccl ? ["nccl"] : [])].join(", ");
    rows.push(["libtorch", `${e.libtorch.version}, ${e.libtorch.cuda ? "CUDA" : "CPU only"}; c10d ${backends}; ${e.cpu.threads} of ${e.cpu.hardware_threads} CPU threads`]);
    rows.push(["devices auto", `${e.auto_devices.chosen} (${e.auto_devices.why})`]);
    // In GB (10^9), as --budget 24G counts; a card in GiB, as its maker counts.
    const gb = (b: number) => bytesIn(b, "GB", 2);
    const gib = (b: number) => bytesIn(b, "GiB", 1);
    rows.push(["memory", `host ${gb(e.host_memory.total_bytes)} (${gb(e.host_memory.available_bytes)} available)` +
      (e.budget_auto ? `; --budget auto: ${gb(e.budget_auto.bytes)} on ${e.budget_auto.device}` : "")]);
    for (const d of e.cuda_devices) {
      rows.push([d.device, `${d.name}, compute ${d.compute_capability}, ${gib(d.total_bytes)} (${gib(d.free_bytes)} free)`]);
      rows.push(["", Object.entries(d.checks).map(([n, c]) => checkText(n, c)).join(", ")]);
    }
  }
  rows.push(["ffmpeg", r.ffmpeg.ok ? `${r.ffmpeg.path} (${r.ffmpeg.source}): ${r.ffmpeg.version}` : `not found: ${r.ffmpeg.error}`]);
  rows.push(["jupyter", r.jupyter.kernels.length ? r.jupyter.kernels.map((k) => `kernel '${k.name}' in ${k.dir}`).join("; ") : "no wanlab kernel installed"]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const out = rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`);
  for (const w of r.warnings) out.push(`warning: ${w}`);
  for (const p of r.problems) out.push(`problem: ${p}`);
  out.push(`${r.ok ? "ok" : "not ok"}: ${r.message}`);
  return out.join("\n");
}

/** Which ranks `checkLinks` measures: as a device group is opened (OpenOptions' fields). */
export interface LinkCheckOptions {
  /** This process's ranks, e.g. "cpu:0-3", "cuda:0-7" (default "cpu:0-1"). */
  devices?: string;
  /** How the ranks exchange tensors, as an engine would open them ("gloo" or "nccl"; default:
   * NCCL between CUDA ranks where the build has it, else Gloo, always Gloo for "cuda:KxN"). */
  transport?: "gloo" | "nccl";
  /** Several processes: "tcp://HOST:PORT" with nnodes and nodeRank, or "env://" (torchrun, Slurm). */
  rendezvous?: string;
  nnodes?: number;
  nodeRank?: number;
  /** For the whole check, seconds (default 30): a rank that never joins is named after it. */
  timeoutS?: number;
  /** Bytes each rank hands over per call (default 4 KiB, 64 KiB, 1 MiB, 16 MiB). */
  sizes?: number[];
  /** Timed calls per size after one warm-up (default 5). */
  reps?: number;
}

/** One collective at one message size: the median latency per call (slowest local rank) and
 * payload bytes per second. */
export interface LinkMeasure { op: "all_to_all" | "all_gather" | "send/recv"; bytes: number; latency_s: number; bytes_per_s: number }

export interface LinkReport {
  world: number;
  node_rank: number;
  /** What every node published in the pre-flight check (same build and model checked). */
  nodes: { node: number; first_rank: number; host: string; devices: string; build: string; model: string; pid: number }[];
  meet_s: number;
  preflight_collectives_s: number;
  measures: LinkMeasure[];
}

/** The pre-flight check of a group (every rank meets, same build, one of each collective checked)
 * and the collectives the engine uses measured between its ranks (native/src/parallel/link_check.h).
 * Every process of a multi-node group calls it with the same options. */
export async function checkLinks(options: LinkCheckOptions = {}): Promise<LinkReport> {
  const { resolveEnvRendezvous } = await import("./launch-env.js");
  const { rendezvous, nnodes, nodeRank, devices, transport, timeoutS, sizes, reps } = resolveEnvRendezvous(options);
  const o = Object.fromEntries(Object.entries({ devices, transport, rendezvous, nnodes, nodeRank, timeoutS, sizes, reps })
    .filter(([, v]) => v !== undefined));
  const r = JSON.parse(await native().checkLinks(o)) as LinkReport;
  Object.defineProperty(r, inspect.custom, { value: () => linksText(r), enumerable: false });
  return r;
}

/** The link report as a table: one row per collective and size. */
export function linksText(r: LinkReport): string {
  const out = [`  ${r.world} ranks on ${r.nodes.map((n) => `${n.host} (${n.devices})`).join(", ")}; met in ${(r.meet_s * 1e3).toFixed(0)} ms, ` +
    `pre-flight collectives ok in ${(r.preflight_collectives_s * 1e3).toFixed(0)} ms; build ${r.nodes[0]?.build ?? "?"}`];
  const size = (b: number) => (b >= 2 ** 20 ? `${+(b / 2 ** 20).toFixed(2)} MiB` : `${+(b / 1024).toFixed(2)} KiB`);
  const rows = [["collective", "bytes/rank", "latency", "bandwidth"], ...r.measures.map((m) => [m.op, size(m.bytes),
    m.latency_s < 1e-3 ? `${(m.latency_s * 1e6).toFixed(0)} µs` : `${(m.latency_s * 1e3).toFixed(2)} ms`, `${bytesIn(m.bytes_per_s, "GB", 2)}/s`])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) out.push("  " + row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  return out.join("\n");
}

// The terminal rendering of `wanlab inspect`, in lines of at most 100 columns (a path longer
// than that stands alone on its line).
import { relative, sep } from "node:path";
import type { InspectReport } from "../models.js";
import { rangeOf } from "../options/table.js";
import { formatBytes, formatCount, table } from "./format.js";

const width = 100;

/** The flags `wanlab inspect` was given that change the plan, so that its advice names only
 * what was not tried. */
export interface InspectGiven {
  t5Device?: string;
  t5Offload?: boolean;
  tiled?: boolean;
  shardWeights?: boolean;
  persistentParams?: number;
}

/** The longest-video search stops at the longest video the engine takes. */
const frameCap = () => rangeOf("generate", "num-frames")[1];

/** Parts joined by " · " in lines of at most `width`, each continuation indented by `indent`. */
function joinWrapped(first: string, parts: string[], indent: number): string[] {
  const lines = [first];
  for (const p of parts) {
    const last = lines[lines.length - 1]!;
    const sepText = last === first && first.endsWith("  ") ? "" : " · ";
    if (last.length + sepText.length + p.length > width && last !== first) lines.push(" ".repeat(indent) + p);
    else lines[lines.length - 1] = last + sepText + p;
  }
  return lines;
}

/** What to try when nothing fits the budget: the ways to need less that the flags given did not
 * already take. */
export function budgetAdvice(r: InspectReport, given: InspectGiven): string {
  const m = r.memory;
  const cuda = m.devices.startsWith("cuda");
  const tries: string[] = [];
  if (cuda && given.t5Device !== "cpu" && !given.t5Offload) tries.push("--t5-device cpu or --t5-offload");
  if (!given.tiled) tries.push("--tiled");
  if (m.device_count > 1 && !given.shardWeights) tries.push("--shard-weights");
  tries.push(m.device_count > 1 ? "more ranks" : "more devices (--devices cuda:0,1)", "a smaller video (--height, --width, --num-frames)");
  return `does not fit even with every DiT block streamed; try ${tries.join(", ")}`;
}

function dtypes(d: Record<string, number>, scaled: number): string {
  const s = Object.entries(d)
    .map(([k, n]) => `${k}×${n}`)
    .join(" ");
  return scaled > 0 ? `${s} (${scaled} scaled)` : s;
}

export function formatInspect(r: InspectReport, given: InspectGiven = {}): string {
  const c = r.components;
  const out: string[] = [];
  out.push(`Wan2.1 T2V model  ${r.dir}  (${r.layout} layout, ${formatBytes(r.bytes_on_disk)} on disk)`, "");
  const rows = [["component", "params", "tensors", "dtypes", "on disk"]];
  const files = [];
  for (const [name, comp] of Object.entries(c)) {
    rows.push([name, formatCount(comp.params), String(comp.tensors), dtypes(comp.dtypes, comp.scaled_f8), formatBytes(comp.bytes_on_disk)]);
    files.push([`  ${name}`, comp.files.length > 2 ? `${comp.files[0]!.path} … (${comp.files.length} files)` : comp.files.map((f) => f.path).join(", ")]);
  }
  const tok = r.tokenizer;
  const tokDir = tok.dir.startsWith(r.dir + sep) ? relative(r.dir, tok.dir) : tok.dir;
  files.push(["  tokenizer", tok.found ? `${tokDir}  (${tok.model}, ${tok.size} tokens)` : `${tokDir}  (missing)`]);
  out.push(table(rows, [1, 2, 4]), "", "files", table(files), "");

  const d = c.dit.arch, t = c.t5.arch, v = c.vae.arch;
  out.push("architecture (from tensor shapes)");
  out.push(
    ...joinWrapped("  dit  ", [`dim ${d.dim}`, `ffn ${d.ffn_dim}`, `heads ${d.num_heads}`, `layers ${d.num_layers}`, `freq ${d.freq_dim}`,
      `text ${d.text_dim}`, `in/out ${d.in_dim}/${d.out_dim}`, `patch ${(d.patch_size as number[]).join("×")}`], 7),
    ...joinWrapped("  t5   ", [`vocab ${t.vocab}`, `dim ${t.dim}`, `attn ${t.dim_attn}`, `ffn ${t.dim_ffn}`, `heads ${t.num_heads}`,
      `layers ${t.num_layers}`, `buckets ${t.num_buckets}`], 7),
    ...joinWrapped("  vae  ", [`dim ${v.dim}`, `z ${v.z_dim}`, `mult ${(v.dim_mult as number[]).join(",")}`, `res blocks ${v.num_res_blocks}`], 7),
    "",
  );

  const m = r.memory;
  out.push(...joinWrapped("memory per device (estimate)  ", [`${m.devices} (${m.device_count})`,
    `ulysses ${m.ulysses} × ring ${m.ring}${m.cfg > 1 ? " × cfg 2" : ""}`,
    `${m.video.height}×${m.video.width}×${m.video.num_frames} → ${m.tokens} tokens, ${m.tokens_per_rank} per rank`], 2));
  const mem = [
    [`  DiT weights on the device (${m.weight_dtype}, every rank)`, formatBytes(m.dit_weights_bytes)],
    ...(m.dit_streamed_bytes > 0 ? [["  DiT blocks streaming in (two)", formatBytes(m.dit_streamed_bytes)]] : []),
    ...(m.dit_lora_bytes > 0 ? [["  LoRA working copies of the DiT (--lora)", formatBytes(m.dit_lora_bytes)]] : []),
    ["  DiT activations (per rank)", formatBytes(m.dit_activation_bytes)],
    m.t5_streamed_bytes > 0
      ? ["  T5 weights (rank 0), while encoding only (offloaded)", formatBytes(m.t5_streamed_bytes)]
      : ["  T5 weights (rank 0)", formatBytes(m.t5_weights_bytes)],
    ["  VAE weights (rank 0)", formatBytes(m.vae_weights_bytes)],
    ["  VAE decode activations (rank 0)", formatBytes(m.vae_decode_bytes)],
    ["  peak while encoding / denoising / decoding", `${formatBytes(m.stages.encode)} / ${formatBytes(m.stages.denoise)} / ${formatBytes(m.stages.decode)}`],
    ["  peak, rank 0", formatBytes(m.rank0_peak_bytes)],
  ];
  if (m.device_count > 1) mem.push(["  peak, other ranks", formatBytes(m.other_rank_peak_bytes)]);
  if (m.host_ranks_peak_bytes !== undefined) mem.push([`  peak, the ${m.device_count} CPU ranks together (one host)`, formatBytes(m.host_ranks_peak_bytes)]);
  if (m.host_bytes > 0) {
    mem.push(["  host memory beside the GPU", formatBytes(m.host_bytes)]);
    const t5 = m.t5_streamed_bytes > 0 ? "T5 weights (offloaded, pinned)" : "T5 weights (float32)";
    const parts = [[m.host_pinned_bytes, "streamed DiT blocks (pinned)"], [m.host_t5_bytes, t5], [m.host_activation_bytes, "T5 activations (float32)"]] as const;
    for (const [bytes, what] of parts) if (bytes > 0) mem.push([`    ${what}`, formatBytes(bytes)]);
  }
  let advice: string | undefined;
  if (m.budget) {
    const b = m.budget;
    const verdict = b.fits ? "fits" : b.persistent_params >= 0 ? `fits with --persistent-params ${b.persistent_params}` : "does not fit";
    mem.push([`  budget ${formatBytes(b.bytes)}`, verdict]);
    if (b.auto) mem.push([`    (${b.auto})`, ""]);
    if (!b.fits && b.persistent_params < 0) advice = budgetAdvice(r, given);
    const cap = frameCap();
    mem.push([`  longest video within the budget (searched up to ${cap} frames)`, ""]);
    const streams = b.longest.some((l) => l.streamed_frames !== l.resident_frames);
    const n = (f: number, what: string) => `${f} ${what}${f >= cap ? " (the cap)" : ""}`;
    for (const l of b.longest) {
      const frames = streams ? `${n(l.resident_frames, "frames resident")}, ${n(l.streamed_frames, "streaming blocks")}` : n(l.resident_frames, "frames");
      mem.push([`    longest ${l.height}×${l.width}${l.tiled ? " tiled" : ""}`, frames]);
    }
  }
  out.push(table(mem, [1]));
  if (advice) out.push("", ...wrapWords(advice, width));
  if (r.problems?.length) out.push("", "problems (generate would refuse this model)", ...r.problems.map((p) => `  ${p}`));
  return out.join("\n");
}

/** Words in lines of at most `max` characters. */
function wrapWords(text: string, max: number): string[] {
  const lines = [""];
  for (const w of text.split(" ")) {
    const last = lines[lines.length - 1]!;
    if (last && last.length + 1 + w.length > max) lines.push("  " + w);
    else lines[lines.length - 1] = last ? `${last} ${w}` : w;
  }
  return lines;
}

// The terminal rendering of `wanlab inspect`.
import type { InspectReport } from "../models.js";
import { formatBytes, formatCount, table } from "./format.js";

function dtypes(d: Record<string, number>, scaled: number): string {
  const s = Object.entries(d)
    .map(([k, n]) => `${k}×${n}`)
    .join(" ");
  return scaled > 0 ? `${s} (${scaled} scaled)` : s;
}

export function formatInspect(r: InspectReport): string {
  const c = r.components;
  const out: string[] = [];
  out.push(`Wan2.1 T2V model  ${r.dir}  (${r.layout} layout, ${formatBytes(r.bytes_on_disk)} on disk)`, "");
  const rows = [["component", "params", "tensors", "dtypes", "on disk", "files"]];
  for (const [name, comp] of Object.entries(c)) {
    const files = comp.files.length > 2 ? `${comp.files[0]!.path} … (${comp.files.length} files)` : comp.files.map((f) => f.path).join(", ");
    rows.push([name, formatCount(comp.params), String(comp.tensors), dtypes(comp.dtypes, comp.scaled_f8), formatBytes(comp.bytes_on_disk), files]);
  }
  const tok = r.tokenizer;
  rows.push(["tokenizer", "", "", "", "", tok.found ? `${tok.dir}  (${tok.model}, ${tok.size} tokens)` : `${tok.dir}  (missing)`]);
  out.push(table(rows, [1, 2, 4]), "");

  const d = c.dit.arch, t = c.t5.arch, v = c.vae.arch;
  out.push("architecture (from tensor shapes)");
  out.push(
    table([
      ["  dit", `dim ${d.dim} · ffn ${d.ffn_dim} · heads ${d.num_heads} · layers ${d.num_layers} · freq ${d.freq_dim} · text ${d.text_dim} · in/out ${d.in_dim}/${d.out_dim} · patch ${(d.patch_size as number[]).join("×")}`],
      ["  t5", `vocab ${t.vocab} · dim ${t.dim} · attn ${t.dim_attn} · ffn ${t.dim_ffn} · heads ${t.num_heads} · layers ${t.num_layers} · buckets ${t.num_buckets}`],
      ["  vae", `dim ${v.dim} · z ${v.z_dim} · mult ${(v.dim_mult as number[]).join(",")} · res blocks ${v.num_res_blocks}`],
    ]),
    "",
  );

  const m = r.memory;
  out.push(
    `memory per device (estimate)  ${m.devices} (${m.device_count}) · ulysses ${m.ulysses} × ring ${m.ring}${m.cfg > 1 ? " × cfg 2" : ""} · ` +
      `${m.video.height}×${m.video.width}×${m.video.num_frames} → ${m.tokens} tokens, ${m.tokens_per_rank} per rank`,
  );
  const mem = [
    [`  DiT weights on the device (${m.weight_dtype}, every rank)`, formatBytes(m.dit_weights_bytes)],
    ...(m.dit_streamed_bytes > 0 ? [["  DiT blocks streaming in (two)", formatBytes(m.dit_streamed_bytes)]] : []),
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
  if (m.budget) {
    const b = m.budget;
    mem.push([
      `  budget ${formatBytes(b.bytes)}${b.auto ? ` (${b.auto})` : ""}`,
      b.fits ? "fits" : b.persistent_params >= 0 ? `fits with --persistent-params ${b.persistent_params}` : b.note,
    ]);
    const streams = b.longest.some((l) => l.streamed_frames !== l.resident_frames);
    for (const l of b.longest) {
      const frames = streams ? `${l.resident_frames} frames resident, ${l.streamed_frames} streaming blocks` : `${l.resident_frames} frames`;
      mem.push([`    longest ${l.height}×${l.width}${l.tiled ? " tiled" : ""}`, frames]);
    }
  }
  out.push(table(mem, [1]));
  if (r.problems?.length) out.push("", "problems (generate would refuse this model)", ...r.problems.map((p) => `  ${p}`));
  return out.join("\n");
}

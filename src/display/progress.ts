// A progress bar updated in place (display_id + update_display_data), throttled so a fast loop
// does not flood the notebook with messages (IPython's ProgressBar; jupyter_server's rate limit).
// With a device group it lists the ranks (device, role, state; after the run each rank's time in
// collectives and bytes sent, from the engine's timings); with previews it shows the latest
// latent preview thumbnail under the bar.
import type { GenerateResult, ProgressEvent } from "../shared/lab.js";
import { escapeHtml, newDisplayId, publish, type MimeBundle } from "./mime.js";
import { latentPreview } from "./preview.js";
import { formatBytes } from "../terminal/format.js";

export interface NotebookProgress {
  onProgress(e: ProgressEvent): void;
  /** Last denoising step seen and its total (for "cancelled at step k/N"). */
  readonly step: number;
  readonly total: number;
  /** Latent previews shown so far (denoising steps). */
  readonly previews: readonly number[];
  /** The final state; `timings` adds each rank's counters. */
  finish(message: string, ok: boolean, timings?: GenerateResult["timings"]): void;
}

/** One rank of a device group as the bar lists it. */
export interface RankRow {
  rank: number;
  device: string;
  role: string;
}

export interface ProgressOptions {
  intervalMs?: number;
  ranks?: RankRow[];
  /** A line under the bar (e.g. why there are no previews). */
  note?: string;
}

const stageNames = { encode: "text encoder", denoise: "denoising", decode: "VAE decode" } as const;

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

/** Short durations in ms (per-rank communication is often well under a second). */
export function fmtDuration(s: number): string {
  return s < 1 ? `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms` : fmtSeconds(s);
}

/** The line the bar shows: "denoising 3/10 · 2.4 it/s · ETA 2.9s". */
export function progressText(e: ProgressEvent): string {
  const rate = e.elapsed > 0 ? e.step / e.elapsed : 0;
  return `${stageNames[e.stage]} ${e.step}/${e.total} · ${rate.toFixed(rate < 10 ? 2 : 1)} it/s · ETA ${fmtSeconds(e.eta)}`;
}

/** A bar with a label, a fill fraction and a text: the shape of both the generation and the load bar. */
export function barBundle(label: string, text: string, fraction: number, color: string, extra: { html?: string; text?: string; png?: string } = {}): MimeBundle {
  const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  const b: MimeBundle = {
    "text/plain": `${label}: ${text}${extra.text ? `\n${extra.text}` : ""}`,
    "text/html":
      `<div style="font:12px monospace"><b>${escapeHtml(label)}</b> ` +
      `<span style="display:inline-block;width:200px;height:10px;background:#eee;vertical-align:middle">` +
      `<span style="display:block;width:${pct}%;height:100%;background:${color}"></span></span> ${escapeHtml(text)}${extra.html ?? ""}</div>`,
  };
  if (extra.png) b["image/png"] = extra.png;
  return b;
}

/** The rank state during a stage: the DiT runs on the group, the text encoder and VAE on rank 0's process. */
function rankState(stage: ProgressEvent["stage"] | undefined, step: number, total: number): string {
  if (stage === "denoise") return `denoising step ${step}/${total}`;
  if (stage === "decode") return "denoised · VAE decode on the host";
  if (stage === "encode") return "waiting · text encoder on the host";
  return "idle";
}

function ranksPart(ranks: RankRow[], state: (r: RankRow) => string): { html: string; text: string } {
  const rows = ranks.map((r) => ({ r, s: state(r) }));
  return {
    html:
      `<table style="font:11px monospace;border-collapse:collapse;margin-top:4px">` +
      rows.map(({ r, s }) => `<tr><td style="padding:0 8px 0 0">rank ${r.rank}</td><td style="padding:0 8px 0 0">${escapeHtml(r.device)}</td><td style="padding:0 8px 0 0;color:#777">${escapeHtml(r.role)}</td><td>${escapeHtml(s)}</td></tr>`).join("") +
      `</table>`,
    text: rows.map(({ r, s }) => `  rank ${r.rank} ${r.device} (${r.role}): ${s}`).join("\n"),
  };
}

/** A live bar in the current cell; does nothing outside the kernel. */
export function notebookProgress(label: string, options: ProgressOptions = {}): NotebookProgress {
  const intervalMs = options.intervalMs ?? 250;
  const id = newDisplayId();
  let shown = false;
  let last = 0;
  let pending: ProgressEvent | undefined;
  let step = 0;
  let total = 0;
  let stage: ProgressEvent["stage"] | undefined;
  let preview: { png: string; step: number; frames: number[] } | undefined;
  const previews: number[] = [];

  const extras = (rankState: (r: RankRow) => string) => {
    const parts: { html: string; text: string }[] = [];
    if (options.ranks && options.ranks.length > 1) parts.push(ranksPart(options.ranks, rankState));
    if (preview)
      parts.push({
        html: `<div style="margin-top:4px"><img alt="latent preview" src="data:image/png;base64,${preview.png}" style="image-rendering:pixelated"/><div style="color:#777">latent preview (linear RGB projection) at step ${preview.step}, latent frames ${preview.frames.join(", ")}</div></div>`,
        text: `  latent preview at step ${preview.step}`,
      });
    if (options.note) parts.push({ html: `<div style="color:#777">${escapeHtml(options.note)}</div>`, text: `  ${options.note}` });
    return { html: parts.map((p) => p.html).join(""), text: parts.map((p) => p.text).join("\n"), png: preview?.png };
  };

  const show = (e: ProgressEvent) => {
    const b = barBundle(label, progressText(e), e.total ? e.step / e.total : 0, "#4a90d9", extras(() => rankState(e.stage, step, total)));
    shown = publish(b, { displayId: id, update: shown }) || shown;
    last = Date.now();
    pending = undefined;
  };
  return {
    get step() {
      return step;
    },
    get total() {
      return total;
    },
    previews,
    onProgress(e) {
      stage = e.stage;
      if (e.stage === "denoise") [step, total] = [e.step, e.total];
      if (e.latents) {
        const p = latentPreview(e.latents);
        preview = { png: p.png.toString("base64"), step: e.step, frames: p.frames };
        previews.push(e.step);
        show(e); // a new preview always shows
        return;
      }
      // Stage ends always show, so the bar never sits on a stale line.
      if (Date.now() - last >= intervalMs || e.step === e.total || e.step === 1) show(e);
      else pending = e;
    },
    finish(message, ok, timings) {
      if (pending) show(pending);
      const ranks = timings?.ranks;
      const state = (r: RankRow) => {
        const c = ranks?.[r.rank];
        if (!ok) return rankState(stage, step, total).replace(/^denoising/, "stopped at");
        if (!c) return "done";
        const compute = typeof c.compute_s === "number" ? ` · compute ${fmtDuration(c.compute_s)}` : "";
        const peak = typeof c.peak_bytes === "number" && c.peak_bytes >= 0 ? ` · peak ${formatBytes(c.peak_bytes, "binary")}` : "";
        return `done · comm ${fmtDuration(c.comm_s)}${compute} · sent ${formatBytes(c.bytes_sent, "binary")} in ${c.collectives} collectives${peak}`;
      };
      const b = barBundle(label, message, ok ? 1 : total ? step / total : 0, ok ? "#5cb85c" : "#d9534f", extras(state));
      publish(b, { displayId: id, update: shown });
    },
  };
}

// A progress bar updated in place (display_id + update_display_data), throttled so a fast loop
// does not flood the notebook with messages (IPython's ProgressBar; jupyter_server's rate limit).
import type { ProgressEvent } from "../engine.js";
import { escapeHtml, newDisplayId, publish } from "./mime.js";

export interface NotebookProgress {
  onProgress(e: ProgressEvent): void;
  /** Last denoising step seen and its total (for "cancelled at step k/N"). */
  readonly step: number;
  readonly total: number;
  finish(message: string, ok: boolean): void;
}

const stageNames = { encode: "text encoder", denoise: "denoising", decode: "VAE decode" } as const;

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

/** The line the bar shows: "denoising 3/10 · 2.4 it/s · ETA 2.9s". */
export function progressText(e: ProgressEvent): string {
  const rate = e.elapsed > 0 ? e.step / e.elapsed : 0;
  return `${stageNames[e.stage]} ${e.step}/${e.total} · ${rate.toFixed(rate < 10 ? 2 : 1)} it/s · ETA ${fmtSeconds(e.eta)}`;
}

function bundle(label: string, text: string, fraction: number, color: string) {
  const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  return {
    "text/plain": `${label}: ${text}`,
    "text/html":
      `<div style="font:12px monospace"><b>${escapeHtml(label)}</b> ` +
      `<span style="display:inline-block;width:200px;height:10px;background:#eee;vertical-align:middle">` +
      `<span style="display:block;width:${pct}%;height:100%;background:${color}"></span></span> ${escapeHtml(text)}</div>`,
  };
}

/** A live bar in the current cell; does nothing outside the kernel. `intervalMs` throttles updates. */
export function notebookProgress(label: string, intervalMs = 250): NotebookProgress {
  const id = newDisplayId();
  let shown = false;
  let last = 0;
  let pending: ProgressEvent | undefined;
  let step = 0;
  let total = 0;
  const show = (e: ProgressEvent) => {
    const b = bundle(label, progressText(e), e.total ? e.step / e.total : 0, "#4a90d9");
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
    onProgress(e) {
      if (e.stage === "denoise") [step, total] = [e.step, e.total];
      // Stage ends always show, so the bar never sits on a stale line.
      if (Date.now() - last >= intervalMs || e.step === e.total || e.step === 1) show(e);
      else pending = e;
    },
    finish(message, ok) {
      if (pending) show(pending);
      const b = bundle(label, message, ok ? 1 : total ? step / total : 0, ok ? "#5cb85c" : "#d9534f");
      publish(b, { displayId: id, update: shown });
    },
  };
}

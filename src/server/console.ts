// The server's console: one line per job event (accepted, started, progress, retried, done,
// failed, cancelled, re-queued), each with a UTC timestamp and the job's id, so someone watching
// `wanlab serve` sees what it does. `wanlab serve --quiet` leaves it out.
//
//   wanlab serve: 2026-12-05T23:30:01Z job mabc-12 accepted from 127.0.0.1 (node): 32x32, 1 frame, 2 steps, seed 7, "a cat"
//   wanlab serve: 2026-12-05T23:30:01Z job mabc-12 started (waited 0.0 s in the queue)
//   wanlab serve: 2026-12-05T23:30:02Z job mabc-12 step 1/2 (50%), ETA 0.4 s
//   wanlab serve: 2026-12-05T23:30:03Z job mabc-12 done in 1.6 s: /outputs/mabc-12/video.mp4
//
// Lines are plain text (no ANSI codes), one line each: control characters in prompts, paths and
// engine messages are written as escapes, never sent to the terminal.
import type { CancelledAt } from "../engine.js";
import type { JobEvent, Queue } from "./jobs.js";

export interface JobConsoleOptions {
  /** Where the lines go (the server's log: stderr). */
  log: (line: string) => void;
  /** The clock (milliseconds since the epoch); a test seam. */
  now?: () => number;
  /** A progress line at most this often, besides one per tenth of the steps (default 10 s). */
  progressEveryMs?: number;
}

/** Text safe on one terminal line: control characters (newlines, ESC, C1) written as \xNN. */
export function oneLine(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => (c === "\n" ? "\\n" : c === "\t" ? " " : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
}

/** `text` on one line (oneLine), cut to `max` characters: a refused 64 KiB prompt is not echoed whole. */
export function clip(text: string, max: number): string {
  const line = oneLine(text);
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}

/** 0.4 s, 12 s, 3 min 20 s, 2 h 05 min. */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** 2026-12-05T23:30:01Z: UTC, to the second. */
export function timestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Where a cancelled generation stopped: "at step 3/50, block 12/30 (denoise)", "during encode". */
export function whereStopped(at: CancelledAt): string {
  const parts: string[] = [];
  if (at.step !== undefined) parts.push(`step ${at.step}${at.steps !== undefined ? `/${at.steps}` : ""}`);
  if (at.block !== undefined) parts.push(`block ${at.block}${at.blocks !== undefined ? `/${at.blocks}` : ""}`);
  if (at.chunk !== undefined) parts.push(`chunk ${at.chunk}${at.chunks !== undefined ? `/${at.chunks}` : ""}`);
  if (at.layer !== undefined) parts.push(`layer ${at.layer}${at.layers !== undefined ? `/${at.layers}` : ""}`);
  if (!parts.length) return at.stage !== undefined ? `during ${at.stage}` : "";
  return `at ${parts.join(", ")}${at.stage !== undefined ? ` (${at.stage})` : ""}`;
}

function describeRequest(e: Extract<JobEvent, { type: "queued" }>): string {
  const p = e.job.params;
  const frames = `${p.numFrames} frame${p.numFrames === 1 ? "" : "s"}`;
  const prompt = p.prompt.length > 60 ? `${p.prompt.slice(0, 57)}...` : p.prompt;
  return `${p.height}x${p.width}, ${frames}, ${p.numInferenceSteps} step${p.numInferenceSteps === 1 ? "" : "s"}, seed ${p.seed}, ${JSON.stringify(prompt)}`;
}

/**
 * Writes a line for each event of `events` until the returned function is called. Progress is
 * written when the denoising steps cross another tenth of the job's steps, or `progressEveryMs`
 * after the job's previous line, whichever comes first.
 */
export function watchJobs(events: Queue["events"], o: JobConsoleOptions): () => void {
  const now = o.now ?? Date.now;
  const every = o.progressEveryMs ?? 10_000;
  // per running job: when its last line was written, and the tenth of its steps that line showed
  const shown = new Map<string, { at: number; tenth: number }>();
  const say = (id: string, what: string) => o.log(`wanlab serve: ${timestamp(now())} job ${id} ${clip(what, 1000)}`);

  const listener = (e: JobEvent) => {
    const j = e.job;
    switch (e.type) {
      case "queued":
        say(j.id, `accepted${e.client ? ` from ${e.client}` : ""}: ${describeRequest(e)}`);
        return;
      case "started": {
        shown.set(j.id, { at: now(), tenth: 0 });
        const waited = j.startedAt !== undefined ? (j.startedAt - j.submittedAt) / 1000 : undefined;
        say(j.id, `started${j.attempts > 1 ? ` (attempt ${j.attempts})` : ""}${waited !== undefined ? ` after ${formatSeconds(waited)} in the queue` : ""}`);
        return;
      }
      case "progress": {
        const p = e.progress;
        if (p.stage !== "denoise" || p.total <= 0) return;
        const last = shown.get(j.id) ?? { at: now(), tenth: 0 };
        const tenth = Math.floor((p.step * 10) / p.total);
        if (tenth <= last.tenth && now() - last.at < every) return;
        shown.set(j.id, { at: now(), tenth });
        const eta = p.step < p.total ? `, ETA ${formatSeconds(p.eta)} of denoising` : ", decoding";
        say(j.id, `step ${p.step}/${p.total} (${Math.floor((p.step * 100) / p.total)}%)${eta}`);
        return;
      }
      case "retry":
        say(j.id, `hit a transient error, retrying in ${formatSeconds(e.delayMs / 1000)}: ${e.error}`);
        return;
      case "done": {
        shown.delete(j.id);
        const took = j.startedAt !== undefined && j.endedAt !== undefined ? ` in ${formatSeconds((j.endedAt - j.startedAt) / 1000)}` : "";
        say(j.id, `done${took}: ${j.outputs?.[0] ?? "(no output)"}`);
        return;
      }
      case "failed":
        shown.delete(j.id);
        say(j.id, `failed: ${j.error ?? "(no reason given)"}${e.field ? ` (field ${e.field})` : ""}`);
        return;
      case "cancelled": {
        shown.delete(j.id);
        const where = e.at ? whereStopped(e.at) : "";
        // Every cancel line starts "cancelled", also when the stop came outside the engine (an
        // abort while the job waited or wrote its outputs), whose message may not say so.
        const why = j.error ?? "";
        say(j.id, where ? `cancelled ${where}` : why.startsWith("cancelled") ? why : `cancelled${why ? `: ${why}` : ""}`);
        return;
      }
      case "requeued":
        shown.delete(j.id);
        say(j.id, `re-queued${e.reason ? `: ${e.reason}` : ""}`);
        return;
    }
  };
  events.on("event", listener);
  return () => events.off("event", listener);
}

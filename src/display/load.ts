// The load bar wan.open() shows: one row per stage (the native model load with the device group,
// then the tokenizer; or the connection to a server), each with its measured time, the running
// one ticking. The fill is the share of stages done: the engine does not report progress inside
// a stage, so the bar does not pretend to.
import type { LoadEvent } from "../shared/lab.js";
import { escapeHtml, newDisplayId, publish } from "./mime.js";
import { barBundle, fmtSeconds } from "./progress.js";

export interface LoadStage {
  stage: string;
  /** What the stage does, as the row says it. */
  label: string;
}

export interface NotebookLoad {
  onLoad(e: LoadEvent | { stage: string; state: "start" | "done"; seconds?: number }): void;
  /** Seconds per finished stage. */
  readonly seconds: Readonly<Record<string, number>>;
  finish(message: string, ok: boolean): void;
}

/** A live load bar in the current cell; does nothing outside the kernel. */
export function notebookLoad(label: string, stages: LoadStage[], tickMs = 500): NotebookLoad {
  const id = newDisplayId();
  let shown = false;
  const seconds: Record<string, number> = {};
  let running: { stage: string; t0: number } | undefined;
  let timer: NodeJS.Timeout | undefined;

  const rows = () =>
    stages.map((s) => {
      const done = seconds[s.stage];
      const state = done !== undefined ? `✓ ${fmtSeconds(done)}` : running?.stage === s.stage ? `… ${fmtSeconds((performance.now() - running.t0) / 1000)}` : "·";
      return { s, state };
    });
  const render = (text: string, ok: boolean | undefined) => {
    const r = rows();
    const fraction = Object.keys(seconds).length / stages.length;
    const html =
      `<table style="font:11px monospace;border-collapse:collapse;margin-top:4px">` +
      r.map(({ s, state }) => `<tr><td style="padding:0 8px 0 0">${escapeHtml(s.stage)}</td><td style="padding:0 8px 0 0;color:#777">${escapeHtml(s.label)}</td><td>${escapeHtml(state)}</td></tr>`).join("") +
      `</table>`;
    const color = ok === undefined ? "#4a90d9" : ok ? "#5cb85c" : "#d9534f";
    const b = barBundle(label, text, ok ? 1 : fraction, color, { html, text: r.map(({ s, state }) => `  ${s.stage} (${s.label}): ${state}`).join("\n") });
    shown = publish(b, { displayId: id, update: shown }) || shown;
  };
  const stopTimer = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };
  return {
    seconds,
    onLoad(e) {
      if (e.state === "start") {
        running = { stage: e.stage, t0: performance.now() };
        stopTimer();
        timer = setInterval(() => render(`loading: ${e.stage}`, undefined), tickMs);
        timer.unref();
        render(`loading: ${e.stage}`, undefined);
      } else {
        seconds[e.stage] = e.seconds ?? (running ? (performance.now() - running.t0) / 1000 : 0);
        running = undefined;
        stopTimer();
        render(`loaded ${e.stage}`, undefined);
      }
    },
    finish(message, ok) {
      stopTimer();
      running = undefined;
      render(message, ok);
    },
  };
}

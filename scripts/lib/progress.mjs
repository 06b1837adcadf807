// Progress of a script's jobs as they finish: n/N, elapsed time, an ETA from the mean time per
// finished job, and the failures so far. On a terminal one status line is redrawn in place
// (failures stay printed above it); elsewhere (logs, CI) one line per finished job.

/** 75 → "1m15s"; 3.2 → "3.2s"; 4000 → "1h06m". */
export function duration(s) {
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * `progress(total)` → { finished(ok, what, count = 1), end() }. `what` names the job (its line,
 * its grid point) and how it ended; `count` jobs ended that way (a bench layout that could not
 * start skips all its sizes). The status reads
 * `[3/8] 12.4s elapsed, ETA 20.7s, 1 failed: cfg 3, seed 1: done`.
 */
export function progress(total, { stream = process.stderr, now = () => performance.now() } = {}) {
  const t0 = now();
  const tty = Boolean(stream.isTTY);
  let n = 0;
  let failed = 0;
  let drawn = false;
  return {
    finished(ok, what, count = 1) {
      n += count;
      if (!ok) failed += count;
      const elapsed = (now() - t0) / 1000;
      const eta = n < total ? `, ETA ${duration((elapsed / n) * (total - n))}` : "";
      const line = `[${n}/${total}] ${duration(elapsed)} elapsed${eta}, ${failed} failed: ${what}`;
      if (!tty) return void stream.write(`${line}\n`);
      const cols = stream.columns ?? 100;
      if (!ok) stream.write(`\r\x1b[K${what}\n`);
      // Longer than the terminal is wide, it would wrap and the next redraw would not cover it.
      const plain = line.replace(/\x1b\[[0-9;]*m/g, "");
      stream.write(`\r\x1b[K${plain.length > cols - 1 ? `${plain.slice(0, cols - 2)}…` : line}`);
      drawn = true;
    },
    /** Ends the in-place line (call before printing anything else). */
    end() {
      if (drawn) stream.write("\n");
      drawn = false;
    },
  };
}

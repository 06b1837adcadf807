// Progress for long work in a terminal: a bar redrawn in place on a TTY, plain lines otherwise
// (logs, CI, pipes), throttled so fast updates cost nothing.
import type { WriteStream } from "node:tty";

export interface ProgressReporter {
  /** fraction in [0, 1]; message describes the current piece of work. */
  update(fraction: number, message: string): void;
  done(message?: string): void;
}

/** The bars drawn in place and not yet done: each stream's unfinished line. */
const drawn = new Map<NodeJS.WriteStream, () => void>();

/** Erases any bar left drawn in place (a TTY's unfinished line), so that an error or a message
 * printed next starts on a clean line: `wanlab` calls it before printing a command's error. */
export function clearProgress(): void {
  for (const erase of [...drawn.values()]) erase();
}

export function terminalProgress(label: string, stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  const tty = (stream as WriteStream).isTTY === true;
  const start = Date.now();
  let lastDraw = 0;
  let lastLine = "";
  const elapsed = () => (Date.now() - start) / 1000;
  const erase = () => {
    stream.write("\r\x1b[K");
    lastLine = "";
    drawn.delete(stream);
  };
  return {
    update(fraction, message) {
      const f = Math.min(1, Math.max(0, fraction));
      const now = Date.now();
      if (tty) {
        if (now - lastDraw < 100 && f < 1) return;
        lastDraw = now;
        const width = 24;
        const filled = Math.round(f * width);
        const eta = f > 0 ? (elapsed() * (1 - f)) / f : NaN;
        const etaText = Number.isFinite(eta) ? ` ETA ${eta.toFixed(0)}s` : "";
        const cols = (stream as WriteStream).columns ?? 100;
        const line = `${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(f * 100).toFixed(0).padStart(3)}% ${elapsed().toFixed(1)}s${etaText} ${message}`;
        stream.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, lastLine.length))}`);
        lastLine = line;
        drawn.set(stream, erase);
      } else {
        const line = `${label}: ${(f * 100).toFixed(0)}% ${message}`;
        if (line !== lastLine) stream.write(line + "\n");
        lastLine = line;
      }
    },
    done(message = "done") {
      if (drawn.get(stream) === erase) drawn.delete(stream);
      const line = `${label}: ${message} in ${elapsed().toFixed(1)}s`;
      stream.write(tty ? `\r${line.padEnd(Math.min(((stream as WriteStream).columns ?? 100) - 1, lastLine.length))}\n` : line + "\n");
    },
  };
}

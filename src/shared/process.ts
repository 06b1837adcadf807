// Running a program to its exit and collecting what it printed: the engine binary (benchmarks,
// load measurements, in fresh processes so their memory figures are their own) and ffmpeg
// (decoding, GIFs, its version probe).
import { spawn } from "node:child_process";

export interface Collected {
  /** The exit code; null when a signal ended it. */
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs `path args` to its exit with `input` on stdin (else no stdin) and collects its stdout and
 * stderr. Rejects only when the program cannot be started; the exit code is the caller's to judge.
 */
export function collect(path: string, args: readonly string[], options: { input?: Uint8Array; env?: NodeJS.ProcessEnv } = {}): Promise<Collected> {
  return new Promise((resolve, reject) => {
    const child = spawn(path, args, { env: options.env ?? process.env, stdio: [options.input ? "pipe" : "ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    if (options.input) {
      child.stdin!.on("error", () => {}); // a program that fails closes stdin early; its exit code says why
      child.stdin!.end(options.input);
    }
  });
}

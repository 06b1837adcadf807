// The job journal: an append-only JSONL file, fsync'd before a request is answered, so an
// accepted job survives a crash. Appends are group-committed: records that arrive while a
// sync is in flight share the next write + fsync, so a burst of submissions costs a few
// syncs, not one each. A record is never written after a partial line: a torn tail left by a
// crash is cut off at start (repairJournal, the bytes kept aside), and a failed write is
// truncated back to the last whole record before the next one.
import { open, readFile, rename, writeFile, type FileHandle } from "node:fs/promises";
import type { ResolvedJson } from "./outputs.js";
import type { JobOptions } from "./schema.js";

export type JournalRecord =
  | { t: "submit"; id: string; at: number; params: ResolvedJson; options: JobOptions }
  | { t: "start"; id: string; at: number; attempt: number }
  | { t: "retry"; id: string; at: number; attempt: number; error: string }
  /** Back to the queue: after a graceful shutdown, or (interrupted) after a crash while running. */
  | { t: "requeue"; id: string; at: number; reason: string; interrupted?: boolean }
  | { t: "done"; id: string; at: number; outputs: string[] }
  | { t: "failed"; id: string; at: number; error: string }
  | { t: "cancelled"; id: string; at: number; reason?: string }
  /** DELETE of a running job, journalled before it is answered: a crash before the engine
   * stops leaves the job cancelled on restart, never run again. */
  | { t: "cancel"; id: string; at: number };

export interface Journal {
  readonly path: string;
  /** Resolves once the record is on disk. */
  append(record: JournalRecord): Promise<void>;
  close(): Promise<void>;
}

export async function openJournal(path: string): Promise<Journal> {
  const handle: FileHandle = await open(path, "a", 0o600);
  // The length of the whole records on disk: a write that fails half-way is cut back to it.
  let size = (await handle.stat()).size;
  let broken: Error | undefined;
  let closed = false;
  let pending: { line: string; done: () => void; fail: (e: Error) => void }[] = [];
  let flushing: Promise<void> | undefined;

  async function flush(): Promise<void> {
    while (pending.length) {
      const batch = pending;
      pending = [];
      if (broken) {
        for (const b of batch) b.fail(broken);
        continue;
      }
      const text = batch.map((b) => b.line).join("");
      try {
        await handle.appendFile(text);
        await handle.sync();
        size += Buffer.byteLength(text);
        for (const b of batch) b.done();
      } catch (e) {
        try {
          await handle.truncate(size); // no partial line for the next record to be glued onto
        } catch (t) {
          broken = new Error(`${path}: a write failed (${(e as Error).message}) and could not be cut back to the last whole record (${(t as Error).message}); no more records are written`);
        }
        for (const b of batch) b.fail(e as Error);
      }
    }
    flushing = undefined;
  }

  return {
    path,
    append(record) {
      if (closed) return Promise.reject(new Error(`${path}: the journal is closed`));
      return new Promise<void>((done, fail) => {
        pending.push({ line: JSON.stringify(record) + "\n", done, fail });
        flushing ??= flush();
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await flushing;
      await handle.close();
    },
  };
}

/**
 * A crash mid-append leaves a last line without its newline (or one that does not parse). It
 * was never acknowledged, so it is cut off here, before anything is appended after it; the
 * damaged bytes are kept in PATH.torn-<time> (returned, for the log). Damage before the last
 * line is not a torn tail and is left for readJournal to refuse.
 */
export async function repairJournal(path: string, now = new Date()): Promise<{ aside: string; bytes: number } | undefined> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  if (data.length === 0) return undefined;
  let keep: number;
  if (data[data.length - 1] !== 0x0a) {
    keep = data.lastIndexOf(0x0a) + 1; // 0 when the only line is torn
  } else {
    // a whole last line that is still not a record (e.g. zeros a crashed filesystem left)
    const prev = data.lastIndexOf(0x0a, data.length - 2) + 1;
    const last = data.subarray(prev, data.length - 1).toString("utf8");
    if (!last.trim()) return undefined;
    try {
      const r = JSON.parse(last) as { t?: unknown };
      if (r && typeof r === "object" && typeof r.t === "string") return undefined;
    } catch {
      /* torn */
    }
    keep = prev;
  }
  const aside = `${path}.torn-${now.toISOString().replace(/[:.]/g, "-")}`;
  await writeFile(aside, data.subarray(keep), { mode: 0o600, flag: "wx" });
  // rewrite the whole records aside and rename, so a crash here loses nothing either
  const tmp = `${path}.repair.tmp`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(data.subarray(0, keep));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  return { aside, bytes: data.length - keep };
}

/**
 * Reads the journal back. A torn last line (the process died mid-write, before the fsync that
 * would have acknowledged it) is skipped: its job was never accepted (serve() cuts it off with
 * repairJournal before appending).
 */
export async function readJournal(path: string): Promise<JournalRecord[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  const records: JournalRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    try {
      records.push(JSON.parse(line) as JournalRecord);
    } catch (e) {
      if (i >= lines.length - 2) continue; // the torn tail
      throw new Error(`${path}:${i + 1}: not a journal record: ${(e as Error).message}`);
    }
  }
  return records;
}

export type JobState = "queued" | "running" | "done" | "failed" | "cancelled";

export interface ReplayedJob {
  id: string;
  params: ResolvedJson;
  options: JobOptions;
  state: JobState;
  submittedAt: number;
  startedAt?: number;
  endedAt?: number;
  /** Starts that never ended (the server stopped while the job ran). */
  interrupted: number;
  /** A DELETE was accepted while it ran (it is cancelled on restore, never run again). */
  cancelRequested?: boolean;
  attempts: number;
  error?: string;
  outputs?: string[];
}

/** Folds the records into each job's last state, in submission order. */
export function replay(records: JournalRecord[]): ReplayedJob[] {
  const jobs = new Map<string, ReplayedJob>();
  for (const r of records) {
    if (r.t === "submit") {
      jobs.set(r.id, { id: r.id, params: r.params, options: r.options, state: "queued", submittedAt: r.at, interrupted: 0, attempts: 0 });
      continue;
    }
    const j = jobs.get(r.id);
    if (!j) continue;
    switch (r.t) {
      case "start":
        if (j.state === "running") j.interrupted++;
        j.state = "running";
        j.startedAt = r.at;
        j.attempts = r.attempt;
        break;
      case "retry":
        break; // still running: retried within the same start
      case "requeue":
        if (r.interrupted) j.interrupted++;
        j.state = "queued";
        break;
      case "done":
        Object.assign(j, { state: "done", endedAt: r.at, outputs: r.outputs });
        break;
      case "failed":
        Object.assign(j, { state: "failed", endedAt: r.at, error: r.error });
        break;
      case "cancelled":
        Object.assign(j, { state: "cancelled", endedAt: r.at, error: r.reason });
        break;
      case "cancel":
        j.cancelRequested = true;
        break;
    }
  }
  for (const j of jobs.values()) if (j.state === "running") j.interrupted++;
  return [...jobs.values()];
}

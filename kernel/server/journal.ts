// The job journal: an append-only JSONL file, fsync'd before a request is answered, so an
// accepted job survives a crash. Appends are group-committed: records that arrive while a
// sync is in flight share the next write + fsync, so a burst of submissions costs a few
// syncs, not one each.
import { open, readFile, type FileHandle } from "node:fs/promises";
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
  | { t: "cancelled"; id: string; at: number; reason?: string };

export interface Journal {
  readonly path: string;
  /** Resolves once the record is on disk. */
  append(record: JournalRecord): Promise<void>;
  close(): Promise<void>;
}

export async function openJournal(path: string): Promise<Journal> {
  const handle: FileHandle = await open(path, "a", 0o600);
  let pending: { line: string; done: () => void; fail: (e: Error) => void }[] = [];
  let flushing: Promise<void> | undefined;

  async function flush(): Promise<void> {
    while (pending.length) {
      const batch = pending;
      pending = [];
      try {
        await handle.appendFile(batch.map((b) => b.line).join(""));
        await handle.sync();
        for (const b of batch) b.done();
      } catch (e) {
        for (const b of batch) b.fail(e as Error);
      }
    }
    flushing = undefined;
  }

  return {
    path,
    append(record) {
      return new Promise<void>((done, fail) => {
        pending.push({ line: JSON.stringify(record) + "\n", done, fail });
        flushing ??= flush();
      });
    },
    async close() {
      await flushing;
      await handle.close();
    },
  };
}

/**
 * Reads the journal back. A torn last line (the process died mid-write, before the fsync that
 * would have acknowledged it) is skipped: its job was never accepted.
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
    }
  }
  for (const j of jobs.values()) if (j.state === "running") j.interrupted++;
  return [...jobs.values()];
}

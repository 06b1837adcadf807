// The runtime file: how clients find a running server. server.json holds { url, token, pid,
// pidStart, model }, mode 0600 in a directory only its owner can write, so only the user who
// started the server can read the token or replace the file.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { chmod, lstat, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface ServerInfo {
  url: string;
  token: string;
  pid: number;
  /** When the process `pid` started (/proc/PID/stat, clock ticks since boot): a pid reused by
   * another process after a crash has another start time. Absent where /proc is not. */
  pidStart?: string;
  model: string;
}

/** The start time of a process (field 22 of /proc/PID/stat), or undefined where unreadable. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** What runs as `pid` now, for messages (its command line, or "?"). */
function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ").slice(0, 200) || "?";
  } catch {
    return "?";
  }
}

/**
 * Whether the server that wrote `info` still runs: its pid is alive and, where server.json
 * recorded it, has the same start time (after a crash the pid can belong to anything).
 * Returns why not, for the log, or undefined when it runs.
 */
export function staleReason(info: ServerInfo): string | undefined {
  if (!alive(info.pid)) return `process ${info.pid} no longer exists`;
  if (info.pidStart !== undefined) {
    const now = processStart(info.pid);
    if (now !== undefined && now !== info.pidStart) return `process ${info.pid} is now another program (${commandOf(info.pid)}), started after the server that wrote it`;
  }
  return undefined;
}

/**
 * Creates the runtime directory (0700) or checks an existing one: it must be a directory owned
 * by this user that no one else can write (group/world-writable would let another user replace
 * server.json and capture the token). Such a directory is refused, not changed: it may be
 * shared with other programs.
 */
export async function checkRuntimeDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new Error(`runtime directory ${dir} is not a directory${st.isSymbolicLink() ? " (a symbolic link)" : ""}; set WANLAB_RUNTIME_DIR to a private directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`runtime directory ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}); set WANLAB_RUNTIME_DIR to a directory of yours`);
  if (st.mode & 0o022) {
    throw new Error(`runtime directory ${dir} has mode 0${(st.mode & 0o777).toString(8)}: others can write it and could replace server.json; run \`chmod 700 ${dir}\` or set WANLAB_RUNTIME_DIR to a private directory`);
  }
}

/** $WANLAB_RUNTIME_DIR, else $XDG_RUNTIME_DIR/wanlab, else ~/.local/share/wanlab/runtime. */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WANLAB_RUNTIME_DIR) return env.WANLAB_RUNTIME_DIR;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "wanlab");
  return join(homedir(), ".local", "share", "wanlab", "runtime");
}

export function serverFile(dir = runtimeDir()): string {
  return join(dir, "server.json");
}

/** Whether a process with this id exists (EPERM: it exists but is someone else's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function readServerFile(dir = runtimeDir()): Promise<ServerInfo | undefined> {
  let text: string;
  try {
    text = await readFile(serverFile(dir), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const info = JSON.parse(text) as ServerInfo;
  for (const k of ["url", "token", "model"] as const) {
    if (typeof info[k] !== "string") throw new Error(`${serverFile(dir)}: '${k}' must be a string`);
  }
  return info;
}

/** Written aside with mode 0600 and renamed, so a reader never sees half a file. */
export async function writeServerFile(info: ServerInfo, dir = runtimeDir()): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = serverFile(dir);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(info, null, 2) + "\n", { mode: 0o600 });
  await chmod(tmp, 0o600); // the umask cannot widen it, but an existing tmp could have other bits
  await rename(tmp, path);
  return path;
}

/** Removes server.json if it is still this process's (a newer server may have replaced it). */
export async function removeServerFile(dir = runtimeDir(), pid = process.pid): Promise<void> {
  const info = await readServerFile(dir).catch(() => undefined);
  if (info && info.pid !== pid) return;
  await rm(serverFile(dir), { force: true });
}

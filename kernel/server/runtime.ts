// The runtime file: how clients find a running server. server.json holds { url, token, pid,
// model }, mode 0600 in a 0700 directory, so only the user who started the server can read
// the token.
import { homedir } from "node:os";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface ServerInfo {
  url: string;
  token: string;
  pid: number;
  model: string;
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

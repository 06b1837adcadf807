// Output files that replace only what may be replaced. A target is a new path or a regular file
// (or a symbolic link to one, written through); anything else (a device node, a FIFO, a socket, a
// folder, a link to one of those or to nothing) is refused naming it, because writing aside and
// renaming over it would replace the node itself (`--output /dev/null` run as root would destroy
// /dev/null). Targets are checked before any compute (checkOutputFile, checkOutputDir: the folder
// exists and a probe file can be made in it), written aside (tempBeside) and put in place by
// commitFile, which checks the target again at that moment.
import { randomBytes } from "node:crypto";
import { closeSync, lstatSync, openSync, realpathSync, statSync, unlinkSync, type Stats } from "node:fs";
import { link, lstat, rename, rm, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";

/** An output target that cannot be written; `flag` names the option (or field) that gave it. */
export class OutputError extends Error {
  constructor(
    readonly flag: string,
    message: string,
  ) {
    super(message);
    this.name = "OutputError";
  }
}

/** What a file system entry is, in words ("a character device", "a FIFO"). */
export function kindOf(st: Stats): string {
  if (st.isFile()) return "a regular file";
  if (st.isDirectory()) return "a folder";
  if (st.isSymbolicLink()) return "a symbolic link";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if (code(e) === "ENOENT") return undefined;
    if (code(e) === "ENOTDIR") throw new NotDir();
    throw e;
  }
}

class NotDir extends Error {}

/**
 * The folder `dir` exists, is a folder and a file can be created in it (a probe file is made and
 * removed: this catches read-only mounts and permissions, as root too).
 */
export function checkWritableFolder(dir: string, flag: string, what: string): void {
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (e) {
    if (code(e) === "ENOENT" || code(e) === "ENOTDIR") throw new OutputError(flag, `${flag} ${what}: the folder ${dir} does not exist; create it first`);
    throw new OutputError(flag, `${flag} ${what}: the folder ${dir} cannot be read (${(e as Error).message})`);
  }
  if (!st.isDirectory()) throw new OutputError(flag, `${flag} ${what}: ${dir} is ${kindOf(st)}, not a folder`);
  const probe = join(dir, `.wanlab-probe-${randomBytes(6).toString("hex")}`);
  try {
    closeSync(openSync(probe, "wx", 0o600));
  } catch (e) {
    throw new OutputError(flag, `${flag} ${what}: the folder ${dir} is not writable (${code(e) ?? (e as Error).message})`);
  }
  unlinkSync(probe);
}

export interface OutputFileOptions {
  /** The option that named the path, for errors ("--output"). */
  flag: string;
  /** An existing regular file may be replaced (default: refused, naming the flag that allows it). */
  overwrite?: boolean;
  /** How to ask for overwriting, for the error (default "--overwrite"). */
  overwriteHint?: string;
}

/** What an output of each kind must be, and how a refusal of anything else ends ("… is a FIFO"
 * + `plain`; "… is a symbolic link to a folder" + `link`). */
const outputKinds = {
  file: { is: (st: Stats) => st.isFile(), link: "; only regular files are replaced", plain: "; only regular files (or new paths) are replaced" },
  folder: { is: (st: Stats) => st.isDirectory(), link: ", not a folder", plain: ", not a folder" },
} as const;

/**
 * What is at an output path: undefined for a new path (its folder checked writable), else
 * whether it is a symbolic link (to the right kind). Refuses, naming the flag: a path through a
 * non-folder, a link to nothing, and anything (or a link to anything) not of kind `what`.
 */
function existingOutput(abs: string, flag: string, what: keyof typeof outputKinds): { link: boolean } | undefined {
  let st: Stats | undefined;
  try {
    st = lstatOrUndefined(abs);
  } catch (e) {
    if (e instanceof NotDir) throw new OutputError(flag, `${flag} ${abs}: a part of the path before ${basename(abs)} is not a folder`);
    throw e;
  }
  if (st === undefined) {
    checkWritableFolder(dirname(abs), flag, abs);
    return undefined;
  }
  const kind = outputKinds[what];
  if (!st.isSymbolicLink()) {
    if (!kind.is(st)) throw new OutputError(flag, `${flag} ${abs} is ${kindOf(st)}${kind.plain}`);
    return { link: false };
  }
  let target: Stats;
  try {
    target = statSync(abs);
  } catch {
    throw new OutputError(flag, `${flag} ${abs} is a symbolic link to nothing; give the ${what}'s own path`);
  }
  if (!kind.is(target)) throw new OutputError(flag, `${flag} ${abs} is a symbolic link to ${kindOf(target)}${kind.link}`);
  return { link: true };
}

/**
 * Checks an output file before any compute; returns the absolute path to write (a symbolic link
 * to a regular file resolved to that file). Refuses, naming the flag and the path: anything but
 * a new path or a regular file, a missing or unwritable folder, and an existing file unless
 * `overwrite`.
 */
export function checkOutputFile(path: string, o: OutputFileOptions): string {
  const abs = resolve(path);
  const found = existingOutput(abs, o.flag, "file");
  if (found === undefined) return abs;
  if (found.link) return checkOutputFile(realpathSync(abs), o);
  if (!o.overwrite) throw new OutputError(o.flag, `${o.flag} ${abs} exists; give ${o.overwriteHint ?? "--overwrite"} to replace it`);
  checkWritableFolder(dirname(abs), o.flag, abs);
  return abs;
}

/**
 * Checks an output folder before any compute: a folder (or a link to one) that can be written, or
 * a new path in a folder that can; `files` are the names that will be written in it, each checked
 * as checkOutputFile checks one. Returns the absolute path.
 */
export function checkOutputDir(path: string, o: OutputFileOptions & { files?: string[] }): string {
  const abs = resolve(path);
  if (existingOutput(abs, o.flag, "folder") === undefined) return abs;
  checkWritableFolder(abs, o.flag, abs);
  for (const f of o.files ?? []) checkOutputFile(join(abs, f), o);
  return abs;
}

/** Two flags naming one file would overwrite each other: refused naming both. */
export function checkDistinct(targets: { flag: string; path: string }[]): void {
  const seen = new Map<string, string>();
  for (const t of targets) {
    const other = seen.get(t.path);
    if (other !== undefined) throw new OutputError(t.flag, `${other} and ${t.flag} name the same file ${t.path}; give each its own`);
    seen.set(t.path, t.flag);
  }
}

/** A new hidden name in the target's folder, for writing aside (same file system: rename is atomic). */
export function tempBeside(target: string): string {
  return join(dirname(target), `.${basename(target).slice(0, 64)}.${randomBytes(6).toString("hex")}.partial`);
}

/**
 * Puts the file written at `tmp` in place at `target`. At that moment the target must still be
 * absent or a regular file (lstat: a link is not followed); otherwise the new file is removed and
 * an OutputError names the target. Without `overwrite` an existing file is never replaced (the
 * file is linked into place, which fails when the name exists), and the new file is kept at `tmp`,
 * named in the error.
 */
export async function commitFile(tmp: string, target: string, o: OutputFileOptions): Promise<void> {
  let st: Stats | undefined;
  try {
    st = await lstat(target);
  } catch (e) {
    if (code(e) !== "ENOENT") throw e;
  }
  if (st !== undefined && !st.isFile()) {
    await rm(tmp, { force: true });
    throw new OutputError(o.flag, `${o.flag} ${target} is now ${kindOf(st)}; only regular files are replaced, nothing was written there`);
  }
  if (o.overwrite) {
    await rename(tmp, target);
    return;
  }
  try {
    await link(tmp, target);
  } catch (e) {
    if (code(e) === "EEXIST")
      throw new OutputError(o.flag, `${o.flag} ${target} appeared while this ran and is kept; the new file is at ${tmp}`);
    // A file system without hard links: the lstat above is the check.
    if (["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV"].includes(code(e) ?? "")) return void (await rename(tmp, target));
    throw e;
  }
  await unlink(tmp);
}

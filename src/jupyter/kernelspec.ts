// Registering the wanlab Jupyter kernel. The kernel.json holds absolute paths (this node, this
// package's kernel entry) so a kernel starts the same way whatever PATH Jupyter was launched with
// (tslab#34, #101). With a `jupyter` at hand its `kernelspec` command does the install, so the
// kernel lands where that Jupyter looks; without one the kernelspec directory is written directly.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const defaultKernelName = "wanlab";
export const displayName = "wanlab (TypeScript)";
/** The kernel's entry point: tslab with wanlab's display, interrupt and import wiring. */
export const kernelEntry = fileURLToPath(new URL("./start.js", import.meta.url));

/** Where a kernelspec goes: the user's data dir, a prefix, or the Python environment's prefix. */
export type Scope = { kind: "user" } | { kind: "prefix"; prefix: string } | { kind: "sys-prefix" } | { kind: "system" };

export interface InstallOptions {
  scope?: Scope;
  name?: string;
  /** The `jupyter` executable to use; default: `jupyter` on PATH; `false`: write the directory directly. */
  jupyter?: string | false;
  /** Environment for the kernel process (CUDA_VISIBLE_DEVICES, WANLAB_* settings). */
  env?: Record<string, string>;
  /** The node executable the kernel runs on; default: this one. */
  node?: string;
}

export interface KernelSpec {
  argv: string[];
  display_name: string;
  language: string;
  interrupt_mode: "signal";
  env?: Record<string, string>;
  metadata: { wanlab: { version: string } };
}

export interface InstalledKernel {
  name: string;
  dir: string;
  spec: KernelSpec;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

export function kernelSpec(options: Pick<InstallOptions, "env" | "node"> = {}): KernelSpec {
  const spec: KernelSpec = {
    argv: [options.node ?? process.execPath, kernelEntry, "--config-path", "{connection_file}"],
    display_name: displayName,
    language: "typescript",
    // Jupyter's ■ sends SIGINT; the kernel turns it into an AbortSignal for the running generation.
    interrupt_mode: "signal",
    metadata: { wanlab: { version: packageVersion() } },
  };
  if (options.env && Object.keys(options.env).length) spec.env = { ...options.env };
  return spec;
}

/** The `jupyter` to use, or undefined when there is none. */
export function findJupyter(explicit?: string): string | undefined {
  const candidate = explicit ?? "jupyter";
  const r = spawnSync(candidate, ["--version"], { encoding: "utf8" });
  if (r.status === 0) return candidate;
  if (explicit) throw new Error(`--jupyter ${explicit} does not run (\`${explicit} --version\` ${r.error ? (r.error as NodeJS.ErrnoException).code : `exited with ${r.status}`})`);
  return undefined;
}

function userDataDir(): string {
  if (process.env.JUPYTER_DATA_DIR) return process.env.JUPYTER_DATA_DIR;
  return join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "jupyter");
}

function pythonPrefix(): string {
  const r = spawnSync("python3", ["-c", "import sys; print(sys.prefix)"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error("--sys-prefix needs python3 (or a jupyter) to tell the environment's prefix");
  return r.stdout.trim();
}

/** The kernels directory a scope maps to when Jupyter is not asked. */
export function kernelsDir(scope: Scope): string {
  switch (scope.kind) {
    case "user":
      return join(userDataDir(), "kernels");
    case "prefix":
      return join(scope.prefix, "share", "jupyter", "kernels");
    case "sys-prefix":
      return join(pythonPrefix(), "share", "jupyter", "kernels");
    case "system":
      return "/usr/local/share/jupyter/kernels";
  }
}

/** As `jupyter kernelspec install` chooses: the user's directory unless root. */
export function defaultScope(): Scope {
  return process.getuid?.() === 0 ? { kind: "system" } : { kind: "user" };
}

function checkName(name: string): void {
  // Jupyter's rule for kernel names.
  if (!/^[a-z0-9._-]+$/i.test(name)) throw new Error(`kernel name must be letters, digits, '.', '_' or '-', got '${name}'`);
}

function scopeFlags(scope: Scope): string[] {
  if (scope.kind === "user") return ["--user"];
  if (scope.kind === "prefix") return ["--prefix", scope.prefix];
  if (scope.kind === "sys-prefix") return ["--sys-prefix"];
  return [];
}

/** Installs the kernelspec; returns where it went. */
export async function installKernel(options: InstallOptions = {}): Promise<InstalledKernel> {
  const name = options.name ?? defaultKernelName;
  checkName(name);
  const scope = options.scope ?? defaultScope();
  const spec = kernelSpec(options);
  const jupyter = options.jupyter === false ? undefined : findJupyter(options.jupyter);
  if (jupyter) {
    const tmp = await mkdtemp(join(tmpdir(), "wanlab-kernelspec-"));
    try {
      const src = join(tmp, name);
      await mkdir(src);
      await writeFile(join(src, "kernel.json"), JSON.stringify(spec, null, 2) + "\n");
      const r = spawnSync(jupyter, ["kernelspec", "install", "--replace", "--name", name, ...scopeFlags(scope), src], { encoding: "utf8" });
      // A Jupyter without jupyter_client's `kernelspec` (nbconvert-only installs) gets the directory
      // written directly, below.
      if (r.status === 0) {
        // It prints "Installed kernelspec NAME in DIR".
        const dir = /in (\S.*)$/m.exec(r.stderr + r.stdout)?.[1]?.trim() ?? join(kernelsDir(scope), name);
        return { name, dir, spec };
      }
      if (!/jupyter-kernelspec. not found/.test(r.stderr + r.stdout)) throw new Error(`${jupyter} kernelspec install failed: ${(r.stderr || r.stdout).trim()}`);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  const dir = join(kernelsDir(scope), name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "kernel.json"), JSON.stringify(spec, null, 2) + "\n");
  return { name, dir, spec };
}

function searchDirs(jupyter: string | undefined): string[] {
  if (jupyter) {
    const r = spawnSync(jupyter, ["--paths", "--json"], { encoding: "utf8" });
    if (r.status === 0) return (JSON.parse(r.stdout) as { data: string[] }).data.map((d) => join(d, "kernels"));
  }
  const dirs = [join(userDataDir(), "kernels")];
  try {
    dirs.push(kernelsDir({ kind: "sys-prefix" }));
  } catch {
    // no python: nothing more to look in there
  }
  dirs.push("/usr/local/share/jupyter/kernels", "/usr/share/jupyter/kernels");
  return [...new Set(dirs)];
}

/** Every wanlab kernelspec Jupyter would see (kernel.json with metadata.wanlab). */
export function listKernels(options: { jupyter?: string | false; scope?: Scope } = {}): InstalledKernel[] {
  const jupyter = options.jupyter === false ? undefined : findJupyter(options.jupyter);
  const out: InstalledKernel[] = [];
  // A --prefix install is invisible to Jupyter's own search path unless asked for.
  const dirs = options.scope ? [kernelsDir(options.scope)] : searchDirs(jupyter);
  for (const base of dirs) {
    if (!existsSync(base)) continue;
    for (const name of readdirSync(base)) {
      const file = join(base, name, "kernel.json");
      if (!existsSync(file)) continue;
      try {
        const spec = JSON.parse(readFileSync(file, "utf8")) as KernelSpec;
        if (spec.metadata?.wanlab) out.push({ name, dir: join(base, name), spec });
      } catch {
        // a broken kernel.json of another kernel is not ours to report
      }
    }
  }
  return out;
}

/** Removes the named wanlab kernelspec wherever it is installed; returns the directories removed. */
export async function uninstallKernel(options: { name?: string; jupyter?: string | false; scope?: Scope } = {}): Promise<string[]> {
  const name = options.name ?? defaultKernelName;
  checkName(name);
  const found = listKernels(options).filter((k) => k.name === name);
  for (const k of found) await rm(k.dir, { recursive: true, force: true });
  return found.map((k) => k.dir);
}

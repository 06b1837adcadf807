// `wanlab kernel install|uninstall|list`: the Jupyter kernelspec of the notebook kernel (src/jupyter/).
import { resolve as resolvePath } from "node:path";
import { help, parseCommand, UsageError } from "./parse.js";
import { didYouMean } from "./suggest.js";

export async function cmdKernel(args: string[]): Promise<number> {
  const { installKernel, listKernels, uninstallKernel } = await import("../jupyter/kernelspec.js");
  const what = args[0]?.startsWith("-") || args[0] === "help" ? undefined : args[0];
  const rest = what === undefined ? args : args.slice(1);
  const v = parseCommand(rest, "kernel-install", "kernel-uninstall", "kernel-list").values;
  if (v.help || !what) return help("kernel-install", "kernel-uninstall", "kernel-list");
  const scopes = [v.user && "--user", v.prefix !== undefined && "--prefix", v["sys-prefix"] && "--sys-prefix"].filter(Boolean);
  if (scopes.length > 1) throw new UsageError(`${scopes.join(" and ")} exclude each other`);
  const scope = v.user ? { kind: "user" as const } : v.prefix !== undefined ? { kind: "prefix" as const, prefix: resolvePath(v.prefix as string) } : v["sys-prefix"] ? { kind: "sys-prefix" as const } : undefined;
  const jupyter = v["no-jupyter"] ? (false as const) : (v.jupyter as string | undefined);
  if (what === "install") {
    const env: Record<string, string> = {};
    for (const kv of (v.env as unknown as string[] | undefined) ?? []) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(kv);
      if (!m) throw new UsageError(`--env must be NAME=VALUE, got '${kv}'`);
      env[m[1]!] = m[2]!;
    }
    const k = await installKernel({ scope, name: v.name as string | undefined, jupyter, env });
    console.log(`installed kernel '${k.name}' ("${k.spec.display_name}") in ${k.dir}`);
    return 0;
  }
  if (what === "uninstall") {
    const removed = await uninstallKernel({ name: v.name as string | undefined, jupyter, scope });
    if (!removed.length) throw new Error(`no wanlab kernel named '${(v.name as string | undefined) ?? "wanlab"}' is installed`);
    for (const d of removed) console.log(`removed ${d}`);
    return 0;
  }
  if (what === "list") {
    const ks = listKernels({ jupyter, scope });
    if (v.json) console.log(JSON.stringify(ks, null, 2));
    else for (const k of ks) console.log(`${k.name}\t${k.dir}\t${k.spec.argv[0]} ${k.spec.argv[1]}`);
    return 0;
  }
  throw new UsageError(`kernel needs install, uninstall or list (got '${what}')${didYouMean(what, ["install", "uninstall", "list"])}`);
}

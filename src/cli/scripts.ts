// `wanlab sweep ...`, `wanlab batch ...` and `wanlab fork ...`: the package's zx scripts
// (scripts/sweep.mjs, scripts/batch.mjs, scripts/fork.mjs) run from wherever the package is installed, so `npx wanlab sweep --help`
// works without a checkout. The script gets the arguments as given, this terminal, and its exit
// status comes back as the command's (a signal that ended it as 128 + its number).
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";

/** The scripts `wanlab NAME` runs, with what each does (for `wanlab help`). */
export const scriptTable = {
  sweep: "a parameter sweep on a server (cfg × shift × steps × TeaCache × strength × seeds): videos, manifests, a labelled contact sheet and an offline report under --out",
  batch: "one job per line of a prompts file or JSONL on a server: videos, manifests, an index, a labelled contact sheet and an offline report under --out",
  fork: "one run to step K on a local engine, then continued on a server once per prompt × cfg × TeaCache: the fork file, videos, manifests and a labelled contact sheet under --out",
} as const;

export type ScriptName = keyof typeof scriptTable;

/** The script's file in this package (dist/src/cli → scripts/). */
export function scriptPath(name: ScriptName): string {
  return fileURLToPath(new URL(`../../../scripts/${name}.mjs`, import.meta.url));
}

/** Runs scripts/NAME.mjs with `args` under this node; resolves with its exit status. SIGINT,
 * SIGTERM and SIGHUP sent to this process go on to the script, which decides how to stop. */
export function runScript(name: ScriptName, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [scriptPath(name), ...args], { stdio: "inherit" });
    const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
    const forward = (s: NodeJS.Signals) => child.kill(s);
    for (const s of signals) process.on(s, forward);
    const done = () => signals.forEach((s) => process.off(s, forward));
    child.on("error", (e) => {
      done();
      reject(e);
    });
    child.on("exit", (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

/** The commands, for the dispatcher's table. */
export const scriptCommands: Record<ScriptName, (args: string[]) => Promise<number>> = {
  sweep: (args) => runScript("sweep", args),
  batch: (args) => runScript("batch", args),
  fork: (args) => runScript("fork", args),
};

/** Their lines in `wanlab help`, wrapped as the table's commands are (within 100 columns). */
export function scriptsUsage(width = 100): string[] {
  const out: string[] = [];
  for (const [name, about] of Object.entries(scriptTable)) {
    out.push(`  ${name} [flags]   (scripts/${name}.mjs; \`wanlab ${name} --help\` for its flags)`);
    let line = "     ";
    for (const word of about.split(" ")) {
      if (line.length + 1 + word.length > width) {
        out.push(line);
        line = "     ";
      }
      line += ` ${word}`;
    }
    out.push(line);
  }
  return out;
}

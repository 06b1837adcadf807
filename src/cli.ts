// The `wanlab` command line: the dispatcher. Each command (src/cli/) parses its own options
// strictly (an unknown or malformed option is an error naming it) and returns an exit code:
// 0 ok, 1 failed, 2 usage.
import { readFileSync } from "node:fs";
import { ParamError } from "./params.js";
import { OutputError } from "./fs/safe-output.js";
import { paramSchemas } from "./server/schema.js";
import { usageText } from "./options/usage.js";
import { cmdBench } from "./cli/bench.js";
import { cmdDemo } from "./cli/demo.js";
import { cmdGenerate } from "./cli/generate.js";
import { cmdDoctor, cmdInspect, cmdMakeTiny } from "./cli/inspect.js";
import { cmdKernel } from "./cli/kernel.js";
import { help, UsageError } from "./cli/parse.js";
import { didYouMean } from "./cli/suggest.js";
import type { Command } from "./options/table.js";
import { cmdServe } from "./cli/serve.js";
import { scriptCommands, scriptsUsage } from "./cli/scripts.js";
import { clearProgress } from "./terminal/progress.js";

/** `wanlab help`: made from the option table (src/options/table.ts), as each command's --help is. */
const usage = [usageText(), "", "scripts (the package's zx scripts; each takes --help):", ...scriptsUsage()].join("\n");

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

const commands: Record<string, (args: string[]) => Promise<number>> = {
  doctor: cmdDoctor,
  kernel: cmdKernel,
  demo: cmdDemo,
  generate: cmdGenerate,
  inspect: cmdInspect,
  "make-tiny": cmdMakeTiny,
  bench: cmdBench,
  serve: cmdServe,
  ...scriptCommands,
};

/** The table's commands behind each command word, for `wanlab help COMMAND`. */
const helpOf: Record<string, Command[]> = {
  doctor: ["doctor"], kernel: ["kernel-install", "kernel-uninstall", "kernel-list"], demo: ["demo"], generate: ["generate"], inspect: ["inspect"],
  "make-tiny": ["make-tiny"], bench: ["bench-model", "bench-load", "bench-parallel", "bench-projection"], serve: ["serve"],
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    const topic = cmd === "help" ? args[0] : undefined;
    if (topic !== undefined) {
      if (Object.hasOwn(scriptCommands, topic)) return scriptCommands[topic as keyof typeof scriptCommands](["--help"]);
      if (!helpOf[topic]) return unknownCommand(topic);
      return help(...helpOf[topic]!);
    }
    console.log(usage);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === "--version") {
    console.log(version());
    return 0;
  }
  const run = commands[cmd];
  if (!run) return unknownCommand(cmd);
  try {
    return await run(args);
  } catch (e) {
    clearProgress();
    if (e instanceof ParamError) {
      // Parameter names become their flags: the field, and any other camelCase one the message names.
      const field = e.field;
      const flag = (name: string) => "--" + name.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
      const named = Object.keys(paramSchemas).filter((k) => /[A-Z]/.test(k) && k !== field);
      const text = e.message.replace(field, flag(field)).replace(new RegExp(`\\b(${named.join("|")})\\b`, "g"), flag);
      console.error(`wanlab ${cmd}: ${text}`);
      return 2;
    }
    if (e instanceof UsageError || e instanceof OutputError) {
      console.error(`wanlab ${cmd}: ${e.message}`);
      return 2;
    }
    console.error(`wanlab ${cmd}: ${(e as Error).message}`);
    return 1;
  }
}

/** `wanlab generat`: the nearest command, and where the list is. */
function unknownCommand(cmd: string): number {
  const known = [...Object.keys(commands), "help"];
  const option = cmd.startsWith("-");
  const near = option ? didYouMean(cmd.replace(/^--?/, ""), ["help", "version"], "--") : didYouMean(cmd, known);
  console.error(`wanlab: unknown ${option ? "option" : "command"} ${cmd}${near}\nRun \`wanlab help\` for the commands: ${known.join(", ")}.`);
  return 2;
}

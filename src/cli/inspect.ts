// `wanlab inspect` (what a model folder is and what a run of it would need), `wanlab make-tiny`
// (a small random model folder) and `wanlab doctor` (what this machine can run).
import { lstatSync, statSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { inspect, makeTiny, type Dims, type Layout } from "../models.js";
import { kindOf, OutputError } from "../fs/safe-output.js";
import { choicesOf, rangeOf } from "../options/table.js";
import { formatBytes } from "../terminal/format.js";
import { formatInspect } from "../terminal/inspect.js";
import { terminalProgress } from "../terminal/progress.js";
import { budgetOption, choice, countOption, help, intOption, layoutOpenOptions, numberOption, parseCommand, UsageError } from "./parse.js";
import { loraOptions } from "./generate.js";

export async function cmdInspect(args: string[]): Promise<number> {
  const { values: v, positionals } = parseCommand(args, "inspect");
  if (v.help) return help("inspect");
  const given = {
    t5Device: choice("t5-device", v["t5-device"] as string | undefined, choicesOf("inspect", "t5-device")),
    t5Offload: v["t5-offload"] === true,
    tiled: v.tiled === true,
    shardWeights: v["shard-weights"] === true,
    persistentParams: countOption("persistent-params", v["persistent-params"] as string | undefined),
  };
  const report = await inspect(positionals[0]!, {
    ...layoutOpenOptions(v),
    height: intOption("height", v.height as string | undefined, ...rangeOf("inspect", "height")),
    width: intOption("width", v.width as string | undefined, ...rangeOf("inspect", "width")),
    numFrames: intOption("num-frames", v["num-frames"] as string | undefined, ...rangeOf("inspect", "num-frames")),
    budget: budgetOption(v.budget),
    loras: loraOptions(v.lora),
    ...given,
  });
  console.log(v.json ? JSON.stringify(report, null, 2) : formatInspect(report, given));
  // --layout auto: the degrees above, and which rule picked each.
  if (!v.json && report.memory.layout_reason) console.log(`layout ${report.memory.layout_reason}`);
  // What generate would refuse (a tokenizer.json missing or bad) is a problem here too.
  for (const p of report.problems) console.error(`wanlab inspect: ${p}`);
  // A budget that nothing fits (not even with every DiT block streamed) fails, as a run would.
  const budget = report.memory.budget;
  const fits = !budget || budget.fits || budget.persistent_params >= 0;
  if (!fits) console.error(`wanlab inspect: the budget ${formatBytes(budget.bytes)} does not fit this video, not even with every DiT block streamed`);
  return report.problems.length || !fits ? 1 : 0;
}

export async function cmdMakeTiny(args: string[]): Promise<number> {
  const { values: v, positionals } = parseCommand(args, "make-tiny");
  if (v.help) return help("make-tiny");
  const layout = choice("layout", v.layout as string | undefined, choicesOf<Layout>("make-tiny", "layout")) ?? "official";
  const dims = choice("dims", v.dims as string | undefined, choicesOf<Dims>("make-tiny", "dims")) ?? "tiny";
  const seed = intOption("seed", v.seed as string | undefined, ...rangeOf("make-tiny", "seed")) ?? 0;
  // OUT is a model folder: a device node, FIFO or file there is named (and left alone) at once.
  const st = lstatSync(positionals[0]!, { throwIfNoEntry: false });
  if (st && !st.isDirectory() && !(st.isSymbolicLink() && statSync(positionals[0]!, { throwIfNoEntry: false })?.isDirectory()))
    throw new OutputError("OUT", `OUT ${resolvePath(positionals[0]!)} is ${kindOf(st)}, not a folder; make-tiny writes a model folder there`);
  const progress = terminalProgress(`make-tiny ${layout}`);
  await makeTiny(positionals[0]!, { layout, dims, seed, onProgress: (file, f) => progress.update(f, file) });
  progress.done(`wrote ${positionals[0]}`);
  return 0;
}

/** `wanlab doctor [--json]`: src/doctor.ts; exit 1 when a problem is found. With --devices or
 * --rendezvous (and --nnodes, --node-rank, --timeout S): the group's pre-flight check and its links
 * measured (checkLinks); a check that fails throws, naming the rank, and exits 1. */
export async function cmdDoctor(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "doctor");
  if (v.help) return help("doctor");
  const { doctor, doctorText, checkLinks, linksText } = await import("../doctor.js");
  if (v.devices !== undefined || v.rendezvous !== undefined) {
    const timeoutS = numberOption("timeout", v.timeout, "(0, 86400]");
    if (timeoutS !== undefined && !(timeoutS > 0 && timeoutS <= 86400)) throw new UsageError(`--timeout must be seconds in (0, 86400], got ${v.timeout}`);
    const links = await checkLinks({
      devices: v.devices as string | undefined,
      transport: v.transport as "gloo" | "nccl" | undefined,
      rendezvous: v.rendezvous as string | undefined,
      nnodes: intOption("nnodes", v.nnodes as string | undefined, ...rangeOf("doctor", "nnodes")),
      nodeRank: intOption("node-rank", v["node-rank"] as string | undefined, ...rangeOf("doctor", "node-rank")),
      timeoutS,
    });
    console.log(v.json ? JSON.stringify(links, null, 2) : linksText(links));
    return 0;
  }
  for (const flag of ["nnodes", "node-rank", "timeout", "transport"] as const)
    if (v[flag] !== undefined) throw new UsageError(`--${flag} goes with --devices or --rendezvous (the link check)`);
  const r = await doctor();
  console.log(v.json ? JSON.stringify(r, null, 2) : doctorText(r));
  return r.ok ? 0 : 1;
}

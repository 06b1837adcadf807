// The parsing glue every command shares: strict flag parsing against the option table
// (src/options/table.ts), the value parsers whose errors name the flag, the value and what is
// allowed, and the flag groups that become OpenOptions fields. A UsageError exits 2.
import { parseArgs } from "node:util";
import type { OpenOptions } from "../engine.js";
import { choicesOf, commandTable, rangeOf, rowsOf, type Command } from "../options/table.js";
import { commandHelp, flagText, parseOptionsOf, type ParseOptions } from "../options/usage.js";
import { didYouMean } from "./suggest.js";

export class UsageError extends Error {}

type Options = ParseOptions;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Parses a command's flags (the option table's rows for it; `kernel` parses its subcommands' at once). */
export function parseCommand(args: string[], ...cmds: Command[]): Parsed {
  return parse(args, parseOptionsOf(...cmds), commandTable[cmds[0]!].positionals, cmds);
}

const rowsOfCommands = (cmds: Command[]) => cmds.flatMap((c) => rowsOf(c));

function parse(args: string[], options: Options, positionals: readonly string[], cmds: Command[]): Parsed {
  let parsed: Parsed;
  let tokens: { kind: string; name?: string }[];
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true, tokens: true });
    parsed = r as unknown as Parsed;
    tokens = r.tokens ?? [];
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") throw unknownOption(args, options);
    const name = /'--?([\w-]+)/.exec((e as Error).message)?.[1];
    const row = name === undefined ? undefined : rowsOfCommands(cmds).find((r) => r.flag === name);
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && row)
      throw new UsageError(row.type === "boolean" ? `--${name} is a switch and takes no value` : `--${name} needs a value: ${flagText(row)}`);
    throw new UsageError((e as Error).message);
  }
  // A flag given twice would silently keep the last value: an error unless it is repeatable.
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== "option" || t.name === undefined || t.name === "help" || options[t.name]?.multiple) continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name} is given more than once; give it once`);
    seen.add(t.name);
  }
  if (!parsed.values.help && parsed.positionals.length !== positionals.length) {
    const got = parsed.positionals.length ? parsed.positionals.map((p) => `'${p}'`).join(" ") : "nothing";
    throw new UsageError(positionals.length ? `expected ${positionals.join(" ")}, got ${got}` : `takes no arguments, got ${got}`);
  }
  return parsed;
}

/** The usage error for the first flag `options` does not have, naming the nearest one it has:
 * "unknown option --stesp; did you mean --steps?". */
function unknownOption(args: string[], options: Options): UsageError {
  const { tokens = [] } = parseArgs({ args, options, allowPositionals: true, strict: false, tokens: true });
  const known = [...Object.keys(options), "help"];
  for (const t of tokens) {
    if (t.kind !== "option" || known.includes(t.name) || (t.name === "h" && t.rawName === "-h")) continue;
    return new UsageError(`unknown option ${t.rawName}${didYouMean(t.name, known, "--")}`);
  }
  return new UsageError("unknown option");
}

/** A decimal integer, nothing else: no sign but '-', no spaces, hex, exponent or fraction. */
const decimalInteger = /^-?\d+$/;
/** A decimal number: digits with an optional fraction and exponent; no '+', spaces, hex or Infinity. */
const decimalNumber = /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;

/** Parses an integer option; errors name the option, the value and the allowed range. */
export function intOption(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!decimalInteger.test(value)) throw new UsageError(`--${name} must be an integer, got '${value}' (a decimal integer from ${min} to ${max})`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${value}`);
  return n;
}

/** The syntax of an integer option whose range a later check holds (resolveParams): the number,
 * or a usage error naming the option, the value and the range. */
export function intSyntax(name: string, value: string | boolean | undefined, range: readonly [number, number]): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !decimalInteger.test(value))
    throw new UsageError(`--${name} must be an integer, got '${value}' (a decimal integer from ${range[0]} to ${range[1]})`);
  return Number(value);
}

export function choice<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${name} must be one of ${allowed.join(", ")}, got '${value}'`);
  return value as T;
}

/** --budget BYTES (24G, 7e9) or auto. */
export function budgetOption(value: string | boolean | undefined, orNone = false): number | "auto" | undefined {
  if (value === "auto" || value === undefined) return value;
  try {
    return countOption("budget", value as string);
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`--budget must be bytes like 24G, 7e9 or 7000000000, ${orNone ? "auto or none" : "or auto"}, got '${value}'`);
    throw e;
  }
}

/** --devices, --ulysses, --ring, --cfg-parallel as OpenOptions fields. */
export function layoutOpenOptions(v: Parsed["values"]): Pick<OpenOptions, "devices" | "ulysses" | "ring" | "cfgParallel" | "layout"> {
  return {
    devices: v.devices as string | undefined,
    layout: choice("layout", v.layout as string | undefined, choicesOf<"auto">("generate", "layout")),
    ulysses: intOption("ulysses", v.ulysses as string | undefined, ...rangeOf("generate", "ulysses")),
    ring: intOption("ring", v.ring as string | undefined, ...rangeOf("generate", "ring")),
    cfgParallel: v["cfg-parallel"] === true,
  };
}

/** A count with an optional K/M/G suffix (powers of 10; "24G" = 24e9; "7e9" too). */
export function countOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)([KMG]?)$/i.exec(value);
  if (!m) throw new UsageError(`--${name} must be a count like 24G, 7e9 or 7000000000, got '${value}'`);
  const scale = { "": 1, K: 1e3, M: 1e6, G: 1e9 }[m[2]!.toUpperCase() as "" | "K" | "M" | "G"];
  const n = Math.round(Number(m[1]) * scale);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} must be a count like 24G, 7e9 or 7000000000, at most 2^53, got '${value}'`);
  return n;
}
export type Dtype = NonNullable<OpenOptions["dtype"]>;

export function deviceOption(name: string, value: string | boolean | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^(cpu|cuda|cuda:\d{1,3})$/.test(value)) throw new UsageError(`--${name} must be cpu, cuda or cuda:N, got '${value}'`);
  return value;
}

/** --dtype f32|bf16|f16, --t5-device DEV, --t5-offload, --vae-device DEV, --persistent-params N,
 * --shard-weights, --budget BYTES as OpenOptions fields. */
export function computeOpenOptions(v: Parsed["values"]): Pick<OpenOptions, "dtype" | "t5Device" | "t5Offload" | "vaeDevice" | "persistentParams" | "shardWeights" | "budget"> {
  return {
    budget: budgetOption(v.budget),
    dtype: choice("dtype", v.dtype as string | undefined, choicesOf<Dtype>("generate", "dtype")),
    t5Device: deviceOption("t5-device", v["t5-device"]),
    t5Offload: v["t5-offload"] === true ? true : undefined,
    vaeDevice: deviceOption("vae-device", v["vae-device"]),
    persistentParams: countOption("persistent-params", v["persistent-params"] as string | undefined),
    shardWeights: v["shard-weights"] === true ? true : undefined,
  };
}

/** --devices, --ulysses, --ring, --cfg-parallel, --rendezvous, --nnodes, --node-rank, --timeout S
 * (seconds, > 0), --log-dir DIR, --log-level LEVEL as OpenOptions fields. */
export function groupOpenOptions(v: Parsed["values"]): Pick<OpenOptions, "devices" | "ulysses" | "ring" | "cfgParallel"
  | "rendezvous" | "nnodes" | "nodeRank" | "timeoutS" | "logDir" | "logLevel"> {
  const timeoutS = numberOption("timeout", v.timeout, "(0, 86400]");
  if (timeoutS !== undefined && !(timeoutS > 0 && timeoutS <= 86400)) throw new UsageError(`--timeout must be seconds in (0, 86400], got ${v.timeout}`);
  return {
    ...layoutOpenOptions(v),
    rendezvous: v.rendezvous as string | undefined,
    nnodes: intOption("nnodes", v.nnodes as string | undefined, ...rangeOf("generate", "nnodes")),
    nodeRank: intOption("node-rank", v["node-rank"] as string | undefined, ...rangeOf("generate", "node-rank")),
    timeoutS,
    logDir: v["log-dir"] as string | undefined,
    logLevel: choice("log-level", v["log-level"] as string | undefined, choicesOf<NonNullable<OpenOptions["logLevel"]>>("generate", "log-level")),
  };
}

/** A decimal number option (finite); errors name the option, the value and, given, the range
 * (which a later check holds). */
export function numberOption(name: string, value: string | boolean | undefined, range?: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== "string" || !decimalNumber.test(value) || !Number.isFinite(n))
    throw new UsageError(`--${name} must be a number, got '${value}' (a decimal number${range ? ` in ${range}` : ""})`);
  return n;
}
/** `wanlab COMMAND --help`: the command's synopsis, what it does and each flag, from the option table. */
export function help(...cmds: Command[]): number {
  console.log(commandHelp(...cmds));
  return 0;
}

// What the option table (./table.ts) becomes: the parseArgs configs of the commands, the usage text
// (`wanlab help`), each command's help (`wanlab COMMAND --help`) and the CLI reference (docs/cli.md).
import type { ParseArgsConfig } from "node:util";
import { commandTable, commands, defaults, optionTable, rowsOf, type Command, type OptionRow } from "./table.js";

export type ParseOptions = NonNullable<ParseArgsConfig["options"]>;

/** The parseArgs options of one command (or the union of several: `kernel` parses its three at once). */
export function parseOptionsOf(...cmds: Command[]): ParseOptions {
  const o: ParseOptions = {};
  for (const c of cmds)
    for (const r of rowsOf(c)) o[r.flag!] = { type: r.type === "boolean" ? "boolean" : "string", ...(r.multiple ? { multiple: true } : {}) };
  return o;
}

/** The flag as a usage line writes it: --tiled, --height N, --log-level error|warn|info|debug. */
export function flagText(r: OptionRow): string {
  if (r.type === "boolean") return `--${r.flag}`;
  return `--${r.flag} ${r.value ?? r.choices!.join("|")}`;
}

/** Every line of the help, the usage text and the synopses in docs/cli.md fits this many columns. */
export const helpWidth = 100;

/** `head` and the command's flags (required ones bare, the others bracketed), wrapped to
 * `helpWidth` with the continuation lines aligned after the head's first word. */
export function synopsis(command: Command, indent = 0): string[] {
  const { head } = commandTable[command];
  const tokens = rowsOf(command).map((r) => (r.required ? flagText(r) : `[${flagText(r)}]`));
  const pad = " ".repeat(indent + head.split(" ")[0]!.length + 1);
  const lines = [" ".repeat(indent) + head];
  for (const t of tokens) {
    const last = lines[lines.length - 1]!;
    if (last.length + 1 + t.length > helpWidth && last.trim() !== head) lines.push(pad + t);
    else lines[lines.length - 1] = `${last} ${t}`;
  }
  return lines;
}

export const usageNotes = [
  "Numbers are decimal (an integer is digits only: no 0x, 1e0, 64.0, +64 or spaces); each flag is given",
  "once (--env may repeat). Exit status: 0 done, 1 failed, 2 a usage error (a flag, a value or an",
  "output target).",
];

/** `wanlab help`: every command's synopsis and, below it, what it does. */
export function usageText(): string {
  const out = ["usage: wanlab COMMAND [options]", "", "commands:"];
  for (const c of commands) {
    out.push(...synopsis(c, 2));
    const description = commandTable[c].description.join(" ");
    if (description) out.push(...wrap(description, helpWidth - 6).map((l) => "      " + l));
  }
  out.push("  help [COMMAND]", "      this text, or a command's options", "", ...usageNotes,
    "Run `wanlab COMMAND --help` for a command's options: what each does, its default and an example.");
  return out.join("\n");
}

/** The allowed values of a row, as the reference states them. */
export function allowedText(r: OptionRow): string {
  if (r.range) {
    if (r.type === "integer") return `${r.range[0]} to ${r.range[1]}`;
    return `${r.exclusiveMin ? "(" : "["}${r.range[0]}, ${r.range[1]}]`;
  }
  switch (r.type) {
    case "seed": return "0 to 18446744073709551615";
    case "count": return "a count like 24G, 7e9 or 7000000000";
    case "budget": return `bytes like 24G or 7e9, ${(r.choices ?? ["auto"]).join(", ")}`;
    case "device": return "cpu, cuda or cuda:N";
    case "pair": return "[height, width], integers 1 to 1024";
    case "boolean": return "";
    default: return r.choices ? r.choices.join(", ") : "";
  }
}

/** The default of a row: the table's text, a parameter's from `defaults`, "off" for a flag that
 * is a switch; "" for a required flag (and an API field without one). */
export function defaultText(r: OptionRow): string {
  if (r.default !== undefined) return r.default;
  const d = r.param && r.key !== undefined ? (defaults as Record<string, unknown>)[r.key] : undefined;
  if (r.flag !== undefined && r.type === "boolean") return "off";
  if (d === undefined || d === "" || d === false) return "";
  return Array.isArray(d) ? `[${d.join(", ")}]` : String(d);
}

/** What `--help` says of a flag after its description: required, or its allowed values and default. */
function factsText(r: OptionRow): string {
  const facts = [allowedText(r), r.required ? "required" : defaultText(r) && `default ${defaultText(r)}`].filter(Boolean);
  return facts.length ? ` (${facts.join("; ")})` : "";
}

/** The widest flag column `--help` gives; a longer flag puts its description two spaces after it. */
const maxFlagColumn = 30;

/** One flag in `--help`: the flag, its description with allowed values and default, then
 * `e.g. EXAMPLE`, wrapped to `helpWidth` with the text in column `col`. */
function flagHelp(r: OptionRow, col: number): string[] {
  const flag = `  ${flagText(r)}`;
  const pad = " ".repeat(col);
  const first = flag.length + 2 <= col ? col : flag.length + 2;
  const [head, ...rest] = wrap(`${r.help}${factsText(r)}`, helpWidth - first);
  const text = wrap(rest.join(" "), helpWidth - col);
  const lines = [flag.padEnd(first) + head, ...(rest.length ? text.map((l) => pad + l) : [])];
  if (r.example) lines.push(...wrap(`e.g. ${r.example}`, helpWidth - col).map((l) => pad + l));
  return lines;
}

/** `wanlab COMMAND --help` (kernel: its three subcommands, bench: its kinds): the usage lines,
 * what it does, and each flag with what it does, its allowed values, its default and an example.
 * Several commands list, each under its own heading, the flags not listed before. */
export function commandHelp(...cmds: Command[]): string {
  const out: string[] = [];
  cmds.forEach((c, i) => {
    const { head } = commandTable[c];
    const required = rowsOf(c).filter((r) => r.required).map(flagText);
    const more = rowsOf(c).some((r) => !r.required) ? ["[options]"] : [];
    out.push(`${i === 0 ? "usage:" : "      "} wanlab ${[head, ...required, ...more].join(" ")}`);
  });
  for (const d of descriptions(cmds)) out.push(...wrap(d, helpWidth - 2).map((l) => "  " + l));
  const shown = new Set<OptionRow>();
  for (const c of cmds) {
    const rows = rowsOf(c).filter((r) => !shown.has(r));
    if (!rows.length) continue;
    rows.forEach((r) => shown.add(r));
    out.push("", cmds.length > 1 ? `options of wanlab ${commandTable[c].head}:` : "options:");
    const col = Math.min(maxFlagColumn, Math.max(...rows.map((r) => flagText(r).length)) + 4);
    for (const r of rows) out.push(...flagHelp(r, col));
  }
  return out.join("\n");
}

/** What the commands do: one command's description; several, each after its usage head. */
function descriptions(cmds: Command[]): string[] {
  const of = (c: Command) => commandTable[c].description.join(" ");
  if (cmds.length === 1) return of(cmds[0]!) ? [of(cmds[0]!)] : [];
  return cmds.filter((c) => of(c)).map((c) => `${commandTable[c].head}: ${of(c)}`);
}

/** Words in lines of at most `max` characters (a longer word stands alone). */
export function wrap(text: string, max: number): string[] {
  const lines = [""];
  for (const w of text.split(" ")) {
    const last = lines[lines.length - 1]!;
    if (last && last.length + 1 + w.length > max) lines.push(w);
    else lines[lines.length - 1] = last ? `${last} ${w}` : w;
  }
  return lines;
}

const cell = (s: string) => s.replace(/\|/g, "\\|");

function optionTableMarkdown(rows: OptionRow[], withKey: boolean): string[] {
  const head = withKey ? ["flag", "API key", "allowed", "default", "example", "what it does"] : ["flag", "allowed", "default", "example", "what it does"];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) {
    const cols = [`\`${flagText(r)}\``, ...(withKey ? [r.key ? `\`${r.key}\`` : ""] : []), allowedText(r), r.required ? "required" : defaultText(r), r.example ? `\`${r.example}\`` : "", r.help];
    lines.push(`| ${cols.map(cell).join(" | ")} |`);
  }
  return lines;
}

/** docs/cli.md: the reference made from the table (scripts/docs-cli.mjs writes it; a test compares). */
export function cliMarkdown(): string {
  const out = [
    "# Command-line reference",
    "",
    "<!-- Generated from src/options/table.ts by `node scripts/docs-cli.mjs > docs/cli.md`; do not edit by hand. -->",
    "",
    "`wanlab COMMAND --help` prints the same options. " + usageNotes.join(" ").replace(/ +/g, " "),
    "",
  ];
  const sections: [string, Command[]][] = [["demo", ["demo"]], ["generate", ["generate"]], ["inspect", ["inspect"]], ["make-tiny", ["make-tiny"]],
    ["bench dit|vae|t5", ["bench-model"]], ["bench load", ["bench-load"]], ["bench parallel", ["bench-parallel"]], ["bench projection", ["bench-projection"]], ["serve", ["serve"]],
    ["kernel", ["kernel-install", "kernel-uninstall", "kernel-list"]], ["doctor", ["doctor"]]];
  for (const [title, cmds] of sections) {
    out.push(`## wanlab ${title}`, "", "```");
    for (const c of cmds) out.push(...synopsis(c, "wanlab ".length).map((l, i) => (i === 0 ? "wanlab " + l.trimStart() : l)));
    out.push("```", "");
    for (const d of descriptions(cmds)) out.push(d, "");
    const rows = cmds.flatMap(rowsOf).filter((r, i, all) => all.findIndex((x) => x.flag === r.flag) === i);
    if (rows.length) out.push(...optionTableMarkdown(rows, rows.some((r) => r.key !== undefined)), "");
  }
  const apiOnly = optionTable.filter((r) => r.flag === undefined);
  out.push("## Parameters without a flag", "", "The API and the server's jobs take these too (`lab.generate({...})`, `POST /v1/jobs`).", "",
    "| API key | allowed | default | what it does |", "|---|---|---|---|",
    ...apiOnly.map((r) => `| ${[`\`${r.key}\``, allowedText(r), defaultText(r), r.help].map(cell).join(" | ")} |`), "");
  return out.join("\n");
}

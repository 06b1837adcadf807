// The scripts' command lines: each script declares one table of its flags (name, type, default,
// help) and defineFlags makes the strict parser and the --help text from it. A flag not in the
// table is refused naming the nearest one (`unknown flag --cfgs; did you mean --cfg?`), so a
// typo stops the script before any job runs instead of running the wrong grid.

import { editDistance } from "wanlab/internals";

/** A usage error: the scripts exit 2 on these, 1 on failed jobs. */
export class Usage extends Error {}

/**
 * A flag's type:
 *   "string"  text or a path;           "boolean" present or absent (--x=false also reads);
 *   "number"  a finite decimal;         "integer" decimal digits, optionally signed;
 *   "numbers" a list of numbers, comma-separated and/or given several times (--cfg 3,5 --cfg 7);
 *   "strings" a list of words, the same way.
 * @typedef {"string" | "boolean" | "number" | "integer" | "numbers" | "strings"} FlagType
 *
 * @typedef {object} Flag
 * @property {string} flag      the name without "--"
 * @property {FlagType} type
 * @property {string} help      one line for --help
 * @property {unknown} [default] the value when absent (lists: an array)
 * @property {string} [shown]   the default as --help states it, when the script does not fill it in
 * @property {string} [value]   the value's placeholder in --help (TEXT, N, DIR)
 * @property {string[]} [aliases] other names of the same flag
 * @property {boolean} [required]
 */

const placeholders = { string: "TEXT", boolean: "", number: "X", integer: "N", numbers: "X,...", strings: "A,..." };
const isList = (type) => type === "numbers" || type === "strings";

/** Edit distance with adjacent transpositions counted once (--stesp is one edit from --steps):
 * the CLI's, so a script and `wanlab` rank a typo's candidates alike. */
export const distance = editDistance;

/** The known name nearest to `name`, when it is near enough to be a typo of it. */
export function nearest(name, names) {
  let best;
  let bestD = Infinity;
  for (const n of names) {
    // One name inside the other (--frames, --num-frames) counts as a near miss too.
    const contained = Math.min(name.length, n.length) >= 3 && (n.includes(name) || name.includes(n));
    const d = Math.min(distance(name, n), contained ? 1.5 : Infinity);
    if (d < bestD) [best, bestD] = [n, d];
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function convert(f, raw) {
  const name = `--${f.flag}`;
  if (f.type === "number" || f.type === "integer") {
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n)) throw new Usage(`${name} must be a number, got '${raw}'`);
    if (f.type === "integer" && !Number.isInteger(n)) throw new Usage(`${name} must be an integer, got '${raw}'`);
    return n;
  }
  if (f.type === "numbers") {
    const list = raw.split(",").map((s) => s.trim());
    if (list.some((s) => s === "" || !Number.isFinite(Number(s)))) throw new Usage(`${name} must be a comma-separated list of numbers, got '${raw}'`);
    return list.map(Number);
  }
  if (f.type === "strings") {
    const list = raw.split(",").map((s) => s.trim());
    if (list.some((s) => s === "")) throw new Usage(`${name} must be a comma-separated list, got '${raw}'`);
    return list;
  }
  return raw;
}

/**
 * The parser and help of one script: `defineFlags(table, { name, synopsis, about, examples })`.
 * `parse(args)` returns { [flag]: value } (absent flags: their default or undefined), or
 * undefined after printing the help for --help/-h; it throws Usage for anything else it cannot
 * read: an unknown flag, a missing or malformed value, a single-valued flag given twice, a
 * positional argument, a required flag left out.
 */
export function defineFlags(table, { name, about = "", examples = [] }) {
  const all = [...table, { flag: "help", type: "boolean", help: "print this help and exit", aliases: ["h"] }];
  const byName = new Map();
  for (const f of all)
    for (const n of [f.flag, ...(f.aliases ?? [])]) {
      if (byName.has(n)) throw new Error(`${name}: flag --${n} is declared twice`);
      byName.set(n, f);
    }
  const spell = (f) => `--${f.flag}${f.type === "boolean" ? "" : ` ${f.value ?? placeholders[f.type]}`}`;
  const synopsis = `usage: ${name} ${all.filter((f) => f.required).map(spell).join(" ")}${all.some((f) => !f.required) ? " [flags]" : ""}`.replace(/ +/g, " ");

  /** Each flag as [how it is written, its help with its notes (required, default, aliases)]. */
  function rows() {
    return all.map((f) => {
      const def = f.shown ?? (f.default === undefined || f.default === false ? undefined : Array.isArray(f.default) ? f.default.join(",") : String(f.default));
      const notes = [f.required ? "required" : undefined, def !== undefined ? `default: ${def}` : undefined, f.aliases?.length ? `also ${f.aliases.map((a) => (a.length === 1 ? `-${a}` : `--${a}`)).join(", ")}` : undefined,
        isList(f.type) ? "comma-separated or repeated" : undefined].filter(Boolean);
      return [spell(f), `${f.help}${notes.length ? ` (${notes.join("; ")})` : ""}`];
    });
  }

  /** The flags as a Markdown table (docs/scripts.md). */
  function markdown() {
    const cell = (s) => s.replace(/\|/g, "\\|");
    return ["| flag | what it does |", "| --- | --- |", ...rows().map(([l, h]) => `| \`${cell(l)}\` | ${cell(h)} |`)].join("\n");
  }

  function help() {
    const described = rows();
    const width = Math.min(30, Math.max(...described.map(([l]) => l.length)) + 2);
    const wrap = (text, indent) => {
      const lines = [];
      let line = "";
      for (const word of text.split(" ")) {
        if (line && indent + line.length + 1 + word.length > 100) {
          lines.push(line);
          line = word;
        } else line = line ? `${line} ${word}` : word;
      }
      lines.push(line);
      return lines.join(`\n${" ".repeat(indent)}`);
    };
    const flagLines = described.map(([l, h]) => (l.length + 2 > width ? `  ${l}\n${" ".repeat(width + 2)}${wrap(h, width + 2)}` : `  ${l.padEnd(width)}${wrap(h, width + 2)}`));
    return [synopsis, ...(about ? ["", about] : []), "", "flags:", ...flagLines, ...(examples.length ? ["", "examples:", ...examples.map((e) => `  ${e}`)] : [])].join("\n");
  }

  function parse(args = process.argv.slice(2)) {
    const out = {};
    const seen = new Set();
    for (let i = 0; i < args.length; i++) {
      const arg = args[i];
      const m = /^--?([^=]+)(?:=(.*))?$/s.exec(arg);
      if (!m || arg === "-" || arg === "--") throw new Usage(`unexpected argument '${arg}' (flags are --name VALUE; see --help)`);
      const [, given, inline] = m;
      const f = byName.get(given);
      if (!f || (!arg.startsWith("--") && given.length > 1)) {
        const near = nearest(given, [...byName.keys()].filter((n) => n.length > 1));
        throw new Usage(`unknown flag ${arg.replace(/=.*$/s, "")}; ${near ? `did you mean --${near}?` : "see --help"}`);
      }
      if (seen.has(f.flag) && !isList(f.type)) throw new Usage(`--${f.flag} is given twice`);
      seen.add(f.flag);
      if (f.type === "boolean") {
        if (inline !== undefined && inline !== "true" && inline !== "false") throw new Usage(`--${f.flag} takes no value (or =true, =false), got '${inline}'`);
        out[f.flag] = inline !== "false";
        continue;
      }
      let raw = inline;
      if (raw === undefined) {
        raw = args[++i];
        if (raw === undefined || (/^--?[a-z]/i.test(raw) && byName.has(raw.replace(/^--?/, "").replace(/=.*$/s, ""))))
          throw new Usage(`--${f.flag} needs a value (${f.value ?? placeholders[f.type]})`);
      }
      const v = convert(f, raw);
      out[f.flag] = isList(f.type) ? [...(out[f.flag] ?? []), ...v] : v;
    }
    if (out.help) {
      console.log(help());
      return undefined;
    }
    for (const f of table) {
      if (out[f.flag] === undefined && f.required) throw new Usage(`${spell(f)} is required\n${synopsis} (see --help)`);
      if (out[f.flag] === undefined && f.default !== undefined) out[f.flag] = f.default;
    }
    return out;
  }

  return { parse, help, markdown, synopsis, about, examples, table: all };
}

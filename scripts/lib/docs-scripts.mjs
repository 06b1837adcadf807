#!/usr/bin/env node
// The flags section of docs/scripts.md, made from the scripts' flag tables (./script-flags.mjs)
// as their --help is: `node scripts/lib/docs-scripts.mjs` prints it, `--write` puts it between
// the markers in docs/scripts.md. test/scripts-flags.test.ts checks that the page is current.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { batchFlags, forkFlags, sweepFlags } from "./script-flags.mjs";

export const begin = "<!-- flags: generated from scripts/lib/script-flags.mjs by `node scripts/lib/docs-scripts.mjs --write`; do not edit by hand -->";
export const end = "<!-- end of generated flags -->";
export const page = fileURLToPath(new URL("../../docs/scripts.md", import.meta.url));

/** The generated section, markers included. */
export function flagsSection() {
  const script = (command, flags) => [
    `### ${command}`, "",
    "```", flags.synopsis.replace(/^usage: (\S+)\.mjs/, "usage: wanlab $1"), "```", "",
    flags.about.replace(/\n/g, " "), "",
    flags.markdown(), "",
    "Examples:", "", "```", ...flags.examples.map((e) => `wanlab ${e.replace(/^(\S+)\.mjs/, "$1")}`), "```",
  ].join("\n");
  return [begin, "", script("sweep", sweepFlags), "", script("batch", batchFlags), "", script("fork", forkFlags), "", end].join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv[2] === "--write") {
    const text = readFileSync(page, "utf8");
    const [a, b] = [text.indexOf(begin), text.indexOf(end)];
    if (a < 0 || b < 0) throw new Error(`${page} lacks the markers of the flags section`);
    writeFileSync(page, text.slice(0, a) + flagsSection() + text.slice(b + end.length));
  } else console.log(flagsSection());
}

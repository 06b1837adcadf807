// The front door and the documentation: README.md stays short and links every page under docs/,
// every relative link lands on a file (and heading) inside the repository, no page names a commit,
// and docs/benchmarks.md's tables are what scripts/docs-benchmarks.mjs draws from bench/results.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

// dist/test/docs.test.js → the repository root.
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const docsDir = join(root, "docs");

function read(rel: string): string {
  return readFileSync(join(root, rel), "utf8");
}

/** README.md and every docs/*.md, as paths relative to the root. */
function pages(): string[] {
  const docs = existsSync(docsDir) ? readdirSync(docsDir).filter((f) => f.endsWith(".md")).sort() : [];
  return ["README.md", ...docs.map((f) => `docs/${f}`)];
}

/** The text with fenced code blocks and inline code spans blanked (links there are examples). */
function prose(md: string): string {
  return md.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/`[^`\n]*`/g, "``");
}

/** Every markdown link and image target in the prose: [text](target) and ![alt](target). */
export function linkTargets(md: string): string[] {
  const out: string[] = [];
  for (const m of prose(md).matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1]);
  return out;
}

const external = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target);

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors a markdown file offers, numbered as GitHub numbers repeated headings. */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of md.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Tokens that look like commit hashes: 7-40 hex digits with both letters and digits, inside
 *  backticks or right after "at " or "commit ". */
export function commitLikeTokens(md: string): string[] {
  const looksLikeHash = (s: string) => /^[0-9a-f]{7,40}$/i.test(s) && /[0-9]/.test(s) && /[a-f]/i.test(s);
  const out: string[] = [];
  for (const m of md.matchAll(/`([^`\n]*)`/g)) {
    for (const t of m[1].split(/[^0-9A-Za-z]+/)) if (looksLikeHash(t)) out.push(t);
  }
  for (const m of md.matchAll(/\b(?:at|commit)\s+([0-9a-f]{7,40})\b/gi)) if (looksLikeHash(m[1])) out.push(m[1]);
  return out;
}

test("README.md has at most 150 lines", () => {
  const lines = read("README.md").replace(/\n$/, "").split("\n").length;
  assert.ok(lines <= 150, `README.md has ${lines} lines; move detail to a page under docs/`);
});

test("README.md's quick start is two commands: build and run the demo, then the tests", () => {
  const readme = read("README.md");
  assert.match(readme, /^npm ci && npm run build && npm start\b/m, "the first command builds and runs `npm start` (the demo)");
  assert.match(readme, /^npm test\b/m, "the second command runs the tests");
  assert.match(readme, /wanlab-demo\.mp4/, "the quick start says where the demo video goes");
  const pkg = JSON.parse(read("package.json")) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.start, /\bdemo\b/, "`npm start` runs `wanlab demo`");
});

test("every page under docs/ is linked from README.md", () => {
  const linked = new Set(linkTargets(read("README.md")).map((t) => t.split("#")[0].replace(/^\.\//, "")));
  const missing = pages()
    .filter((p) => p !== "README.md")
    .filter((p) => !linked.has(p));
  assert.deepEqual(missing, [], `README.md's Documentation list misses ${missing.join(", ")}`);
});

// docs/cli.md is generated from the CLI's option table by its own step; until that step has run,
// links to it are reported here as a todo, not as broken.
const generated = new Set(["docs/cli.md"]);

test("docs/cli.md (generated from the CLI's option table) exists", { todo: !existsSync(join(root, "docs/cli.md")) }, () => {
  assert.ok(existsSync(join(root, "docs/cli.md")));
});

test("every relative link in README.md and docs/*.md resolves to an existing file, and its anchor to a heading", () => {
  const problems: string[] = [];
  for (const page of pages()) {
    const md = read(page);
    for (const target of linkTargets(md)) {
      if (external(target)) continue;
      const [pathPart, anchor] = target.split("#", 2) as [string, string | undefined];
      const file = pathPart === "" ? join(root, page) : resolve(dirname(join(root, page)), decodeURIComponent(pathPart));
      const rel = relative(root, file).split("\\").join("/");
      if (!existsSync(file)) {
        if (!generated.has(rel)) problems.push(`${page}: ${target} (no such file)`);
        continue;
      }
      if (anchor !== undefined && file.endsWith(".md") && statSync(file).isFile()) {
        if (!anchors(readFileSync(file, "utf8")).has(anchor)) problems.push(`${page}: ${target} (no heading '#${anchor}' in ${rel})`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

test("no page links outside the repository (no ../shared, no absolute or escaping paths)", () => {
  const problems: string[] = [];
  for (const page of pages()) {
    const md = read(page);
    if (/\.\.\/shared\b|\bshared\/DESIGN\.md/.test(md)) problems.push(`${page}: mentions ../shared`);
    for (const target of linkTargets(md)) {
      if (external(target)) {
        if (/^file:/i.test(target)) problems.push(`${page}: ${target} (a file: URL)`);
        continue;
      }
      const pathPart = target.split("#")[0];
      if (pathPart === "") continue;
      if (isAbsolute(pathPart) || pathPart.startsWith("~")) {
        problems.push(`${page}: ${target} (an absolute path)`);
        continue;
      }
      const rel = relative(root, resolve(dirname(join(root, page)), pathPart));
      if (rel === ".." || rel.startsWith(`..${"/"}`) || rel.startsWith("..\\") || isAbsolute(rel)) problems.push(`${page}: ${target} (leaves the repository)`);
    }
  }
  assert.deepEqual(problems, []);
});

test("README.md and docs/ name no commit hashes", () => {
  const found = pages().flatMap((p) => commitLikeTokens(read(p)).map((t) => `${p}: ${t}`));
  assert.deepEqual(found, [], "describe what the product does, not which commit it did it at");
  // The check itself: it sees a hash in backticks and after "at ", and leaves numbers alone.
  assert.deepEqual(commitLikeTokens("at d034bbd, `fed7b18f`, `e4m3`, `104857600`, `0x40`"), ["fed7b18f", "d034bbd"]);
});

test("docs/benchmarks.md's tables are what `node scripts/docs-benchmarks.mjs` prints from bench/results", () => {
  const md = read("docs/benchmarks.md");
  const m = /<!-- tables:begin -->\n([\s\S]*?)<!-- tables:end -->/.exec(md);
  assert.ok(m, "docs/benchmarks.md has the <!-- tables:begin --> / <!-- tables:end --> markers");
  const printed = execFileSync(process.execPath, [join(root, "scripts", "docs-benchmarks.mjs")], { cwd: root, encoding: "utf8" });
  assert.ok(printed.includes("| NVIDIA H200 |"), "the script draws the H200 results");
  assert.equal(m[1].trim(), printed.trim(), "regenerate: node scripts/docs-benchmarks.mjs, and paste it between the markers");
  assert.match(md, /node scripts\/docs-benchmarks\.mjs/, "the page says how to regenerate its tables");
});

test("docs/benchmarks.md keeps a 'Build time' section with its markers", () => {
  const md = read("docs/benchmarks.md");
  assert.match(md, /^## Build time$/m);
  assert.match(md, /<!-- build-time:begin -->[\s\S]*<!-- build-time:end -->/);
});

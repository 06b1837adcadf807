#!/usr/bin/env node
// The native engine's layers look only down. Every folder of native/src is one layer; a file may
// include its own layer's headers and those of any lower layer, never a higher one, nor a sibling
// of the same rank (models and parallel meet only above them, in pipeline).
//
//   node scripts/check-includes.mjs [SRC_DIR]     (default: native/src of this repository)
//
// Prints each include that runs upward or sideways (file:line, the include, both layers) and each
// folder without a layer, and exits 1 if there is any; exits 0 with a one-line summary otherwise.
// No dependencies: node's own fs and path.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

// The layer order, lowest first. Same rank: siblings that must not include each other.
export const LAYERS = [
  { name: "common", rank: 0, what: "errors, logging, files, dtypes, CUDA streams, the DiT's shard seam" },
  { name: "kernels", rank: 1, what: "attention and the own NVRTC kernels with their host emulations" },
  { name: "formats", rank: 2, what: "file formats: safetensors, zip, pickle, .pth" },
  { name: "checkpoint", rank: 3, what: "architectures read from shapes, checkpoint layouts and name mapping" },
  { name: "models", rank: 4, what: "the DiT, UMT5, the VAE, placement and the memory model" },
  { name: "parallel", rank: 4, what: "devices, process groups, device groups, sequence parallelism" },
  { name: "pipeline", rank: 5, what: "the text-to-video engine" },
  { name: "tools", rank: 6, what: "inspect, make-model, doctor, the load bench and the benches" },
];

// "common < kernels < ... < models, parallel < ...": the order as the check reads it.
export function layerOrder() {
  const ranks = [...new Set(LAYERS.map((l) => l.rank))].sort((a, b) => a - b);
  return ranks.map((r) => LAYERS.filter((l) => l.rank === r).map((l) => l.name).join(", ")).join(" < ");
}

const INCLUDE = /^\s*#\s*include\s+"([^"]+)"/;

function sourceFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(h|hpp|cpp|cc|cu)$/.test(entry.name)) out.push(path);
  }
  return out;
}

// { files, problems: [{ file, line, include, message }] } for the tree at `srcDir`.
export function checkIncludes(srcDir) {
  const layers = new Map(LAYERS.map((l) => [l.name, l]));
  const problems = [];
  const folders = readdirSync(srcDir).filter((f) => statSync(join(srcDir, f)).isDirectory());
  for (const folder of folders) {
    if (!layers.has(folder))
      problems.push({ file: folder, line: 0, include: "", message: `folder ${folder}/ has no layer in scripts/check-includes.mjs LAYERS` });
  }
  const files = sourceFiles(srcDir);
  for (const file of files) {
    const rel = relative(srcDir, file).split(sep).join("/");
    const from = layers.get(rel.split("/")[0]);
    if (!from) {
      if (rel.includes("/")) continue;  // its folder is reported above
      problems.push({ file: rel, line: 0, include: "", message: `${rel} lies outside every layer folder` });
      continue;
    }
    readFileSync(file, "utf8").split("\n").forEach((text, i) => {
      const m = INCLUDE.exec(text);
      if (!m || !m[1].includes("/")) return;  // <system> headers and same-folder includes
      const top = m[1].split("/")[0];
      if (!folders.includes(top)) return;  // not one of ours (e.g. a third-party path in quotes)
      const to = layers.get(top);
      if (!to || to.name === from.name) return;  // an unknown folder is reported above
      if (to.rank < from.rank) return;
      const how = to.rank === from.rank ? "sideways: siblings meet only above them" : "upward";
      problems.push({
        file: rel, line: i + 1, include: m[1],
        message: `${rel}:${i + 1}: #include "${m[1]}" runs ${how} (${from.name} is layer ${from.rank}, ${to.name} layer ${to.rank})`,
      });
    });
  }
  return { files: files.length, problems };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const srcDir = process.argv[2] ?? fileURLToPath(new URL("../native/src", import.meta.url));
  const { files, problems } = checkIncludes(srcDir);
  for (const p of problems) console.error(p.message);
  if (problems.length > 0) {
    console.error(`check-includes: ${problems.length} include(s) against the layer order ${layerOrder()}`);
    process.exit(1);
  }
  console.log(`check-includes: ${files} files, every include looks down (${layerOrder()})`);
}

// The build's choice of Gloo headers (native/cmake/gloo.cmake, run in cmake's script mode) and
// native/tools/fetch-gloo.sh, on a stand-in Gloo repository: headers are used only when they are
// the Gloo commit the libtorch was built with, and every refusal names both sides.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { root, scratch } from "./helpers.js";

const dir = scratch();
const torchCommit = "0123456789abcdef0123456789abcdef01234567";

function run(cmd: string, args: string[], cwd = dir): { status: number; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t",
    GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t", WANLAB_GLOO_DIR: "", WANLAB_GLOO_INCLUDE: "" } });
  return { status: r.status ?? -1, out: (r.stdout ?? "") + (r.stderr ?? "") };
}

// A Gloo repository with what fetch-gloo.sh reads: the version in CMakeLists.txt, config.h.in, headers.
function gloo(): { repo: string; commit: string } {
  const repo = join(dir, "gloo-src");
  mkdirSync(join(repo, "gloo", "transport"), { recursive: true });
  writeFileSync(join(repo, "CMakeLists.txt"), "set(GLOO_VERSION_MAJOR 0)\nset(GLOO_VERSION_MINOR 5)\nset(GLOO_VERSION_PATCH 0)\n");
  writeFileSync(join(repo, "gloo", "config.h.in"), "#pragma once\n#define GLOO_VERSION_MINOR @GLOO_VERSION_MINOR@\n" +
    "#cmakedefine01 GLOO_USE_CUDA\n#cmakedefine01 GLOO_HAVE_TRANSPORT_TCP\n#cmakedefine01 GLOO_USE_IBVERBS\n");
  writeFileSync(join(repo, "gloo", "transport", "device.h"), "#pragma once\n");
  writeFileSync(join(repo, "gloo", "device.cc"), "// not a header\n");
  for (const args of [["init", "-q"], ["add", "."], ["commit", "-qm", "gloo"]]) assert.equal(run("git", args, repo).status, 0);
  const commit = run("git", ["rev-parse", "HEAD"], repo).out.trim();
  return { repo, commit };
}

// A wheel's torch folder as the build sees it: version.py with its git_version.
function torchPrefix(name: string, commit: string): string {
  const prefix = join(dir, name);
  mkdirSync(prefix, { recursive: true });
  writeFileSync(join(prefix, "version.py"), `__version__ = '2.11.0'\ngit_version = '${commit}'\n`);
  return prefix;
}

function check(vars: Record<string, string>): { status: number; out: string } {
  const defs = Object.entries(vars).map(([k, v]) => `-D${k}=${v}`);
  return run("cmake", [...defs, "-P", join(root, "native", "cmake", "gloo.cmake")]);
}

const src = gloo();
const headers = join(dir, "gloo-headers");

test("fetch-gloo.sh takes the pinned commit's headers, generates config.h as PyTorch configures it, and stamps both commits", () => {
  const r = run("bash", [join(root, "native", "tools", "fetch-gloo.sh"), headers, "--torch-commit", torchCommit,
    "--commit", src.commit.slice(0, 10), "--from", join(src.repo, ".git"), "--cuda", "1"]);
  assert.equal(r.status, 0, r.out);
  assert.equal(readFileSync(join(headers, "wanlab-gloo.txt"), "utf8"), `gloo ${src.commit}\npytorch ${torchCommit}\n`);
  assert.equal(readFileSync(join(headers, "gloo", "config.h"), "utf8"),
    "#pragma once\n#define GLOO_VERSION_MINOR 5\n#define GLOO_USE_CUDA 1\n#define GLOO_HAVE_TRANSPORT_TCP 1\n#define GLOO_USE_IBVERBS 0\n");
  assert.equal(readFileSync(join(headers, "gloo", "transport", "device.h"), "utf8"), "#pragma once\n");
  assert.equal(run("test", ["-e", join(headers, "gloo", "device.cc")]).status, 1, "only headers are copied");
});

test("fetch-gloo.sh refuses a commit the repository lacks and a PyTorch that names no commit", () => {
  const missing = run("bash", [join(root, "native", "tools", "fetch-gloo.sh"), join(dir, "x"), "--torch-commit", torchCommit,
    "--commit", "deadbeefdeadbeef", "--from", join(src.repo, ".git")]);
  assert.equal(missing.status, 2);
  assert.match(missing.out, /Gloo commit deadbeefdeadbeef is not in /);
  const debian = run("bash", [join(root, "native", "tools", "fetch-gloo.sh"), join(dir, "y"), "--torch-commit", "Unknown", "--commit", src.commit]);
  assert.equal(debian.status, 2);
  assert.match(debian.out, /PyTorch commit 'Unknown' is not a git commit .*libgloo-dev/);
});

test("the build takes headers stamped for this libtorch's PyTorch commit", () => {
  const r = check({ TORCH_PREFIX: torchPrefix("torch-same", torchCommit), WANLAB_GLOO_DIR: headers });
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, new RegExp(`Gloo ${src.commit} headers from .*gloo-headers, the commit PyTorch ${torchCommit} pins`));
  assert.match(r.out, /gloo include: .*gloo-headers/);
});

test("the build refuses headers fetched for another PyTorch, naming both commits", () => {
  const other = "fedcba9876543210fedcba9876543210fedcba98";
  const r = check({ TORCH_PREFIX: torchPrefix("torch-other", other), WANLAB_GLOO_DIR: headers });
  assert.notEqual(r.status, 0);
  const text = r.out.replace(/\s+/g, " ");
  assert.match(text, new RegExp(`are Gloo ${src.commit}, pinned by PyTorch ${torchCommit}, but the libtorch at \\S+ is PyTorch ${other}`));
  assert.match(text, /fetch-gloo\.sh/);
  // -DWANLAB_GLOO_UNMATCHED=ON builds anyway, warning.
  const forced = check({ TORCH_PREFIX: torchPrefix("torch-other", other), WANLAB_GLOO_DIR: headers, WANLAB_GLOO_UNMATCHED: "ON" });
  assert.equal(forced.status, 0, forced.out);
  assert.match(forced.out.replace(/\s+/g, " "), /building anyway \(WANLAB_GLOO_UNMATCHED=ON\)/);
});

test("the build refuses a folder without a stamp, and a wheel's libtorch without WANLAB_GLOO_DIR", () => {
  const bare = join(dir, "bare");
  mkdirSync(join(bare, "gloo"), { recursive: true });
  writeFileSync(join(bare, "gloo", "config.h"), "#pragma once\n");
  const prefix = torchPrefix("torch-bare", torchCommit);
  const unstamped = check({ TORCH_PREFIX: prefix, WANLAB_GLOO_DIR: bare });
  assert.notEqual(unstamped.status, 0);
  assert.match(unstamped.out.replace(/\s+/g, " "), /cannot match the Gloo headers in \S*bare to the libtorch at \S*torch-bare: the folder has no wanlab-gloo\.txt/);
  const noDir = check({ TORCH_PREFIX: prefix, WANLAB_GLOO_INCLUDE: bare });
  assert.notEqual(noDir.status, 0);
  assert.match(noDir.out.replace(/\s+/g, " "),
    new RegExp(`the libtorch at \\S*torch-bare \\(PyTorch ${torchCommit}\\) compiles in its own Gloo and ships no headers`));
  const noConfig = check({ TORCH_PREFIX: prefix, WANLAB_GLOO_DIR: join(dir, "gloo-src", "gloo") });
  assert.notEqual(noConfig.status, 0);
  assert.match(noConfig.out.replace(/\s+/g, " "), /has no gloo\/config\.h/);
});

test("a libtorch that names no commit (Debian's) uses the system headers of its libgloo", () => {
  const debian = join(dir, "debian");
  mkdirSync(debian);
  writeFileSync(join(debian, "version.py"), "__version__ = '1.13.0a0'\ngit_version = 'Unknown'\n");
  const r = check({ TORCH_PREFIX: debian, WANLAB_GLOO_INCLUDE: headers });
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /gloo include: .*gloo-headers/);
});

// `wanlab generate`'s outputs (--output, its .json, --save-tensors, --frames-dir): every target is
// checked before the model loads, only new paths or regular files are replaced, and existing
// files are kept unless --overwrite. Device nodes are private ones made with mknod in a scratch
// folder, never /dev.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { cliPath, scratch, wanlab } from "./helpers.js";

const dir = scratch();
const model = join(dir, "tiny");
// the smallest job the engine takes: one 16×16 frame, one step
const small = ["--prompt", "x", "--seed", "1", "--num-inference-steps", "1", "--height", "16", "--width", "16", "--num-frames", "1"];
const gen = (...args: string[]) => wanlab(["generate", "--model", model, ...small, ...args]);

before(() => {
  const r = wanlab(["make-tiny", model]);
  assert.equal(r.status, 0, r.stderr);
});

/** Refused as a usage error naming `re`, before the model loads: stderr is that one line, no
 * "loading:" or "generate:" progress line. */
function assertRefused(r: { status: number; stderr: string }, re: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, re);
  assert.doesNotMatch(r.stderr, /^(loading|generate):/m, "refused before the model loads");
  assert.deepEqual(r.stderr.trim().split("\n").length, 1, r.stderr);
}

function mknodNull(path: string): void {
  execFileSync("mknod", [path, "c", "1", "3"]);
}

describe("special files are never replaced", () => {
  test("generate --output on a device node is refused before the model loads, and the node is still a character device", () => {
    const dev = join(dir, "null");
    mknodNull(dev);
    assertRefused(gen("--output", dev), new RegExp(`--output ${dev} is a character device; only regular files \\(or new paths\\) are replaced`));
    assert.ok(lstatSync(dev).isCharacterDevice());
    assertRefused(gen("--output", dev, "--overwrite"), /is a character device/);
    assert.ok(lstatSync(dev).isCharacterDevice());
  });

  test("a FIFO as --output, a device node as --save-tensors or as the .json beside the video are refused naming the flag", () => {
    const pipe = join(dir, "pipe.mp4");
    execFileSync("mkfifo", [pipe]);
    assertRefused(gen("--output", pipe), /--output .*pipe\.mp4 is a FIFO \(named pipe\)/);
    assert.ok(lstatSync(pipe).isFIFO());
    const dev = join(dir, "tensors-null");
    mknodNull(dev);
    assertRefused(gen("--output", join(dir, "a.mp4"), "--save-tensors", dev), /--save-tensors .*tensors-null is a character device/);
    assert.ok(lstatSync(dev).isCharacterDevice());
    mknodNull(join(dir, "b.mp4.json"));
    assertRefused(gen("--output", join(dir, "b.mp4")), /--output \(its \.json\) .*b\.mp4\.json is a character device/);
    assert.ok(lstatSync(join(dir, "b.mp4.json")).isCharacterDevice());
    assert.ok(!existsSync(join(dir, "a.mp4")) && !existsSync(join(dir, "b.mp4")));
  });
});

describe("bad targets are found before any compute", () => {
  test("a folder as --output, a missing folder for --save-tensors, --frames-dir on a file, one file named twice", () => {
    assertRefused(gen("--output", dir), new RegExp(`--output ${dir} is a folder`));
    assertRefused(gen("--output", join(dir, "c.mp4"), "--save-tensors", join(dir, "missing", "t.safetensors")),
      new RegExp(`--save-tensors .*: the folder ${join(dir, "missing")} does not exist; create it first`));
    const file = join(dir, "not-a-folder");
    writeFileSync(file, "x");
    assertRefused(gen("--output", join(dir, "d.mp4"), "--frames-dir", file), /--frames-dir .*not-a-folder is a regular file, not a folder/);
    assertRefused(gen("--output", join(dir, "e.mp4"), "--save-tensors", join(dir, "e.mp4")), /--output and --save-tensors name the same file/);
    assert.deepEqual(readdirSync(dir).filter((f) => /^[cde]\.mp4/.test(f) || f.endsWith(".partial")), []);
  });

  test("a read-only folder is refused before the model loads (run as an unprivileged user when this is root)", () => {
    const shared = join(dir, "shared");
    mkdirSync(shared, { mode: 0o777 });
    chmodSync(dir, 0o755);
    const ro = join(shared, "ro");
    mkdirSync(ro, { mode: 0o555 });
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const r = spawnSync(process.execPath, [cliPath, "generate", "--model", model, ...small, "--output", join(ro, "out.mp4")],
      { encoding: "utf8", ...asUser });
    assertRefused({ status: r.status ?? -1, stderr: r.stderr }, new RegExp(`--output ${join(ro, "out.mp4")}: the folder ${ro} is not writable \\(EACCES\\)`));
  });
});

describe("existing files are kept unless --overwrite", () => {
  test("an existing video is refused without --overwrite and replaced with it; so are its .json, the tensors and the frames", () => {
    const out = join(dir, "keep.mp4");
    writeFileSync(out, "old video");
    assertRefused(gen("--output", out), new RegExp(`--output ${out} exists; give --overwrite to replace it`));
    assert.equal(readFileSync(out, "utf8"), "old video");
    const tensors = join(dir, "keep.safetensors");
    const frames = join(dir, "keep-frames");
    const r = gen("--output", out, "--overwrite", "--save-tensors", tensors, "--frames-dir", frames);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(out).length > 100 && readFileSync(out).subarray(4, 8).toString() === "ftyp", "the new mp4");
    assert.ok(existsSync(`${out}.json`) && existsSync(tensors) && existsSync(join(frames, "0.png")));
    // every one of them is now an existing file: each is named without --overwrite
    assertRefused(gen("--output", join(dir, "other.mp4"), "--save-tensors", tensors), /--save-tensors .*keep\.safetensors exists; give --overwrite/);
    assertRefused(gen("--output", join(dir, "other.mp4"), "--frames-dir", frames), /--frames-dir .*keep-frames\/0\.png exists; give --overwrite/);
    const sidecarOnly = join(dir, "sidecar-only.mp4");
    writeFileSync(`${sidecarOnly}.json`, "{}");
    assertRefused(gen("--output", sidecarOnly), /--output \(its \.json\) .*sidecar-only\.mp4\.json exists; give --overwrite/);
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".partial") || f.startsWith(".wanlab-probe")), [], "nothing left aside");
  });
});

test("make-tiny onto a device node or a FIFO names it and leaves it alone", () => {
  const dev = join(dir, "model-null");
  mknodNull(dev);
  const r = wanlab(["make-tiny", dev]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^wanlab make-tiny: OUT ${dev} is a character device, not a folder`));
  assert.ok(lstatSync(dev).isCharacterDevice());
  const pipe = join(dir, "model-fifo");
  execFileSync("mkfifo", [pipe]);
  assert.match(wanlab(["make-tiny", pipe]).stderr, /model-fifo is a FIFO \(named pipe\), not a folder/);
  assert.ok(lstatSync(pipe).isFIFO());
});

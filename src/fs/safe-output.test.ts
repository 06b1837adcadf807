// src/fs/safe-output.ts and the writers on it (writeMp4, writePngFrames): only a new path or a
// regular file is ever replaced. Special files are private ones made in a scratch folder (mknod,
// mkfifo), never /dev.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { checkDistinct, checkOutputDir, checkOutputFile, commitFile, OutputError, tempBeside } from "./safe-output.js";
import { writeMp4, writePngFrames } from "../video/ffmpeg.js";
import { scratch } from "../../test/helpers.js";

const dir = scratch();

/** A private copy of /dev/null (character device 1:3) in the scratch folder. */
function nullDevice(name: string): string {
  const p = join(dir, name);
  execFileSync("mknod", [p, "c", "1", "3"]);
  assert.ok(lstatSync(p).isCharacterDevice());
  return p;
}

function fifo(name: string): string {
  const p = join(dir, name);
  execFileSync("mkfifo", [p]);
  return p;
}

const refused = (flag: string, re: RegExp) => (e: unknown) => e instanceof OutputError && e.flag === flag && re.test(e.message);

test("checkOutputFile: a device node, a FIFO, a folder and links to them are refused naming the flag and the path", () => {
  const dev = nullDevice("null");
  assert.throws(() => checkOutputFile(dev, { flag: "--output", overwrite: true }),
    refused("--output", new RegExp(`^--output ${dev} is a character device; only regular files \\(or new paths\\) are replaced$`)));
  const pipe = fifo("pipe");
  assert.throws(() => checkOutputFile(pipe, { flag: "--save-tensors", overwrite: true }), refused("--save-tensors", /pipe is a FIFO \(named pipe\)/));
  assert.throws(() => checkOutputFile(dir, { flag: "--output", overwrite: true }), refused("--output", /is a folder; only regular files/));
  const link = join(dir, "link-to-null");
  symlinkSync(dev, link);
  assert.throws(() => checkOutputFile(link, { flag: "--output", overwrite: true }), refused("--output", /link-to-null is a symbolic link to a character device/));
  const dangling = join(dir, "dangling");
  symlinkSync(join(dir, "nowhere"), dangling);
  assert.throws(() => checkOutputFile(dangling, { flag: "--output" }), refused("--output", /dangling is a symbolic link to nothing/));
  assert.ok(lstatSync(dev).isCharacterDevice() && lstatSync(pipe).isFIFO());
});

test("checkOutputFile: a new path in a folder that exists; an existing file only with overwrite; a link to a file is written through", () => {
  const fresh = join(dir, "fresh.mp4");
  assert.equal(checkOutputFile(fresh, { flag: "--output" }), fresh);
  assert.throws(() => checkOutputFile(join(dir, "missing", "x.safetensors"), { flag: "--save-tensors" }),
    refused("--save-tensors", new RegExp(`the folder ${join(dir, "missing")} does not exist; create it first`)));
  const file = join(dir, "file");
  writeFileSync(file, "keep");
  assert.throws(() => checkOutputFile(join(file, "x.mp4"), { flag: "--output" }), refused("--output", /is a regular file, not a folder|is not a folder/));
  assert.throws(() => checkOutputFile(file, { flag: "--output" }), refused("--output", /file exists; give --overwrite to replace it/));
  assert.equal(checkOutputFile(file, { flag: "--output", overwrite: true }), file);
  const link = join(dir, "link-to-file");
  symlinkSync(file, link);
  assert.equal(checkOutputFile(link, { flag: "--output", overwrite: true }), file);
  assert.equal(readFileSync(file, "utf8"), "keep");
});

test("checkOutputFile: a folder that cannot be written is refused before anything runs (as root too: checked by a probe)", () => {
  // root writes through permission bits; a process without them is what a read-only folder stops
  const shared = join(dir, "shared");
  mkdirSync(shared, { mode: 0o777 });
  execFileSync("chmod", ["0755", dir]);
  mkdirSync(join(shared, "ro"), { mode: 0o555 });
  const script = `import("${new URL("./safe-output.js", import.meta.url).href}").then((m) => {
    try { m.checkOutputFile(${JSON.stringify(join(shared, "ro", "out.mp4"))}, { flag: "--output" }); console.log("accepted"); }
    catch (e) { console.log(e.message); } })`;
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", ...asUser }).trim();
  assert.match(out, new RegExp(`^--output ${join(shared, "ro", "out.mp4")}: the folder ${join(shared, "ro")} is not writable \\(EACCES\\)$`));
  assert.deepEqual(readdirSync(join(shared, "ro")), [], "the probe leaves nothing");
});

test("checkOutputDir: a file, a device or a link to one is refused; existing frames only with overwrite", () => {
  const file = join(dir, "frames-file");
  writeFileSync(file, "x");
  assert.throws(() => checkOutputDir(file, { flag: "--frames-dir" }), refused("--frames-dir", /frames-file is a regular file, not a folder/));
  assert.throws(() => checkOutputDir(nullDevice("null-dir"), { flag: "--frames-dir" }), refused("--frames-dir", /is a character device, not a folder/));
  const frames = join(dir, "frames");
  mkdirSync(frames);
  writeFileSync(join(frames, "1.png"), "old");
  assert.equal(checkOutputDir(frames, { flag: "--frames-dir", files: ["5.png"] }), frames);
  assert.throws(() => checkOutputDir(frames, { flag: "--frames-dir", files: ["0.png", "1.png"] }), refused("--frames-dir", /1\.png exists; give --overwrite/));
  assert.equal(checkOutputDir(join(dir, "new-frames"), { flag: "--frames-dir" }), join(dir, "new-frames"));
});

test("checkDistinct: two flags naming one file are refused naming both", () => {
  assert.throws(() => checkDistinct([{ flag: "--output", path: "/a/x" }, { flag: "--save-tensors", path: "/a/x" }]),
    refused("--save-tensors", /^--output and --save-tensors name the same file \/a\/x/));
});

test("commitFile: a target that became a special file after the check is refused at the rename, and stays what it is", async () => {
  const target = join(dir, "raced.mp4");
  assert.equal(checkOutputFile(target, { flag: "--output" }), target);
  execFileSync("mkfifo", [target]); // appears between the check and the rename
  const tmp = tempBeside(target);
  writeFileSync(tmp, "video");
  await assert.rejects(commitFile(tmp, target, { flag: "--output", overwrite: true }), refused("--output", /raced\.mp4 is now a FIFO/));
  assert.ok(lstatSync(target).isFIFO());
  // without overwrite a regular file that appeared is kept, and the new one named
  const kept = join(dir, "kept.mp4");
  const tmp2 = tempBeside(kept);
  writeFileSync(tmp2, "new");
  writeFileSync(kept, "old");
  await assert.rejects(commitFile(tmp2, kept, { flag: "--output" }), refused("--output", /appeared while this ran and is kept; the new file is at/));
  assert.equal(readFileSync(kept, "utf8"), "old");
  assert.equal(readFileSync(tmp2, "utf8"), "new");
  // with overwrite a regular file is replaced
  await commitFile(tmp2, kept, { flag: "--output", overwrite: true });
  assert.equal(readFileSync(kept, "utf8"), "new");
});

test("writeMp4 and writePngFrames refuse a device node and a FIFO, which stay as they were", async () => {
  const frames = new Uint8Array(2 * 16 * 16 * 3);
  const dev = nullDevice("mp4-null");
  await assert.rejects(writeMp4(frames, { width: 16, height: 16, frames: 2, out: dev }), /writeMp4: out .*mp4-null is a character device/);
  assert.ok(lstatSync(dev).isCharacterDevice());
  const pipe = fifo("mp4-fifo");
  await assert.rejects(writeMp4(frames, { width: 16, height: 16, frames: 2, out: pipe }), /is a FIFO/);
  assert.ok(lstatSync(pipe).isFIFO());
  const framesDir = join(dir, "png");
  mkdirSync(framesDir);
  execFileSync("mknod", [join(framesDir, "1.png"), "c", "1", "3"]);
  await assert.rejects(writePngFrames(frames, { width: 16, height: 16, frames: 2, dir: framesDir }), /1\.png is a character device/);
  assert.ok(lstatSync(join(framesDir, "1.png")).isCharacterDevice());
  await assert.rejects(writePngFrames(frames, { width: 16, height: 16, frames: 2, dir: dev }), /mp4-null is not a folder/);
  // a regular file is replaced as before
  const out = join(dir, "ok.mp4");
  writeFileSync(out, "old");
  await writeMp4(frames, { width: 16, height: 16, frames: 2, out });
  assert.ok(readFileSync(out).length > 100);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".partial")), [], "no temporary file is left");
});

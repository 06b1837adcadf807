// Makers of hostile files for the hostile-input suite: safetensors headers rewritten, torch.save
// zip archives rebuilt around a hostile pickle, deeply nested JSON. Independent of the engine's
// own readers and writers, so a bug there cannot hide here.
import { readFileSync, writeFileSync } from "node:fs";

// ---------------------------------------------------------------------------------------------
// safetensors

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export interface Safetensors {
  header: Record<string, unknown>;
  data: Buffer;
}

export function readSafetensorsFile(path: string): Safetensors {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, unknown>, data: buf.subarray(8 + n) };
}

/** Writes a safetensors file from a header given as an object or as raw header text. */
export function writeSafetensorsFile(path: string, header: Record<string, unknown> | string, data: Buffer, declaredLength?: bigint): void {
  const text = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declaredLength ?? BigInt(text.length));
  writeFileSync(path, Buffer.concat([len, text, data]));
}

/** The tensor entries of a header (without __metadata__), largest first. */
export function tensorEntries(header: Record<string, unknown>): [string, HeaderEntry][] {
  return Object.entries(header)
    .filter(([k]) => k !== "__metadata__")
    .map(([k, v]) => [k, v as HeaderEntry] as [string, HeaderEntry])
    .sort((a, b) => b[1].data_offsets[1] - b[1].data_offsets[0] - (a[1].data_offsets[1] - a[1].data_offsets[0]));
}

/** Rewrites one safetensors file in place through `edit` (which may change header and data). */
export function editSafetensors(path: string, edit: (st: Safetensors) => void): void {
  const st = readSafetensorsFile(path);
  st.data = Buffer.from(st.data); // a private copy to write into
  edit(st);
  writeSafetensorsFile(path, st.header, st.data);
}

// ---------------------------------------------------------------------------------------------
// zip (torch.save archives)

export interface ZipFileEntry {
  name: string;
  data: Buffer;
}

/** The entries of a zip archive written with stored (uncompressed) entries, as torch.save and
 * the engine write them; ZIP64 sizes are read from the central directory's extra field. */
export function readZip(path: string): ZipFileEntry[] {
  const d = readFileSync(path);
  let end = -1;
  for (let off = d.length - 22; off >= Math.max(0, d.length - 22 - 0xffff); off--)
    if (d.readUInt32LE(off) === 0x06054b50) {
      end = off;
      break;
    }
  if (end < 0) throw new Error(`${path}: no end of central directory`);
  let count = d.readUInt16LE(end + 10);
  let cdOffset = d.readUInt32LE(end + 16);
  if (end >= 20 && d.readUInt32LE(end - 20) === 0x07064b50) {
    const z = Number(d.readBigUInt64LE(end - 20 + 8));
    count = Number(d.readBigUInt64LE(z + 32));
    cdOffset = Number(d.readBigUInt64LE(z + 48));
  }
  const out: ZipFileEntry[] = [];
  let pos = cdOffset;
  for (let i = 0; i < count; i++) {
    let csize = d.readUInt32LE(pos + 20);
    let size = d.readUInt32LE(pos + 24);
    const nameLen = d.readUInt16LE(pos + 28), extraLen = d.readUInt16LE(pos + 30), commentLen = d.readUInt16LE(pos + 32);
    let header = d.readUInt32LE(pos + 42);
    const name = d.subarray(pos + 46, pos + 46 + nameLen).toString("utf8");
    let x = pos + 46 + nameLen;
    const xEnd = x + extraLen;
    while (xEnd - x >= 4) {
      const id = d.readUInt16LE(x), len = d.readUInt16LE(x + 2);
      if (id === 1) {
        let v = x + 4;
        if (size === 0xffffffff) (size = Number(d.readBigUInt64LE(v))), (v += 8);
        if (csize === 0xffffffff) (csize = Number(d.readBigUInt64LE(v))), (v += 8);
        if (header === 0xffffffff) header = Number(d.readBigUInt64LE(v));
      }
      x += 4 + len;
    }
    const dataAt = header + 30 + d.readUInt16LE(header + 26) + d.readUInt16LE(header + 28);
    out.push({ name, data: Buffer.from(d.subarray(dataAt, dataAt + csize)) });
    pos += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

const crcTable = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface ZipWriteOptions {
  /** Sizes to declare instead of the true ones, by entry name (a "zip bomb": ZIP64 values). */
  declaredSize?: Record<string, bigint>;
}

/** Writes a stored zip archive (ZIP64 extra fields only where a declared size needs them). */
export function writeZip(path: string, entries: ZipFileEntry[], o: ZipWriteOptions = {}): void {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    const declared = o.declaredSize?.[e.name];
    const size32 = declared !== undefined ? 0xffffffff : e.data.length;
    const extra = declared !== undefined ? Buffer.alloc(20) : Buffer.alloc(0);
    if (declared !== undefined) {
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(16, 2);
      extra.writeBigUInt64LE(declared, 4);
      extra.writeBigUInt64LE(declared, 12);
    }
    const crc = crc32(e.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(45, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(size32, 18);
    local.writeUInt32LE(size32, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(45, 4);
    c.writeUInt16LE(45, 6);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(size32, 20);
    c.writeUInt32LE(size32, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(extra.length, 30);
    c.writeUInt32LE(off, 42);
    central.push(c, name, extra);
    parts.push(local, name, extra, e.data);
    off += 30 + name.length + extra.length + e.data.length;
  }
  const cd = Buffer.concat(central);
  const endRec = Buffer.alloc(22);
  endRec.writeUInt32LE(0x06054b50, 0);
  endRec.writeUInt16LE(entries.length, 8);
  endRec.writeUInt16LE(entries.length, 10);
  endRec.writeUInt32LE(cd.length, 12);
  endRec.writeUInt32LE(off, 16);
  writeFileSync(path, Buffer.concat([...parts, cd, endRec]));
}

/** Replaces the pickle (ARCHIVE/data.pkl) of a torch.save file, keeping every other record. */
export function replacePickle(path: string, pickle: Buffer): void {
  const entries = readZip(path);
  const pkl = entries.find((e) => e.name.endsWith("/data.pkl"));
  if (!pkl) throw new Error(`${path} has no data.pkl`);
  pkl.data = pickle;
  writeZip(path, entries);
}

// ---------------------------------------------------------------------------------------------
// pickles (protocol 2 opcodes, written by hand)

const op = {
  proto2: Buffer.from([0x80, 2]),
  mark: Buffer.from("("),
  stop: Buffer.from("."),
  emptyDict: Buffer.from("}"),
  emptyList: Buffer.from("]"),
  append: Buffer.from("a"),
  setitem: Buffer.from("s"),
  tuple1: Buffer.from([0x85]),
  reduce: Buffer.from("R"),
  build: Buffer.from("b"),
  memoize: Buffer.from([0x94]),
  stackGlobal: Buffer.from([0x93]),
};

function str(s: string): Buffer {
  const b = Buffer.from(s, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length);
  return Buffer.concat([Buffer.from("X"), len, b]);
}

function global(module: string, name: string): Buffer {
  return Buffer.from(`c${module}\n${name}\n`, "utf8");
}

/** The pickle of {key: module.name(arg)}: a call hidden inside a state dict. */
export function pickleCallInDict(module: string, name: string, arg: string, key = "weight"): Buffer {
  return Buffer.concat([op.proto2, op.emptyDict, str(key), global(module, name), str(arg), op.tuple1, op.reduce, op.setitem, op.stop]);
}

/** The pickle of module.name(arg) at the top level. */
export function pickleCall(module: string, name: string, arg: string): Buffer {
  return Buffer.concat([op.proto2, global(module, name), str(arg), op.tuple1, op.reduce, op.stop]);
}

/** module.name(arg) through protocol 4's STACK_GLOBAL (names pushed as strings). */
export function pickleStackGlobalCall(module: string, name: string, arg: string): Buffer {
  return Buffer.concat([Buffer.from([0x80, 4]), str(module), str(name), op.stackGlobal, str(arg), op.tuple1, op.reduce, op.stop]);
}

/** The INST opcode: builds module.name(arg) from the marked arguments. */
export function pickleInst(module: string, name: string, arg: string): Buffer {
  return Buffer.concat([op.proto2, op.mark, str(arg), Buffer.from(`i${module}\n${name}\n`), op.stop]);
}

/** The OBJ opcode: calls the class (here a function) under the mark with the rest as arguments. */
export function pickleObj(module: string, name: string, arg: string): Buffer {
  return Buffer.concat([op.proto2, op.mark, global(module, name), str(arg), Buffer.from("o"), op.stop]);
}

/** subprocess.call([argv...]) inside a dict. */
export function pickleSubprocess(argv: string[]): Buffer {
  const list = Buffer.concat([op.emptyList, ...argv.flatMap((a) => [str(a), op.append])]);
  return Buffer.concat([op.proto2, op.emptyDict, str("w"), global("subprocess", "call"), list, op.tuple1, op.reduce, op.setitem, op.stop]);
}

/** getattr(__import__(module), name)(arg): the call reached through two innocuous-looking builtins. */
export function pickleGetattrImport(module: string, name: string, arg: string): Buffer {
  const imported = Buffer.concat([global("builtins", "__import__"), str(module), op.tuple1, op.reduce]);
  const fn = Buffer.concat([global("builtins", "getattr"), imported, str(name), Buffer.from([0x86]) /* TUPLE2 */, op.reduce]);
  return Buffer.concat([op.proto2, fn, str(arg), op.tuple1, op.reduce, op.stop]);
}

/** A list nested `depth` deep (EMPTY_LIST then APPEND into the one below, built bottom-up). */
export function pickleDeepList(depth: number): Buffer {
  // MARK-free: push `depth` empty lists, then append each onto the one below it.
  return Buffer.concat([op.proto2, Buffer.alloc(depth, "]"), Buffer.alloc(depth - 1, "a"), op.stop]);
}

/** "Billion laughs": each level a list holding the previous level ten times through the memo. */
export function pickleLaughs(levels: number): Buffer {
  const pop = Buffer.from("0");
  const parts: Buffer[] = [op.proto2, str("lol"), op.memoize, pop];
  for (let i = 1; i <= levels; i++) {
    parts.push(op.mark);
    for (let k = 0; k < 10; k++) parts.push(Buffer.from([0x68, i - 1])); // BINGET i-1
    parts.push(Buffer.from("l"), op.memoize); // LIST from mark, memoized as i
    if (i < levels) parts.push(pop); // only the last level stays on the stack
  }
  parts.push(op.stop);
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// JSON

/** `{"key": [[[...0...]]]}` nested `depth` deep: small on disk, deep in any recursive reader. */
export function deepJson(depth: number, key = "x", open = "[", close = "]"): string {
  return `{"${key}": ${open.repeat(depth)}0${close.repeat(depth)}}`;
}

/** `{"a":{"a":{...}}}` nested `depth` objects deep. */
export function deepObjects(depth: number): string {
  return '{"a":'.repeat(depth) + "0" + "}".repeat(depth);
}

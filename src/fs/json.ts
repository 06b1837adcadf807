// JSON files read with limits: a size cap checked before reading (only regular files are read, so
// a FIFO or a device cannot block or stream forever) and a nesting cap checked before parsing,
// so no file can make the process hold gigabytes or recurse without end. Errors name the file.
import { constants } from "node:fs";
import { open } from "node:fs/promises";

export interface JsonLimits {
  /** Largest file accepted, in bytes. */
  maxBytes: number;
  /** Deepest nesting of arrays and objects accepted. */
  maxDepth: number;
}

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

/** The deepest nesting of `[` and `{` in JSON text (outside strings), stopping once past `limit`. */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

/** Parses JSON text held to `maxDepth`; errors start with `name`. */
export function parseJsonLimited(text: string, name: string, maxDepth: number): unknown {
  if (jsonDepth(text, maxDepth) > maxDepth) throw new Error(`${name} nests arrays and objects more than ${maxDepth} deep; refused`);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${name} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Reads and parses a JSON file within limits; every error names the file. The size is checked on
 * the open file (fstat) before a byte is read, and the read stops at the cap even if the file grows.
 */
export async function readJsonFile(file: string, limits: JsonLimits): Promise<unknown> {
  // O_NONBLOCK: opening a FIFO does not wait for a writer (it is then refused as not a file).
  const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`${file} cannot be read: ${e.code ?? e.message}`);
  });
  let text: string;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    if (st.size > limits.maxBytes) throw new Error(`${file} is ${mb(st.size)}, over the ${mb(limits.maxBytes)} this file may have`);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    text = buf.subarray(0, got).toString("utf8");
  } finally {
    await fh.close();
  }
  return parseJsonLimited(text, file, limits.maxDepth);
}

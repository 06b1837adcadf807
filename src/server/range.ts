// HTTP byte ranges (RFC 9110 §14) for a job's output files, so a browser's video player can
// seek and loop: one range per request ("bytes=START-END", "bytes=START-", "bytes=-SUFFIX");
// several ranges, or a header of another unit, answer the whole file (a server may ignore Range).

/** The byte range a Range header asks of a file of `size` bytes: inclusive bounds, "unsatisfiable"
 * (416) when it starts past the end, undefined for the whole file. */
export function byteRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size) return "unsatisfiable";
  if (end < start) return undefined;
  return { start, end };
}

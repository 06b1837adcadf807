// Human-readable numbers and aligned tables for the terminal.

/** The byte units: decimal as disks, model cards and --budget 24G count; binary as memory pages do. */
const byteUnits = {
  decimal: { base: 1000, names: ["B", "kB", "MB", "GB", "TB"] },
  binary: { base: 1024, names: ["B", "KiB", "MiB", "GiB", "TiB"] },
} as const;
const unitScale: Record<string, number> = Object.fromEntries(
  Object.values(byteUnits).flatMap(({ base, names }) => names.map((name, i) => [name, base ** i])));

export type ByteUnit = (typeof byteUnits)[keyof typeof byteUnits]["names"][number];

/** 1536 → "1.54 kB" (decimal, the default) or "1.50 KiB" (binary): the largest unit that keeps
 * the number at least 1, with 2 decimals below 100 and 1 above. */
export function formatBytes(n: number, system: keyof typeof byteUnits = "decimal"): string {
  const { base, names } = byteUnits[system];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= base && i < names.length - 1) {
    v /= base;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 1 : 2)} ${names[i]}`;
}

/** `n` bytes in one unit with `digits` decimals: bytesIn(5e9, "GB", 2) → "5.00 GB". */
export function bytesIn(n: number, unit: ByteUnit, digits: number): string {
  return `${(n / unitScale[unit]!).toFixed(digits)} ${unit}`;
}

/** 1418996800 → "1.42 B"; 126892531 → "126.9 M". */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

/** Left-aligned columns separated by two spaces; `right` lists columns to right-align. */
export function table(rows: string[][], right: number[] = []): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, [...cell].length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => {
          const pad = widths[i]! - [...cell].length;
          return right.includes(i) ? " ".repeat(pad) + cell : i === row.length - 1 ? cell : cell + " ".repeat(pad);
        })
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

// Human-readable numbers and aligned tables for the terminal.

/** 1536 → "1.54 kB"; decimal units, as disks and model cards count. */
export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 1 : 2)} ${units[i]}`;
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

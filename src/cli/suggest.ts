// "Did you mean": the known name nearest a mistyped one (a flag, a command, a subcommand), by
// edit distance with a swap of two neighbours counting as one edit, so `--stesp` finds `--steps`.

/** The optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
 * adjacent characters, each one edit. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  return d[a.length]![b.length]!;
}

/** The known name nearest `name` (the first of equals, in the order given), or undefined when
 * none is close: more than a third of the name's characters (at least 2; 1 in a name of up to 3)
 * would have to change. */
export function nearest(name: string, known: readonly string[]): string | undefined {
  const limit = name.length <= 3 ? 1 : Math.max(2, Math.floor(name.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const dist = editDistance(name.toLowerCase(), k.toLowerCase());
    if (dist <= limit && dist < bestDistance) [best, bestDistance] = [k, dist];
  }
  return best;
}

/** "; did you mean X?" for the nearest known name, or "" when none is close. */
export function didYouMean(name: string, known: readonly string[], prefix = ""): string {
  const n = nearest(name, known);
  return n === undefined ? "" : `; did you mean ${prefix}${n}?`;
}

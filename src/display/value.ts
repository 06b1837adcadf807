// What the kernel shows for a cell's value (and display(x)): the value's own MIME bundle when it
// has one, a labelled grid for an array of videos or results, else its text with plain bigints.
import { grid, isVideoLike } from "./grid.js";
import { inspectValue, isDisplayable, type MimeBundle } from "./mime.js";

/** The bundle for a value; every bundle has text/plain. */
export function valueBundle(x: unknown): MimeBundle {
  if (isDisplayable(x)) {
    const b = x.mimeBundle();
    return "text/plain" in b ? b : { ...b, "text/plain": inspectValue(x) };
  }
  if (Array.isArray(x) && x.length > 0 && x.length <= 64 && x.every(isVideoLike)) return grid(x).mimeBundle();
  return { "text/plain": inspectValue(x) };
}

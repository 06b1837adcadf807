// Rich output through tslab's Jupyter connection: whole MIME bundles (tslab's public `display`
// sends one type at a time), with display_id so an output can be updated in place.
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { inKernel } from "./interrupt.js";
import { valueBundle } from "./value.js";

export type MimeBundle = Record<string, unknown>;

interface TslabJupyter {
  lastWriteDisplayData: ((msg: { data: MimeBundle; metadata: Record<string, unknown>; transient: { display_id?: string } }, update: boolean) => void) | null;
}

let jupyter: TslabJupyter | null | undefined;

function connection(): TslabJupyter | null {
  if (jupyter === undefined) {
    try {
      jupyter = inKernel() ? (createRequire(import.meta.url)("tslab/dist/jupyter.js") as TslabJupyter) : null;
    } catch {
      jupyter = null;
    }
  }
  return jupyter?.lastWriteDisplayData ? jupyter : null;
}

/** Sends a bundle to the notebook; false when not in the kernel (scripts, the CLI, tests). */
export function publish(data: MimeBundle, options: { displayId?: string; update?: boolean; metadata?: Record<string, unknown> } = {}): boolean {
  const c = connection();
  if (!c) return false;
  c.lastWriteDisplayData!({ data, metadata: options.metadata ?? {}, transient: options.displayId ? { display_id: options.displayId } : {} }, options.update === true);
  return true;
}

export function newDisplayId(): string {
  return randomBytes(8).toString("hex");
}

/** Something with a MIME bundle: shown rich when it is a cell's value or passed to display(). */
export interface Displayable {
  mimeBundle(): MimeBundle;
}

export function isDisplayable(x: unknown): x is Displayable {
  return typeof x === "object" && x !== null && typeof (x as Displayable).mimeBundle === "function";
}

/** Shows a value in the notebook (its bundle, or a labelled grid for an array of videos), or prints it outside one. */
export function display(x: unknown): void {
  if (publish(valueBundle(x))) return;
  console.log(x);
}

/**
 * Gives `target` a MIME bundle: the kernel shows the bundle when it is a cell's value (one
 * execute_result) or passed to display(); printed (console.log, inside other values) it reads as
 * the one-line summary.
 */
export function makeDisplayable<T extends object>(target: T, bundle: () => MimeBundle, summary: () => string): T & Displayable {
  Object.defineProperty(target, "mimeBundle", { value: bundle, enumerable: false, configurable: true });
  Object.defineProperty(target, inspect.custom, { value: () => summary(), enumerable: false, configurable: true });
  return target as T & Displayable;
}

/** Bigints print as plain integers where a JavaScript number holds them exactly (seeds: 42, not 42n). */
export function plainBigints(text: string, style: string): string {
  if (style !== "bigint") return text;
  const digits = text.endsWith("n") ? text.slice(0, -1) : text;
  return /^-?\d{1,16}$/.test(digits) && Number.isSafeInteger(Number(digits)) ? digits : text;
}

/** A value as the kernel prints it: util.inspect with plain bigints. */
export function inspectValue(x: unknown): string {
  return inspect(x, { stylize: plainBigints } as Parameters<typeof inspect>[1]);
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

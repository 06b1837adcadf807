// A cell's failure as Jupyter shows errors: ename, a one-line evalue and a traceback. A ParamError
// already names its field and allowed values, so the traceback holds only the frames of the
// user's own files: the kernel's internals (the cell's evalmachine wrapper, node:vm, tslab's
// executor, wanlab's dist/src, node's internals, node_modules) are left out unless WANLAB_TRACE=1
// asks for the whole stack.
import { inspect } from "node:util";

export interface JupyterError {
  ename: string;
  evalue: string;
  traceback: string[];
}

/** Frames that belong to the kernel, the package or node, not to the user's code. */
const internalFrame = /evalmachine\.<anonymous>|node:vm|node:internal|\(node:|[\\/]node_modules[\\/]|[\\/]dist[\\/]src[\\/]|[\\/]tslab[\\/]|<anonymous>\)?$/;

export const traceRequested = (env: NodeJS.ProcessEnv = process.env): boolean => env.WANLAB_TRACE === "1" || env.WANLAB_TRACE === "true";

const red = (s: string) => `\u001b[0;31m${s}\u001b[0m`;

/** The error a thrown value shows as in the notebook. */
export function jupyterError(e: unknown, trace = traceRequested()): JupyterError {
  if (!(e instanceof Error) && !(typeof e === "object" && e !== null && "message" in e)) {
    const evalue = inspect(e);
    return { ename: "thrown value", evalue, traceback: [red(`thrown value: ${evalue}`)] };
  }
  const err = e as Error & { field?: unknown; code?: unknown };
  const ename = err.name || err.constructor?.name || "Error";
  const lines = String(err.message ?? "").split("\n");
  const evalue = lines[0]!.trim();
  const frames = (err.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l));
  const shown = trace ? frames : frames.filter((l) => !internalFrame.test(l.trim()));
  const traceback = [red(`${ename}: ${evalue}`), ...lines.slice(1).filter((l) => l.trim())];
  if (typeof err.field === "string") traceback.push(`field: ${err.field}`);
  if (typeof err.code === "string") traceback.push(`code: ${err.code}`);
  traceback.push(...shown.map((l) => l.replace(/^\s+/, "    ")));
  if (!trace && shown.length < frames.length) traceback.push(`(${frames.length - shown.length} internal frame${frames.length - shown.length === 1 ? "" : "s"} hidden; WANLAB_TRACE=1 shows them)`);
  return { ename, evalue, traceback };
}

/** TypeScript's diagnostics for a cell as one error: the first as its value, all in the traceback. */
export function compileError(diagnostics: string[]): JupyterError {
  return { ename: "TypeScript error", evalue: diagnostics[0] ?? "the cell does not compile", traceback: diagnostics.map(red) };
}

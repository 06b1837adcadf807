// The kernel's ■ (SIGINT) as an AbortSignal. Each generation started from a notebook registers its
// controller here; the kernel entry aborts them on SIGINT, so the generation stops at the next
// step boundary and the model stays loaded. The registry is a global so the kernel entry and the
// copy of wanlab a cell imports share it even when they are different module instances.
const key = Symbol.for("wanlab.interrupt.controllers");

function controllers(): Set<AbortController> {
  const g = globalThis as { [key]?: Set<AbortController> };
  return (g[key] ??= new Set());
}

/** An AbortSignal that fires on the kernel's interrupt (and on `signal`, when given); call release() when done. */
export function interruptible(signal?: AbortSignal): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) controller.abort(signal.reason);
  controllers().add(controller);
  return {
    signal: controller.signal,
    release() {
      controllers().delete(controller);
      signal?.removeEventListener("abort", onAbort);
    },
  };
}

/** Aborts every running generation; returns how many there were. */
export function interruptAll(): number {
  const all = [...controllers()];
  for (const c of all) c.abort(new Error("interrupted"));
  controllers().clear();
  return all.length;
}

/** True inside the wanlab Jupyter kernel (set by its entry point). */
export function inKernel(): boolean {
  return (globalThis as Record<symbol, unknown>)[Symbol.for("wanlab.kernel")] === true;
}

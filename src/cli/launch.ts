// `--rendezvous env://` on the command line (src/launch-env.ts): its faults are usage errors.
import { resolve as resolvePath } from "node:path";
import { LaunchError, resolveEnvRendezvous, type GroupOptions } from "../launch-env.js";
import { UsageError } from "./parse.js";

/** env:// resolved for a command line: its faults are usage errors (exit 2); says where this rank logs. */
export function cliEnvRendezvous<T extends GroupOptions>(p: T): T {
  try {
    const r = resolveEnvRendezvous(p);
    console.error(`wanlab: rank ${r.launch!.rank} of ${r.launch!.worldSize} (env://, store ${r.rendezvous!.slice(6)}), ` +
      `devices ${r.devices}, logs in ${resolvePath(r.logDir!)}`);
    const { launch: _launch, ...rest } = r;
    return rest as unknown as T;
  } catch (e) {
    throw e instanceof LaunchError ? new UsageError(e.message) : e;
  }
}
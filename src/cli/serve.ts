// `wanlab serve`: the HTTP server (src/server/) on one engine; fastify loads only for this command.
import type { ServeOptions } from "../server/index.js";
import { rangeOf } from "../options/table.js";
import { budgetOption, choice, computeOpenOptions, groupOpenOptions, help, intOption, parseCommand, UsageError } from "./parse.js";
import { cliEnvRendezvous } from "./launch.js";

export async function cmdServe(args: string[]): Promise<number> {
  const { values: v } = parseCommand(args, "serve");
  if (v.help) return help("serve");
  const env = v.rendezvous === "env://";
  if (!env && v.devices === undefined && (v.ulysses !== undefined || v.ring !== undefined || v["cfg-parallel"]))
    throw new UsageError("--ulysses, --ring and --cfg-parallel need --devices listing the ranks (e.g. --devices cpu:0-3)");
  // --budget none: no engine budget and no host guard (the server's default refuses jobs
  // predicted beyond the device's or the host's memory).
  const none = v.budget === "none";
  budgetOption(none ? undefined : v.budget, true);
  const options: ServeOptions & { guard?: boolean } = {
    model: v.model as string | undefined,
    host: v.host as string | undefined,
    port: intOption("port", v.port as string | undefined, ...rangeOf("serve", "port")),
    outputs: v.outputs as string | undefined,
    allowRemote: v["allow-remote"] === true,
    graceMs: (intOption("grace", v.grace as string | undefined, ...rangeOf("serve", "grace")) ?? 30) * 1000,
    quiet: v.quiet === true,
    // --rendezvous env:// (torchrun): rank 0 serves HTTP, the other ranks follow it.
    parallel: (env ? cliEnvRendezvous : <T>(p: T) => p)({ ...groupOpenOptions(v), ...computeOpenOptions(none ? { ...v, budget: undefined } : v),
      layout: choice("layout", v.layout as string | undefined, ["auto"] as const),
      transport: choice("transport", v.transport as string | undefined, ["gloo", "nccl"] as const) }),
    ...(none ? { guard: false } : {}),
  };
  const { runServer } = await import("../server/index.js"); // fastify loads only for this command
  return runServer(options);
}

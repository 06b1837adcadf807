// `--rendezvous env://` (`rendezvous: "env://"` in the API): a launch the way PyTorch jobs launch
// under torchrun, Slurm or Kubernetes, from the variables they set (MASTER_ADDR, MASTER_PORT, RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE). Each process becomes one node of wanlab's multi-node
// group (native/src/parallel/device_group.h): node rank RANK of WORLD_SIZE, by default one rank on
// `cuda:$LOCAL_RANK` (CPU builds, or no GPU visible: `cpu`), the store at MASTER_ADDR. Everything
// is checked here, before any load, and each error names the variable or flag at fault.

/** What the launcher's variables say about this process. */
export interface EnvLaunch {
  rank: number;
  worldSize: number;
  localRank: number;
  /** LOCAL_WORLD_SIZE when set. */
  localWorldSize?: number;
  masterAddr: string;
  masterPort: number;
  /** Where rank 0 serves wanlab's TCPStore: MASTER_PORT, or MASTER_PORT + 1 when torchrun's agent
   * holds MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True), or $WANLAB_STORE_PORT. */
  storePort: number;
  /** torchrun's agent serves its own store on MASTER_PORT. */
  agentStore: boolean;
  /** The launcher's job id (TORCHELASTIC_RUN_ID, SLURM_JOB_ID), else "port-MASTER_PORT": names the default log folder. */
  runId: string;
}

/** The group options env:// fills in (a subset of OpenOptions, kept structural to avoid a cycle). */
export interface GroupOptions {
  devices?: string;
  ulysses?: number;
  ring?: number;
  cfgParallel?: boolean;
  rendezvous?: string;
  nnodes?: number;
  nodeRank?: number;
  logDir?: string;
  logLevel?: "error" | "warn" | "info" | "debug";
}

/** A launch variable or flag that cannot work: raised before anything loads. */
export class LaunchError extends Error {}

const required = ["MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"] as const;

function intVar(env: NodeJS.ProcessEnv, name: string, lo: number, hi: number): number {
  const s = env[name]!;
  const n = Number(s);
  if (!/^\d+$/.test(s.trim()) || n < lo || n > hi)
    throw new LaunchError(`--rendezvous env://: ${name}='${s}' must be an integer in [${lo}, ${hi}]`);
  return n;
}

/** Reads and checks the launcher's variables; errors name each missing or invalid one. */
export function readLaunchEnv(env: NodeJS.ProcessEnv = process.env): EnvLaunch {
  const missing = required.filter((k) => env[k] === undefined || env[k] === "");
  if (missing.length)
    throw new LaunchError(`--rendezvous env:// needs ${missing.join(", ")} in the environment (torchrun sets them; ` +
      "under Slurm set RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID and MASTER_ADDR/MASTER_PORT to the first node)");
  const masterAddr = env.MASTER_ADDR!.trim();
  if (!/^[A-Za-z0-9._:-]+$/.test(masterAddr) || masterAddr.length > 253)
    throw new LaunchError(`--rendezvous env://: MASTER_ADDR='${env.MASTER_ADDR}' is not a host name or address`);
  const masterPort = intVar(env, "MASTER_PORT", 1, 65535);
  const worldSize = intVar(env, "WORLD_SIZE", 1, 1024);
  const rank = intVar(env, "RANK", 0, 1023);
  if (rank >= worldSize) throw new LaunchError(`--rendezvous env://: RANK=${rank} must be below WORLD_SIZE=${worldSize}`);
  const localRank = intVar(env, "LOCAL_RANK", 0, 1023);
  let localWorldSize: number | undefined;
  if (env.LOCAL_WORLD_SIZE !== undefined && env.LOCAL_WORLD_SIZE !== "") {
    localWorldSize = intVar(env, "LOCAL_WORLD_SIZE", 1, 1024);
    if (localRank >= localWorldSize)
      throw new LaunchError(`--rendezvous env://: LOCAL_RANK=${localRank} must be below LOCAL_WORLD_SIZE=${localWorldSize}`);
    if (localWorldSize > worldSize)
      throw new LaunchError(`--rendezvous env://: LOCAL_WORLD_SIZE=${localWorldSize} exceeds WORLD_SIZE=${worldSize}`);
  }
  const agentStore = env.TORCHELASTIC_USE_AGENT_STORE === "True";
  let storePort = agentStore ? masterPort + 1 : masterPort;
  if (env.WANLAB_STORE_PORT !== undefined && env.WANLAB_STORE_PORT !== "") storePort = intVar(env, "WANLAB_STORE_PORT", 1, 65535);
  else if (storePort > 65535)
    throw new LaunchError(`--rendezvous env://: torchrun's agent holds MASTER_PORT=${masterPort} and wanlab's store takes the next port, ` +
      "which does not exist; pick a lower --master-port or set WANLAB_STORE_PORT");
  const elastic = env.TORCHELASTIC_RUN_ID && env.TORCHELASTIC_RUN_ID !== "none" ? env.TORCHELASTIC_RUN_ID : undefined;
  const runId = (elastic || env.SLURM_JOB_ID || `port-${masterPort}`).replace(/[^A-Za-z0-9._-]/g, "_");
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, storePort, agentStore, runId };
}

/** Ranks a --devices list names (1 for "auto" and "auto:K"); undefined when it cannot be read
 * here (the engine's own parser then names the fault). */
function localRanks(devices: string): number | undefined {
  const m = /^(cpu|cuda)(?::(.+))?$/.exec(devices.trim());
  if (/^auto(:\d+)?$/.test(devices.trim())) return 1;
  if (!m) return undefined;
  if (m[2] === undefined) return 1;
  let n = 0;
  for (const part of m[2].split(",")) {
    const r = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!r) return undefined;
    n += Math.max(0, Number(r[2] ?? r[1]) - Number(r[1]) + 1);
  }
  return n;
}

/** The options with env:// resolved (any other rendezvous: unchanged). The group spans WORLD_SIZE
 * processes × the ranks each names in `devices` (default one: "auto:LOCAL_RANK"); --ulysses,
 * --ring and --cfg-parallel describe that whole world. Without `logDir`, every rank logs to
 * wanlab-logs/RUN_ID/rank-K.log, at level info unless `logLevel` or $WANLAB_LOG_LEVEL says otherwise. */
export function resolveEnvRendezvous<T extends GroupOptions>(o: T, env: NodeJS.ProcessEnv = process.env): T & { launch?: EnvLaunch } {
  if (o.rendezvous !== "env://") return o;
  if (o.nnodes !== undefined || o.nodeRank !== undefined)
    throw new LaunchError("--rendezvous env:// takes the node count from WORLD_SIZE and the node rank from RANK; drop --nnodes and --node-rank");
  const launch = readLaunchEnv(env);
  const devices = o.devices ?? `auto:${launch.localRank}`;
  const local = localRanks(devices);
  if (local !== undefined) {
    const world = launch.worldSize * local;
    const per = local === 1 ? "" : ` × ${local} ranks per process (--devices ${devices})`;
    const cfg = o.cfgParallel ? 2 : 1;
    const named = [o.ulysses !== undefined ? `--ulysses ${o.ulysses}` : "", o.ring !== undefined ? `--ring ${o.ring}` : "",
      o.cfgParallel ? "--cfg-parallel (2)" : ""].filter(Boolean).join(" × ");
    const product = (o.ulysses ?? 1) * (o.ring ?? 1) * cfg;
    const complete = o.ulysses !== undefined && o.ring !== undefined;
    if (named && (complete ? product !== world : world % product !== 0))
      throw new LaunchError(`--rendezvous env://: WORLD_SIZE=${launch.worldSize}${per} gives ${world} rank${world === 1 ? "" : "s"}, ` +
        `but ${named} ${complete ? "makes" : "does not divide them into"} ${complete ? product : "whole groups"}` +
        `${complete ? "" : ` (${product})`}; the degrees describe the whole world`);
  }
  return {
    ...o,
    devices,
    rendezvous: `tcp://${launch.masterAddr}:${launch.storePort}`,
    nnodes: launch.worldSize,
    nodeRank: launch.rank,
    logDir: o.logDir ?? `wanlab-logs/${launch.runId}`,
    logLevel: o.logLevel ?? (env.WANLAB_LOG_LEVEL ? undefined : "info"),
    launch,
  };
}

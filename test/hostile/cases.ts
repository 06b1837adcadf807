// The case table of the hostile-input suite: corrupted copies of the tiny model (configs,
// sharded indexes, safetensors headers and data, torch.save pickles and zips, tokenizer.json),
// output targets that are special files, and malformed command lines. Each case says what it
// runs (`wanlab inspect`, `wanlab generate` on the smallest video, or `wanlab-engine inspect`),
// what must happen (a refusal whose error names the culprit, or a normal run) and its limits.
// The HTTP cases are in http.ts.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  deepJson, deepObjects, editSafetensors, pickleCall, pickleCallInDict, pickleDeepList, pickleGetattrImport, pickleInst, pickleLaughs, pickleObj,
  pickleStackGlobalCall, pickleSubprocess, readSafetensorsFile, readZip, replacePickle, tensorEntries, writeSafetensorsFile, writeZip, type HeaderEntry,
} from "./files.js";
import { GiB, MiB } from "./harness.js";

export type Runner = "inspect" | "generate" | "engine-inspect" | "cli";

export interface Case {
  name: string;
  /** What runs it: the CLI's inspect, its generate (16×16, 1 frame, 1 step), the C++ engine's inspect, or the CLI with `args`. */
  run: Runner;
  /** The model it starts from, copied afresh for the case ("none": no model). */
  base: "official" | "sharded" | "none";
  /** Corrupts the copy (`dir`); `scratch` is the case's own folder for anything else. */
  mutate?: (dir: string, scratch: string) => void;
  /** Extra arguments (generate: replacing --output when they name one); for "cli", all of them. */
  args?: (dir: string, scratch: string) => string[];
  expect: "refused" | "ok";
  /** Patterns the error (stderr) must match when refused: the file, the key, the tensor, the flag. */
  error?: RegExp[];
  /** A check after the run, whatever its outcome (a marker file not created, a device node kept). */
  after?: (dir: string, scratch: string) => string | undefined;
  /** A check of an ok run's result. */
  check?: (dir: string, scratch: string) => string | undefined;
  capBytes?: number;
  timeoutMs?: number;
  /** Why the case cannot run here (e.g. not root for mknod), or undefined. */
  skip?: () => string | undefined;
}

/** Memory caps: the CLI and libtorch need some hundreds of MiB for the tiny model; a generate of
 * the smallest video peaks near 0.5 GiB. A case past its cap is eating the host. */
export const caps = { inspect: 1 * GiB, generate: 2 * GiB, engine: 1 * GiB, cli: 1 * GiB, server: 2 * GiB };
export const timeouts = { inspect: 60_000, generate: 120_000, engine: 60_000, cli: 60_000 };

export const T5 = "models_t5_umt5-xxl-enc-bf16.pth";
export const VAE = "Wan2.1_VAE.pth";
export const DIT = "diffusion_pytorch_model.safetensors";
export const INDEX = "diffusion_pytorch_model.safetensors.index.json";
export const TOKENIZER = join("google", "umt5-xxl", "tokenizer.json");

function editJson(path: string, edit: (j: Record<string, unknown>) => void, indent = 2): void {
  const j = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  edit(j);
  writeFileSync(path, JSON.stringify(j, null, indent));
}

/** Sets config.json's `key` to raw JSON text `raw` (so NaN, 1e9 and the like are written as given). */
function configRaw(key: string, raw: string) {
  return (dir: string) => {
    const text = readFileSync(join(dir, "config.json"), "utf8");
    const re = new RegExp(`("${key}"\\s*:\\s*)[^,}\\n]+`);
    if (!re.test(text)) throw new Error(`config.json has no ${key}`);
    writeFileSync(join(dir, "config.json"), text.replace(re, `$1${raw}`));
  };
}

const reConfig = /config\.json/;
const key = (k: string) => new RegExp(`\\b${k}\\b`);

/** Names the culprit a case's error must name when it is only known once the copy is corrupted
 * (the suite reads it back from `scratch`/culprit.txt). */
export function culprit(scratch: string, name: string): void {
  writeFileSync(join(scratch, "culprit.txt"), name);
}

/** A marker the hostile pickles try to create: it must not exist afterwards. */
function marker(scratch: string): string {
  return join(scratch, "pwned");
}
function noMarker(_dir: string, scratch: string): string | undefined {
  return existsSync(marker(scratch)) ? `the pickle's payload ran: ${marker(scratch)} exists` : undefined;
}

/** An mp4 of some size, and its sidecar JSON, at `path` (a control's result). */
function wroteVideo(path: string): string | undefined {
  if (!existsSync(path) || statSync(path).size < 100) return `no video at ${path}`;
  if (!existsSync(`${path}.json`)) return `no ${path}.json`;
  return undefined;
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** A private character device (a copy of /dev/null's numbers) made with mknod in `scratch`. */
function charDevice(scratch: string, name: string): string {
  const p = join(scratch, name);
  const { status } = spawnMknod(p);
  if (status !== 0) throw new Error(`mknod ${p} failed`);
  return p;
}
function spawnMknod(p: string) {
  return spawnSync("mknod", [p, "c", "1", "3"], { stdio: "ignore" });
}
function stillCharDevice(p: string): string | undefined {
  try {
    return lstatSync(p).isCharacterDevice() ? undefined : `${p} is no longer a character device`;
  } catch {
    return `${p} is gone`;
  }
}
function needsRoot(): string | undefined {
  return isRoot() ? undefined : "mknod needs root";
}

/** The shard files a sharded model's index names, sorted. */
function shards(dir: string): string[] {
  const j = JSON.parse(readFileSync(join(dir, INDEX), "utf8")) as { weight_map: Record<string, string> };
  return [...new Set(Object.values(j.weight_map))].sort();
}

/** Pickles that would create the file `marker` if unpickled by Python (do not try). */
const hostilePickles: Record<string, (marker: string) => Buffer> = {
  os_system_inside_the_state_dict: (m) => pickleCallInDict("os", "system", `touch ${m}`),
  posix_system: (m) => pickleCall("posix", "system", `touch ${m}`),
  builtins_eval: (m) => pickleCall("builtins", "eval", `open(${JSON.stringify(m)}, "w")`),
  builtins_exec_through_stack_global: (m) => pickleStackGlobalCall("builtins", "exec", `open(${JSON.stringify(m)}, "w")`),
  subprocess_call: (m) => pickleSubprocess(["touch", m]),
  inst_opcode_os_system: (m) => pickleInst("os", "system", `touch ${m}`),
  obj_opcode_os_system: (m) => pickleObj("os", "system", `touch ${m}`),
  getattr_of_import_os_system: (m) => pickleGetattrImport("os", "system", `touch ${m}`),
};

/** One corruption checked by both `inspect` and `generate` (inspect runs the same validation). */
function both(name: string, c: Omit<Case, "name" | "run">): Case[] {
  return [
    { ...c, name: `${name} (inspect)`, run: "inspect" },
    { ...c, name: `${name} (generate)`, run: "generate" },
  ];
}

/** The largest F32 tensor of the DiT file that is a block weight (2-D), and its entry. */
function blockWeight(header: Record<string, unknown>): [string, HeaderEntry] {
  const e = tensorEntries(header).find(([k, v]) => /blocks\.0\..*\.weight$/.test(k) && v.shape.length === 2 && v.dtype === "F32");
  if (!e) throw new Error("no 2-D F32 block weight in the DiT file");
  return e;
}

function fillF32(st: { header: Record<string, unknown>; data: Buffer }, name: string, value: number): void {
  const e = st.header[name] as HeaderEntry;
  for (let o = e.data_offsets[0]; o < e.data_offsets[1]; o += 4) st.data.writeFloatLE(value, o);
}

export const generateArgs = (dir: string, scratch: string): string[] => [
  "generate", "--model", dir, "--prompt", "a cat", "--seed", "1", "--height", "16", "--width", "16", "--num-frames", "1", "--num-inference-steps", "1",
  "--output", join(scratch, "out.mp4"),
];

export const cases: Case[] = [
  // --- controls: the pristine tiny model works, so every refusal below is the corruption's doing
  { name: "control_inspect_of_the_pristine_tiny_model_is_ok", run: "inspect", base: "official", expect: "ok" },
  { name: "control_inspect_of_the_pristine_sharded_model_is_ok", run: "inspect", base: "sharded", expect: "ok" },
  { name: "control_engine_inspect_of_the_pristine_tiny_model_is_ok", run: "engine-inspect", base: "official", expect: "ok" },
  { name: "control_generate_on_the_pristine_tiny_model_writes_a_video", run: "generate", base: "official", expect: "ok",
    check: (_d, s) => wroteVideo(join(s, "out.mp4")) },

  // --- config.json: every architecture value is bounded by the weights before anything is allocated
  ...both("config_text_len_1e9_is_refused_naming_the_key_before_allocating", { base: "official", mutate: configRaw("text_len", "1000000000"), expect: "refused", error: [reConfig, key("text_len")] }),
  ...both("config_text_len_zero_is_refused_naming_the_key", { base: "official", mutate: configRaw("text_len", "0"), expect: "refused", error: [reConfig, key("text_len")] }),
  ...both("config_negative_dim_is_refused_naming_the_key", { base: "official", mutate: configRaw("dim", "-256"), expect: "refused", error: [reConfig, key("dim")] }),
  { name: "config_zero_ffn_dim_is_refused_naming_the_key", run: "inspect", base: "official", mutate: configRaw("ffn_dim", "0"), expect: "refused", error: [reConfig, key("ffn_dim")] },
  { name: "config_float_dim_is_refused_naming_the_key", run: "inspect", base: "official", mutate: configRaw("dim", "256.5"), expect: "refused", error: [reConfig, key("dim")] },
  { name: "config_string_dim_is_refused_naming_the_key", run: "inspect", base: "official", mutate: configRaw("dim", '"256"'), expect: "refused", error: [reConfig, key("dim")] },
  ...both("config_num_heads_1_5_is_refused_naming_the_key", { base: "official", mutate: configRaw("num_heads", "1.5"), expect: "refused", error: [reConfig, key("num_heads")] }),
  ...both("config_num_heads_two_as_text_is_refused_naming_the_key", { base: "official", mutate: configRaw("num_heads", '"two"'), expect: "refused", error: [reConfig, key("num_heads")] }),
  { name: "config_num_heads_not_dividing_dim_is_refused_naming_the_key", run: "inspect", base: "official", mutate: configRaw("num_heads", "3"), expect: "refused", error: [reConfig, key("num_heads")] },
  ...both("config_eps_negative_is_refused_naming_the_key", { base: "official", mutate: configRaw("eps", "-1.0"), expect: "refused", error: [reConfig, key("eps")] }),
  { name: "config_eps_nan_literal_is_refused_naming_the_file", run: "inspect", base: "official", mutate: configRaw("eps", "NaN"), expect: "refused", error: [reConfig] },
  { name: "config_eps_nan_string_is_refused_naming_the_key", run: "inspect", base: "official", mutate: configRaw("eps", '"nan"'), expect: "refused", error: [reConfig, key("eps")] },
  ...both("config_num_layers_1e6_is_refused_naming_the_key", { base: "official", mutate: configRaw("num_layers", "1000000"), expect: "refused", error: [reConfig, key("num_layers")] }),
  { name: "config_freq_dim_1e9_is_refused_naming_the_key", run: "generate", base: "official", mutate: configRaw("freq_dim", "1000000000"), expect: "refused", error: [reConfig, key("freq_dim")] },
  { name: "config_that_is_an_array_is_refused_naming_the_file", run: "inspect", base: "official", mutate: (d) => writeFileSync(join(d, "config.json"), "[1, 2]"), expect: "refused", error: [reConfig] },
  { name: "config_that_is_empty_is_refused_naming_the_file", run: "inspect", base: "official", mutate: (d) => writeFileSync(join(d, "config.json"), ""), expect: "refused", error: [reConfig] },
  { name: "config_nested_100k_deep_is_refused_naming_the_file", run: "inspect", base: "official",
    mutate: (d) => writeFileSync(join(d, "config.json"), deepJson(100_000, "dim")), expect: "refused", error: [reConfig] },
  { name: "config_of_2_mib_is_refused_naming_the_file_and_the_limit", run: "inspect", base: "official",
    mutate: (d) => editJson(join(d, "config.json"), (j) => { j._comment = "x".repeat(2 * MiB); }), expect: "refused", error: [reConfig, /MiB|bytes|large|limit/i] },
  { name: "config_of_200k_values_is_refused_naming_the_file_and_the_limit", run: "inspect", base: "official",
    mutate: (d) => editJson(join(d, "config.json"), (j) => { j._comment = new Array(200_000).fill(0); }, 0), expect: "refused", error: [reConfig, /values|limit/i] },
  { name: "config_nested_100k_objects_deep_is_refused_by_the_engine_naming_the_file", run: "engine-inspect", base: "official",
    mutate: (d) => writeFileSync(join(d, "config.json"), deepObjects(100_000)), expect: "refused", error: [reConfig] },

  // --- sharded index.json
  ...both("index_weight_map_value_5_is_refused_naming_the_index_and_tensor", { base: "sharded",
    mutate: (d) => editJson(join(d, INDEX), (j) => { const wm = j.weight_map as Record<string, unknown>; wm[Object.keys(wm)[0]!] = 5; }),
    expect: "refused", error: [/safetensors\.index\.json/, /weight_map|not a string|tensor/] }),
  { name: "index_naming_a_missing_shard_is_refused_naming_the_shard", run: "inspect", base: "sharded",
    mutate: (d, s) => { const shard = shards(d)[1]!; rmSync(join(d, shard)); culprit(s, shard); }, expect: "refused" },
  { name: "index_path_traversal_in_weight_map_is_refused_naming_the_index", run: "inspect", base: "sharded",
    mutate: (d) => {
      // a real safetensors file outside the model folder that a traversal would reach
      const shard = shards(d)[0]!;
      writeFileSync(join(d, "..", "outside.safetensors"), readFileSync(join(d, shard)));
      editJson(join(d, INDEX), (j) => { const wm = j.weight_map as Record<string, string>; for (const k of Object.keys(wm)) if (wm[k] === shard) wm[k] = "../outside.safetensors"; });
    }, expect: "refused", error: [/safetensors\.index\.json/, /\.\.\/outside\.safetensors/] },
  { name: "index_absolute_path_in_weight_map_is_refused_naming_the_index", run: "inspect", base: "sharded",
    mutate: (d) => editJson(join(d, INDEX), (j) => { const wm = j.weight_map as Record<string, string>; wm[Object.keys(wm)[0]!] = "/etc/passwd"; }),
    expect: "refused", error: [/safetensors\.index\.json/, /\/etc\/passwd/] },
  { name: "index_nested_100k_deep_is_refused_naming_the_index", run: "inspect", base: "sharded",
    mutate: (d) => writeFileSync(join(d, INDEX), deepJson(100_000, "weight_map")), expect: "refused", error: [/safetensors\.index\.json/] },

  // --- safetensors headers and data
  { name: "safetensors_header_length_2_63_is_refused_naming_the_file", run: "inspect", base: "official",
    mutate: (d) => { const st = readSafetensorsFile(join(d, DIT)); writeSafetensorsFile(join(d, DIT), st.header, st.data, 1n << 63n); },
    expect: "refused", error: [new RegExp(DIT.replace(".", "\\.")), /header length/] },
  { name: "safetensors_header_length_past_the_end_is_refused_as_truncated", run: "engine-inspect", base: "official",
    mutate: (d) => { const st = readSafetensorsFile(join(d, DIT)); writeSafetensorsFile(join(d, DIT), st.header, Buffer.alloc(0), 50n * 1024n * 1024n); },
    expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /truncated/] },
  { name: "safetensors_header_of_4m_nested_arrays_is_refused_within_its_cap", run: "inspect", base: "official",
    mutate: (d) => writeSafetensorsFile(join(d, DIT), deepJson(2_000_000, "a"), Buffer.alloc(0)),
    expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /nest|deep|depth/i], capBytes: 1 * GiB },
  { name: "safetensors_header_of_4m_nested_arrays_is_refused_by_the_engine_within_its_cap", run: "engine-inspect", base: "official",
    mutate: (d) => writeSafetensorsFile(join(d, DIT), deepJson(2_000_000, "a"), Buffer.alloc(0)),
    expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /nest|deep|depth/i], capBytes: 512 * MiB },
  { name: "safetensors_header_of_1_5m_values_is_refused_within_its_cap", run: "inspect", base: "official",
    mutate: (d) => writeSafetensorsFile(join(d, DIT), `{"a":[${new Array(1_500_000).fill(0).join(",")}]}`, Buffer.alloc(0)),
    expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /values|limit/i] },
  { name: "safetensors_offsets_past_the_data_are_refused_naming_the_tensor", run: "inspect", base: "official",
    mutate: (d) => editSafetensors(join(d, DIT), (st) => { const [k, e] = blockWeight(st.header); e.data_offsets = [e.data_offsets[0], 1e12]; st.header[k] = e; }),
    expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /blocks\.0\./] },
  { name: "safetensors_overlapping_tensors_are_refused_naming_both", run: "inspect", base: "official",
    mutate: (d) => editSafetensors(join(d, DIT), (st) => {
      // the second largest tensor moved to start 4 bytes into the largest (both keep their sizes)
      const [[a, ea], [b, eb]] = tensorEntries(st.header) as [[string, HeaderEntry], [string, HeaderEntry]];
      eb.data_offsets = [ea.data_offsets[0] + 4, ea.data_offsets[0] + 4 + (eb.data_offsets[1] - eb.data_offsets[0])];
      st.header[a] = ea; st.header[b] = eb;
    }), expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /overlap|and "/] },
  { name: "safetensors_dtype_disagreeing_with_the_byte_count_is_refused_naming_the_tensor", run: "inspect", base: "official",
    mutate: (d) => editSafetensors(join(d, DIT), (st) => { const [k, e] = blockWeight(st.header); e.dtype = "F64"; st.header[k] = e; }),
    expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /blocks\.0\./] },
  { name: "safetensors_unknown_dtype_is_refused_naming_the_tensor", run: "inspect", base: "official",
    mutate: (d) => editSafetensors(join(d, DIT), (st) => { const [k, e] = blockWeight(st.header); e.dtype = "Q7"; st.header[k] = e; }),
    expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /blocks\.0\./, /Q7/] },
  ...both("safetensors_byte_tensor_as_a_weight_is_refused_naming_the_tensor", { base: "official",
    mutate: (d) => editSafetensors(join(d, DIT), (st) => { const [k, e] = blockWeight(st.header); e.dtype = "U8"; e.shape = [e.shape[0]!, e.shape[1]! * 4]; st.header[k] = e; }),
    expect: "refused", error: [/blocks\.0\./, /U8|uint8|Byte|integer/i] }),
  { name: "safetensors_negative_shape_is_refused_naming_the_tensor", run: "inspect", base: "official",
    mutate: (d) => editSafetensors(join(d, DIT), (st) => { const [k, e] = blockWeight(st.header); e.shape = [-e.shape[0]!, -e.shape[1]!]; st.header[k] = e; }),
    expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /blocks\.0\./] },
  { name: "safetensors_transposed_weight_is_refused_naming_the_tensor_or_the_key_it_contradicts", run: "inspect", base: "official",
    mutate: (d) => editSafetensors(join(d, DIT), (st) => {
      const e = tensorEntries(st.header).find(([k, v]) => /blocks\.0\..*\.weight$/.test(k) && v.shape.length === 2 && v.shape[0] !== v.shape[1]);
      if (!e) throw new Error("no non-square block weight");
      e[1].shape = [e[1].shape[1]!, e[1].shape[0]!]; st.header[e[0]] = e[1];
    }), expect: "refused", error: [/diffusion_pytorch_model\.safetensors/, /blocks\.0\.|\b(ffn_dim|dim|text_dim|freq_dim)\b/] },
  ...both("safetensors_missing_tensor_is_refused_naming_it", { base: "official",
    mutate: (d, s) => editSafetensors(join(d, DIT), (st) => {
      // the tensor stored last, so no gap is left in the data: only its absence is wrong
      const [k, e] = tensorEntries(st.header).sort((a, b) => b[1].data_offsets[1] - a[1].data_offsets[1])[0]!;
      delete st.header[k];
      st.data = st.data.subarray(0, e.data_offsets[0]);
      culprit(s, k);
    }), expect: "refused" }),
  { name: "safetensors_truncated_to_half_is_refused_naming_the_file", run: "inspect", base: "official",
    mutate: (d) => truncateSync(join(d, DIT), Math.floor(statSync(join(d, DIT)).size / 2)), expect: "refused", error: [/diffusion_pytorch_model\.safetensors/] },
  { name: "safetensors_nan_weights_fail_generate_naming_a_stage_not_exit_0", run: "generate", base: "official",
    mutate: (d) => editSafetensors(join(d, DIT), (st) => { for (const [k, e] of tensorEntries(st.header)) if (/^head\.head\.weight$|blocks\.0\.self_attn\.o\.weight$/.test(k) && e.dtype === "F32") fillF32(st, k, NaN); }),
    expect: "refused", error: [/NaN|non-finite|not finite|Inf/i, /denois|step|block|decode|latent|stage/i] },
  { name: "safetensors_inf_weights_fail_generate_naming_a_stage_not_exit_0", run: "generate", base: "official",
    mutate: (d) => editSafetensors(join(d, DIT), (st) => { const [k] = blockWeight(st.header); fillF32(st, k, Infinity); }),
    expect: "refused", error: [/NaN|non-finite|not finite|Inf/i, /denois|step|block|decode|latent|stage/i] },

  // --- torch.save (.pth): the suite's own zip writer makes loadable archives (so the refusals below are the pickles' doing)
  { name: "control_pth_rewritten_by_the_suites_zip_writer_loads", run: "inspect", base: "official", expect: "ok",
    mutate: (d) => { for (const f of [T5, VAE]) writeZip(join(d, f), readZip(join(d, f))); } },
  // --- torch.save (.pth): hostile pickles are refused without running, zips that lie about sizes
  ...Object.entries(hostilePickles).map(([what, make]): Case => ({
    name: `pth_pickle_${what}_is_refused_without_running_it`, run: "inspect", base: "official",
    mutate: (d, s) => replacePickle(join(d, T5), make(marker(s))),
    expect: "refused", error: [/models_t5_umt5-xxl-enc-bf16\.pth/, /refus|unsupported|not a dict/i], after: noMarker,
  })),
  { name: "pth_pickle_os_system_is_refused_by_the_engine_without_running_it", run: "engine-inspect", base: "official",
    mutate: (d, s) => replacePickle(join(d, VAE), pickleCallInDict("os", "system", `touch ${marker(s)}`)),
    expect: "refused", error: [/Wan2\.1_VAE\.pth/, /os\.system/], after: noMarker },
  { name: "pth_pickle_list_nested_1m_deep_is_refused_within_its_cap", run: "inspect", base: "official",
    mutate: (d) => replacePickle(join(d, T5), pickleDeepList(1_000_000)), expect: "refused", error: [/models_t5_umt5-xxl-enc-bf16\.pth/] },
  { name: "pth_pickle_billion_laughs_through_the_memo_is_refused_within_its_cap", run: "inspect", base: "official",
    mutate: (d) => replacePickle(join(d, T5), pickleLaughs(12)), expect: "refused", error: [/models_t5_umt5-xxl-enc-bf16\.pth/] },
  { name: "pth_zip_entry_declaring_1_tib_is_refused_naming_the_entry", run: "inspect", base: "official",
    mutate: (d) => {
      const entries = readZip(join(d, VAE));
      const big = entries.filter((e) => /\/data\/\d+$/.test(e.name)).sort((a, b) => b.data.length - a.data.length)[0]!;
      writeZip(join(d, VAE), entries, { declaredSize: { [big.name]: 1n << 40n } });
    }, expect: "refused", error: [/Wan2\.1_VAE\.pth/] },
  { name: "pth_truncated_to_half_is_refused_naming_the_file", run: "inspect", base: "official",
    mutate: (d) => truncateSync(join(d, VAE), Math.floor(statSync(join(d, VAE)).size / 2)), expect: "refused", error: [/Wan2\.1_VAE\.pth/] },
  { name: "pth_that_is_not_a_zip_is_refused_naming_the_file", run: "inspect", base: "official",
    mutate: (d) => writeFileSync(join(d, T5), Buffer.alloc(4096, 0x41)), expect: "refused", error: [/models_t5_umt5-xxl-enc-bf16\.pth/] },

  // --- tokenizer.json
  ...both("tokenizer_json_missing_is_refused_naming_it", { base: "official", mutate: (d) => rmSync(join(d, TOKENIZER)), expect: "refused", error: [/tokenizer\.json/] }),
  { name: "tokenizer_json_nested_100k_deep_is_refused_naming_it", run: "generate", base: "official",
    mutate: (d) => writeFileSync(join(d, TOKENIZER), deepJson(100_000, "model")), expect: "refused", error: [/tokenizer\.json/] },
  { name: "tokenizer_json_not_json_is_refused_naming_it", run: "generate", base: "official",
    mutate: (d) => writeFileSync(join(d, TOKENIZER), "{not json"), expect: "refused", error: [/tokenizer\.json/] },

  // --- outputs over special files: refused before compute, the node untouched
  { name: "output_over_a_character_device_is_refused_and_the_device_kept", run: "generate", base: "official", skip: needsRoot,
    args: (_d, s) => ["--output", charDevice(s, "null")], expect: "refused", error: [/null/],
    after: (_d, s) => stillCharDevice(join(s, "null")) },
  { name: "save_tensors_over_a_character_device_is_refused_and_the_device_kept", run: "generate", base: "official", skip: needsRoot,
    args: (_d, s) => ["--save-tensors", charDevice(s, "tensors")], expect: "refused", error: [/tensors/],
    after: (_d, s) => stillCharDevice(join(s, "tensors")) },
  { name: "output_whose_sidecar_json_is_a_character_device_is_refused_and_the_device_kept", run: "generate", base: "official", skip: needsRoot,
    args: (_d, s) => { charDevice(s, "v.mp4.json"); return ["--output", join(s, "v.mp4")]; }, expect: "refused", error: [/v\.mp4\.json/],
    after: (_d, s) => stillCharDevice(join(s, "v.mp4.json")) },
  { name: "output_over_a_fifo_is_refused_without_blocking_and_the_fifo_kept", run: "generate", base: "official", timeoutMs: 60_000,
    args: (_d, s) => { spawnSync("mkfifo", [join(s, "fifo")]); return ["--output", join(s, "fifo")]; }, expect: "refused", error: [/fifo/],
    after: (_d, s) => (lstatSync(join(s, "fifo")).isFIFO() ? undefined : "the fifo was replaced") },
  { name: "output_that_is_a_directory_is_refused_naming_it", run: "generate", base: "official",
    args: (_d, s) => { mkdirSync(join(s, "adir")); return ["--output", join(s, "adir")]; }, expect: "refused", error: [/adir/] },
  { name: "frames_dir_on_a_regular_file_is_refused_naming_it", run: "generate", base: "official",
    args: (_d, s) => { writeFileSync(join(s, "afile"), "keep"); return ["--frames-dir", join(s, "afile")]; }, expect: "refused", error: [/afile/],
    after: (_d, s) => (readFileSync(join(s, "afile"), "utf8") === "keep" ? undefined : "the file was changed") },
  { name: "save_tensors_into_a_missing_folder_is_refused_naming_it", run: "generate", base: "official",
    args: (_d, s) => ["--save-tensors", join(s, "missing", "t.safetensors")], expect: "refused", error: [/missing/],
    after: (_d, s) => (existsSync(join(s, "out.mp4")) ? "the video was written although the command failed" : undefined) },

  { name: "output_through_a_symlink_to_a_character_device_is_refused_and_the_device_kept", run: "generate", base: "official", skip: needsRoot,
    args: (_d, s) => { symlinkSync(charDevice(s, "dev"), join(s, "link.mp4")); return ["--output", join(s, "link.mp4")]; }, expect: "refused", error: [/link\.mp4|dev/],
    after: (_d, s) => stillCharDevice(join(s, "dev")) },

  // --- input videos that are not files: refused before anything reads them endlessly
  { name: "input_video_that_is_a_zero_device_is_refused_without_reading_it", run: "generate", base: "official", skip: needsRoot, timeoutMs: 60_000,
    args: (_d, s) => { const p = join(s, "zero"); if (spawnSync("mknod", [p, "c", "1", "5"]).status !== 0) throw new Error("mknod failed"); return ["--input-video", p, "--denoising-strength", "0.5"]; },
    expect: "refused", error: [/input-video|inputVideo/, /zero/] },
  { name: "input_video_that_is_a_fifo_is_refused_without_blocking", run: "generate", base: "official", timeoutMs: 60_000,
    args: (_d, s) => { spawnSync("mkfifo", [join(s, "in.fifo")]); return ["--input-video", join(s, "in.fifo"), "--denoising-strength", "0.5"]; },
    expect: "refused", error: [/input-video|inputVideo/, /in\.fifo/] },
  { name: "input_video_of_random_bytes_is_refused_naming_it", run: "generate", base: "official",
    args: (_d, s) => { writeFileSync(join(s, "noise.mp4"), randomBytes(64 * 1024)); return ["--input-video", join(s, "noise.mp4"), "--denoising-strength", "0.5"]; },
    expect: "refused", error: [/input-video|inputVideo/, /noise\.mp4/] },

  // --- strict numbers on the command line
  ...([["hex_0x40", "0x40"], ["with_a_leading_space", " 64"], ["in_exponent_form_1e0", "1e0"], ["with_a_fraction_64_0", "64.0"]] as const).map(([what, v]): Case => ({
    name: `generate_height_${what}_is_refused_naming_the_flag`, run: "cli", base: "official",
    args: (d, s) => [...generateArgs(d, s).filter((a, i, all) => a !== "--height" && all[i - 1] !== "--height"), "--height", v], expect: "refused", error: [/--height/],
  })),
  { name: "generate_repeated_seed_is_refused_naming_the_flag", run: "cli", base: "official",
    args: (d, s) => [...generateArgs(d, s), "--seed", "2"], expect: "refused", error: [/--seed/] },
];

#!/bin/bash
# The CUDA checks on a GPU machine (Node not needed): builds wanlab-engine and wanlab-tests against
# this machine's PyTorch, then runs `wanlab-engine doctor`, the device tests (NCCL with one rank, flash attention parts,
# the own kernels against their host emulations), parity of GPU bf16 against CPU float32 on the tiny
# model, and the 1.3B benches (elementwise passes and the own kernels against ATen, the DiT
# forward against DiffSynth-Studio when DIFFSYNTH_DIR is set and again with the own kernels off,
# the whole pipeline, again under a 3 GB memory budget with the text encoder on the CPU, and again
# with float8 block linears).
#
#   native/tools/gpu-check.sh [BUILD_DIR]
# Env: OUT_DIR (default ./gpu-check); GPU_CHECK=14b runs, instead of the 1.3B set, the 14B through
# the whole pipeline at 1280x720, at 480p under a 24 GB budget and at 480p with float8 block
# linears (about 6 minutes; a second device call fits the device tool's 10 minutes a call, and on
# a warm machine reuses BUILD_DIR); GPU_CHECK=group runs the device group's set instead: the
# transport tests, the tiny model's latents on 2 and 4 ranks sharing the GPU for each layout
# against one rank (group_parity.jsonl: rel L2 per layout beside one rank's bf16 against CPU
# float32), the pre-flight check and link measures of 2 and 4 ranks, and the N-GPU projections
# (GROUP_DEVICE=cpu runs the same set on CPU ranks, float32: the script's own test);
# WANLAB_JSON_INCLUDE when nlohmann/json's headers are not system-wide; WANLAB_GLOO_DIR, the Gloo
# headers of the commit this PyTorch pins (native/tools/fetch-gloo.sh; without it the build goes
# on unmatched, and says so in the log); DIFFSYNTH_DIR (a DiffSynth-Studio checkout) for the peer.
#
# What comes back from a device run is two files, however many steps there are: OUT_DIR/log.txt
# and OUT_DIR/results.tgz (one JSON per step, re-packed after every step so a run cut short still
# returns what it finished). The JSONs also stay unpacked in BUILD_DIR/results, beside the build
# logs and the tiny model.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-/tmp/wanlab-gpu-build}
OUT=${OUT_DIR:-$PWD/gpu-check}
R=$B/results
SET=${GPU_CHECK:-base}
[ "$SET" = base ] || [ "$SET" = 14b ] || [ "$SET" = group ] || { echo "GPU_CHECK must be base, 14b or group, got '$SET'" >&2; exit 2; }
mkdir -p "$OUT" "$R"
LOG=$OUT/log.txt
step() { local name=$1 limit=$2; shift 2; echo "=== $name ($(date +%T), t=${SECONDS}s)" | tee -a "$LOG";
  timeout "$limit" "$@" > "$R/$name.json" 2>> "$LOG"; echo "rc=$? $name ${SECONDS}s" | tee -a "$LOG";
  tar czf "$OUT/results.tgz" -C "$R" .; }

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$LOG"
TD=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || exit 1
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$LOG"
extra=()
[ -n "${WANLAB_JSON_INCLUDE:-}" ] && extra+=("-DWANLAB_JSON_INCLUDE=$WANLAB_JSON_INCLUDE")
if [ -n "${WANLAB_GLOO_DIR:-}" ]; then extra+=("-DWANLAB_GLOO_DIR=$WANLAB_GLOO_DIR")
else extra+=("-DWANLAB_GLOO_UNMATCHED=ON"); fi
[ -f "$B/build.ninja" ] || cmake -S "$ROOT/native" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DWANLAB_TORCH_DIR="$TD" "${extra[@]}" > "$B/cmake.txt" 2>&1 || { tail -30 "$B/cmake.txt" | tee -a "$LOG"; exit 1; }
ninja -C "$B" wanlab-engine wanlab-tests > "$B/build.txt" 2>&1 || { grep -E "error" -A5 "$B/build.txt" | head -80 | tee -a "$LOG"; exit 1; }
grep -E "wanlab: (Gloo|building anyway)" -A1 "$B/cmake.txt" 2>/dev/null | tee -a "$LOG"
echo "built ${SECONDS}s" | tee -a "$LOG"
E=$B/wanlab-engine

step doctor 60 "$E" doctor   # what the build links, what auto picks, each path checked on the GPU
if [ "$SET" = 14b ]; then  # a second call on the same (warm) machine: the build is there already
  step t2v_14B_720p 300 "$E" bench t2v --random-weights 14B --device cuda --steps 2 --height 720 --width 1280
  step t2v_14B_480p_budget24G 240 "$E" bench t2v --random-weights 14B --device cuda --steps 2 --t5-device cpu --tiled --budget 24G
  step t2v_14B_480p_f8 180 "$E" bench t2v --random-weights 14B --device cuda --steps 2 --dit-f8
  echo "done ${SECONDS}s" | tee -a "$LOG"
  exit 0
fi
if [ "$SET" = group ]; then . "$ROOT/native/tools/gpu-check-group.sh"; exit 0; fi
# Each filter under a time limit: a hung collective must not eat the device time of the steps after it.
for t in nccl attention_parts _kernel bf16_path device_lists f8_ offload tea_cache v2v; do
  timeout 180 "$B/wanlab-tests" "$t" 2>&1 | tee -a "$LOG" | tail -4; done
"$E" make-tiny "$B/tiny" > /dev/null
step parity_tiny 90 "$E" parity "$B/tiny" --device cuda --persistent-params 0 --height 96 --width 160 --frames 17 --steps 4
step elementwise_1.3B 90 "$E" bench elementwise --device cuda --dims 1.3B --tokens 32760
step dit_1.3B_480p 150 "$E" bench dit --dims 1.3B --device cuda --frames 81 --height 480 --width 832 --warmup 1 --iters 3
step dit_1.3B_480p_aten 120 env WANLAB_OWN_KERNELS=0 "$E" bench dit --dims 1.3B --device cuda --frames 81 --height 480 --width 832 \
  --warmup 1 --iters 3 --no-peer
step t2v_1.3B_480p 150 "$E" bench t2v --random-weights 1.3B --device cuda --steps 3
# The budget's choice of resident blocks, its cost per step and its prediction against the
# allocator; also the first timing of the text encoder on the CPU.
step t2v_1.3B_480p_budget3G 180 "$E" bench t2v --random-weights 1.3B --device cuda --steps 3 --t5-device cpu --tiled --budget 3G
# In one run, to stay within the device time: float8 block linears (their decode per use:
# step_s against t2v_1.3B_480p's bf16 weights), the text encoder offloaded (its copy in per
# prompt: encode_s - video_encode_s against t2v_1.3B_480p's encode_s; denoise/decode peaks
# without its 11.4 GB) and video-to-video (video_encode_s, the VAE encode on the GPU; the encode
# stage's peak is the larger of the offloaded text encoder's and the VAE encode's).
step t2v_1.3B_480p_f8_t5_offload_v2v 180 "$E" bench t2v --random-weights 1.3B --device cuda --steps 3 --dit-f8 --t5-offload \
  --v2v-strength 0.7
echo "done ${SECONDS}s" | tee -a "$LOG"

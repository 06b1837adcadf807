# GPU_CHECK=group of native/tools/gpu-check.sh (sourced after its build and doctor steps: $B, $E,
# $R, $LOG, $ROOT and step() come from there). The device group as far as one GPU proves it: ranks
# sharing the GPU (cuda:0xN, Gloo through pinned host memory) for every layout against one rank,
# the pre-flight check and link measures, the transport tests and the N-GPU projections.
# GROUP_DEVICE=cpu runs the same set on CPU ranks in float32 (how this script is tested without a GPU).
GDEV=${GROUP_DEVICE:-cuda}
[ "$GDEV" = cuda ] || [ "$GDEV" = cpu ] || { echo "GROUP_DEVICE must be cuda or cpu, got '$GDEV'" | tee -a "$LOG"; exit 2; }
ranks() { if [ "$GDEV" = cuda ]; then echo "cuda:0x$1"; else echo "cpu:0-$(($1 - 1))"; fi; }
DT=bf16; [ "$GDEV" = cuda ] || DT=f32

for t in transport device_lists nccl; do timeout 180 "$B/wanlab-tests" "$t" 2>&1 | tee -a "$LOG" | tail -3; done

"$E" make-tiny "$B/tiny" > /dev/null
# The request: the test suite's tiny prompt (token ids), 96x160, 17 frames, 4 steps, CFG 5; and
# the same with TeaCache.
python3 - "$B" <<'EOF'
import json, sys
ids = lambda mul, add, n: ([(i * mul + add) % 380 for i in range(512)], [1 if i < n else 0 for i in range(512)])
p, pm = ids(7, 3, 12); q, qm = ids(5, 1, 7)
r = {"promptIds": p, "promptMask": pm, "negativeIds": q, "negativeMask": qm, "seed": 7, "height": 96, "width": 160,
     "numFrames": 17, "numInferenceSteps": 4, "cfgScale": 5.0}
json.dump(r, open(sys.argv[1] + "/request.json", "w"))
r.update({"numInferenceSteps": 8, "teaCacheL1Thresh": 0.05, "teaCacheModelId": "Wan2.1-T2V-1.3B"})
json.dump(r, open(sys.argv[1] + "/request-tea.json", "w"))
EOF
gen() { local name=$1 req=$2; shift 2; echo "=== generate $name: $*" | tee -a "$LOG";
  timeout 120 "$E" generate "$B/tiny" --request "$B/$req" --save-tensors "$B/$name.safetensors" "$@" > "$R/gen_$name.json" 2>> "$LOG";
  echo "rc=$? gen_$name ${SECONDS}s" | tee -a "$LOG"; }
P=$R/group_parity.jsonl
: > "$P"
cmp() { python3 "$ROOT/native/tools/rel_l2.py" "$B/$1.safetensors" "$B/$2.safetensors" latents --label "$2 vs $1" >> "$P" 2>> "$LOG" \
  || echo "{\"label\": \"$2 vs $1\", \"error\": \"no latents (see log.txt)\"}" >> "$P"; }

gen one_f32_cpu request.json --devices cpu --dtype f32
gen one request.json --devices "${GDEV}:0" --dtype $DT
cmp one_f32_cpu one
gen u2 request.json --devices "$(ranks 2)" --ulysses 2 --dtype $DT
gen r2 request.json --devices "$(ranks 2)" --ring 2 --dtype $DT
gen u2r2 request.json --devices "$(ranks 4)" --ulysses 2 --ring 2 --dtype $DT
gen r4 request.json --devices "$(ranks 4)" --ring 4 --dtype $DT
gen cfg_u2 request.json --devices "$(ranks 4)" --cfg-parallel --ulysses 2 --dtype $DT
gen u2_sharded request.json --devices "$(ranks 2)" --ulysses 2 --shard-weights --dtype $DT
LAYOUTS="u2 r2 u2r2 r4 cfg_u2 u2_sharded"
if [ "$GDEV" = cuda ]; then  # every block streamed from pinned host memory: a CUDA path only
  gen r2_streamed request.json --devices "$(ranks 2)" --ring 2 --persistent-params 0 --dtype $DT
  LAYOUTS="$LAYOUTS r2_streamed"
fi
for l in $LAYOUTS; do cmp one "$l"; done
gen one_tea request-tea.json --devices "${GDEV}:0" --dtype $DT
gen u2r2_tea request-tea.json --devices "$(ranks 4)" --ulysses 2 --ring 2 --dtype $DT
cmp one_tea u2r2_tea
cat "$P" | tee -a "$LOG"

step preflight_links_2 90 "$E" doctor --devices "$(ranks 2)" --timeout 30
step preflight_links_4 90 "$E" doctor --devices "$(ranks 4)" --timeout 30
# The N-GPU projections: one rank's blocks measured at each layout's shapes on this GPU, the
# collectives modelled over NVLink 4 / InfiniBand 400 (scripts/projection.mjs draws them).
if [ "$GDEV" = cuda ]; then
  step projection_1.3B_480p 120 "$E" bench projection --device cuda --dims 1.3B --height 480 --width 832 --frames 81
  step projection_14B_480p 120 "$E" bench projection --device cuda --dims 14B --height 480 --width 832 --frames 81
  step projection_14B_720p 150 "$E" bench projection --device cuda --dims 14B --height 720 --width 1280 --frames 81
else
  step projection_tiny 90 "$E" bench projection --dims tiny --heads 8 --height 128 --width 128 --frames 9 --blocks 1 --iters 1
fi
tar czf "$OUT/results.tgz" -C "$R" .
echo "done ${SECONDS}s" | tee -a "$LOG"

#!/usr/bin/env bash
# One prepared run of the CUDA backend on a GPU machine (issue 9): correctness first,
# then speed against PyTorch + transformers on the same GPU, logs and JSON under $OUT
# (default bench/out), a short table last. Prepare .device/ here first:
#
#   bash bench/device-prep.sh
#   device run:  bash bench/device-check.sh --quick      (carry [".device"], timeout_s 600)
#   second run:  bash bench/device-check.sh --big        (Llama-3-8B shape, BF16 and FP8)
#
# --quick (~8 min): libraries and device, backend vs reference on every model variant
#   and kernel path, --quant int8-wo / int4-wo [--int4-asym] engines with their packed
#   weights kept on the GPU (i8 / i4 / i4z: bench/device/packed-engines.ts), stories260K vs
#   the goldens, random-weight Llama/Qwen2 vs transformers logits, then HBM bandwidth,
#   decode batch 1 and throughput at 1/8/64 concurrent requests on Llama-110M and
#   TinyLlama-1.1B shapes (BF16, dummy weights), then batch-1 decode with int4 weights,
#   symmetric and with zero points (i4 g128, i4z g128), with transformers `generate`
#   (static cache) on the same shapes. --big times i4 / i4z on the 8B shape the same way.
# --big (~8 min): the same speed runs on the Llama-3-8B shape, BF16 and FP8 weights.
# --final (~3-6 min): correctness (both), the profile at batch 1 / 64, decode attention
#   alone (bench/device/attention.ts), llmrt speed on all shapes, then transformers on
#   $HF_SHAPES (default the TinyLlama shape) with one timed run (HF_S=0 skips it).
# --profile (~5 min): correctness, then where each decode step's time goes (bench/device/
#   profile.ts: graph replay, per-op GPU time, host copies, the bind-time tactics), then
#   the llmrt speed runs of --quick and --big without transformers.
# Each stage has its own time limit (together under 9 minutes, so the table always
# prints inside a 600 s call) and the next runs whatever happened before it.
# A dry run on the CPU emulator (no GPU; slow, so shrunk):
#   LLMRT_CUDA_LIB_DIR=$(npx tsx bench/device/emu-dir.ts) CORRECTNESS_S=60 SPEED_ARGS="--shapes tiny --concurrency 1,2 --tokens 8" \
#     OUT=/tmp/dry bash bench/device-check.sh --quick
set -uo pipefail
MODE=${1:---quick}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
LOG="$OUT/device-check${MODE#-}.log"
stage() { echo; echo "=== $1 ($(date +%T))"; }
export PYTHONUNBUFFERED=1
export LLMRT_CUDA_KERNELS_DIR="$root/src/backends/cuda/kernels" # sources, if cubins must be rebuilt here
export LLMRT_CUDA_CACHE=${LLMRT_CUDA_CACHE:-/tmp/llmrt-cuda}
export LLMRT_SHARED="$root/.device/fixtures"
export LLMRT_CACHE=/tmp/llmrt-engines
export LLMRT_CUDA_CUBINS="$root/.device/cubins" # prepared kernels for sm_90 (else compiled here)

run() {
stage "node"
# unpacked outside the tree: a dry run here must not leave 95 MB in what the next device call carries
NODE_DIR=${TMPDIR:-/tmp}/llmrt-device-node
if [ ! -x "$NODE_DIR/node" ]; then mkdir -p "$NODE_DIR" && xz -dc .device/node.xz > "$NODE_DIR/node" && chmod +x "$NODE_DIR/node"; fi
export PATH="$NODE_DIR:$PATH"
node --version || { echo "no node: run bench/device-prep.sh where Node is, and carry .device"; exit 1; }
APP=(node "$root/.device/app/device.mjs")
CUBINS=(--cubins "$root/.device/cubins")

stage "GPU and CUDA libraries"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 | head -3
ldconfig -p 2>/dev/null | grep -E "libcuda\.so|libnvrtc\.so|libcublasLt\.so" | head
ls /usr/local/cuda*/lib64/libnvrtc.so* /usr/local/cuda*/lib64/libcublasLt.so* 2>/dev/null | head -4
python3 -c "import nvidia, os; [print(os.path.join(p, d, 'lib')) for p in nvidia.__path__ for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p, d, 'lib'))]" 2>/dev/null | head -20
which nvcc && nvcc --version | tail -1
timeout 30 "${APP[@]}" env --out "$OUT"

if [ "$MODE" = "--quick" ]; then
  stage "correctness: CUDA backend vs reference, stories260K goldens"
  timeout ${CORRECTNESS_S:-140} "${APP[@]}" correctness --out "$OUT" --shared "$LLMRT_SHARED" "${CUBINS[@]}"

  stage "correctness: vs transformers (random-weight Llama / Qwen2)"
  timeout 60 python3 bench/device/hf_models.py /tmp/llmrt-hf-models &&
    timeout 50 "${APP[@]}" hf --out "$OUT" --hf-dir /tmp/llmrt-hf-models "${CUBINS[@]}"

  stage "llmrt generate --target cuda (stories260K, CLI end to end)"
  timeout 40 node .device/app/llmrt.mjs generate --model "$LLMRT_SHARED/models/stories260K/stories260K.bin" \
    --target cuda --prompt "Once upon a time" --max-tokens 40 --temperature 0 2>&1 | tail -3

  stage "speed: llmrt (Llama-110M, TinyLlama-1.1B shapes, BF16, dummy weights)"
  timeout 110 "${APP[@]}" speed --quick --out "$OUT" "${CUBINS[@]}" ${SPEED_ARGS:-}

  stage "speed: transformers generate, static cache, same shapes"
  timeout 100 python3 bench/device/hf_bench.py --shapes llama-110m,tinyllama-1.1b --out "$OUT/hf-bench-quick.json"
elif [ "$MODE" = "--final" ]; then
  stage "correctness: CUDA backend vs reference, stories260K goldens"
  timeout ${CORRECTNESS_S:-100} "${APP[@]}" correctness --out "$OUT" --shared "$LLMRT_SHARED" "${CUBINS[@]}"

  stage "correctness: vs transformers (random-weight Llama / Qwen2)"
  timeout 60 python3 bench/device/hf_models.py /tmp/llmrt-hf-models &&
    timeout 50 "${APP[@]}" hf --out "$OUT" --hf-dir /tmp/llmrt-hf-models "${CUBINS[@]}"

  stage "profile: per op and per kernel (batch 1 / 64, context 256)"
  timeout 60 "${APP[@]}" profile --out "$OUT" --batches 1,64 "${CUBINS[@]}"

  stage "decode attention alone: each form at 1 / 8 / 64 rows, 256 / 1024 / 4096 positions (graph replays)"
  timeout 60 "${APP[@]}" attention --out "$OUT" "${CUBINS[@]}"

  stage "speed: llmrt, quick shapes then the 8B shape"
  timeout 60 "${APP[@]}" speed --quick --out "$OUT" "${CUBINS[@]}"
  timeout 80 "${APP[@]}" speed --big --out "$OUT" "${CUBINS[@]}"

  if [ "${PDL_PASS:-1}" != 0 ]; then # the same without programmatic dependent launch (the default: small decode steps only)
    stage "profile and speed without programmatic dependent launch (--no-pdl)"
    timeout 40 "${APP[@]}" profile --out "$OUT" --batches 1,64 --no-pdl --tag nopdl "${CUBINS[@]}"
    timeout 60 "${APP[@]}" speed --quick --out "$OUT" --no-pdl --tag nopdl "${CUBINS[@]}"
    timeout 80 "${APP[@]}" speed --big --out "$OUT" --no-pdl --tag nopdl "${CUBINS[@]}"
  fi

  if [ "${HF_S:-170}" != 0 ]; then # HF_S=0: transformers already measured on this card (bench/results)
    stage "speed: transformers generate, static cache, ${HF_SHAPES:=tinyllama-1.1b} (one timed run)"
    timeout ${HF_S:-170} python3 bench/device/hf_bench.py --shapes "$HF_SHAPES" --runs 1 --out "$OUT/hf-bench-quick.json"
  fi
elif [ "$MODE" = "--profile" ]; then
  stage "correctness: CUDA backend vs reference, stories260K goldens"
  timeout ${CORRECTNESS_S:-140} "${APP[@]}" correctness --out "$OUT" --shared "$LLMRT_SHARED" "${CUBINS[@]}"

  stage "profile: where a decode step's time goes (batch 1 / 8 / 64, context 256)"
  timeout 150 "${APP[@]}" profile --out "$OUT" "${CUBINS[@]}" ${PROFILE_ARGS:-}

  stage "speed: llmrt only, quick shapes then the 8B shape"
  timeout 80 "${APP[@]}" speed --quick --out "$OUT" "${CUBINS[@]}" ${SPEED_ARGS:-}
  timeout 150 "${APP[@]}" speed --big --out "$OUT" "${CUBINS[@]}" ${SPEED_ARGS:-}
elif [ "$MODE" = "--pdl-linears" ]; then # the 8B step with PDL and each forced matmul path
  for lin in auto gemv gemv4; do
    stage "profile llama-3-8b b1, --pdl, linear $lin"
    timeout 40 "${APP[@]}" profile --out "$OUT" --shapes llama-3-8b --batches 1 --pdl --linear $lin --tag "pdl-$lin" "${CUBINS[@]}"
  done
  stage "speed llama-3-8b, --pdl --linear gemv (decode b1, c1, c8)"
  timeout 50 "${APP[@]}" speed --big --out "$OUT" --shapes llama-3-8b --concurrency 1,8 --pdl --linear gemv --tag pdl-gemv "${CUBINS[@]}"
else
  stage "speed: llmrt (Llama-3-8B shape, BF16 and FP8 weights, dummy)"
  timeout 300 "${APP[@]}" speed --big --out "$OUT" "${CUBINS[@]}"

  stage "speed: transformers generate, static cache, Llama-3-8B shape"
  timeout 220 python3 bench/device/hf_bench.py --shapes llama-3-8b --runs 1 --out "$OUT/hf-bench-big.json"
fi

stage "summary"
"${APP[@]}" table --out "$OUT"
}

# a pipe, not exec > >(tee): the table, printed last, must be out before the command ends
run 2>&1 | tee -a "$LOG"
# the device tool brings back at most 8 files: the JSON travels as one archive beside the log
# (untar into bench/results/<card>-<date>/<call>/ when recording)
if [ "${PACK_JSON:-1}" != 0 ] && ls "$OUT"/*.json > /dev/null 2>&1; then
  (cd "$OUT" && tar czf json.tgz *.json && rm -f *.json)
fi

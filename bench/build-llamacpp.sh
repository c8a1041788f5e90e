#!/usr/bin/env bash
# Builds native llama.cpp's llama-bench and llama-batched-bench from the source bundle that
# node-llama-cpp ships (node_modules/node-llama-cpp/llama/gitRelease.bundle: the same
# llama.cpp release as its prebuilt binaries), for this CPU (GGML_NATIVE: AVX2 / AVX-512 as
# the machine has them), as a user building llama.cpp here would. About 8 minutes on 2 cores.
#
#   bash bench/build-llamacpp.sh [DIR]     (default .cache/llamacpp-native; binaries in DIR/bin)
#
# bench/compare-llamacpp.ts --native DIR/bin then runs them beside node-llama-cpp and llmrt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/.cache/llamacpp-native}"
bundle="$root/node_modules/node-llama-cpp/llama/gitRelease.bundle"
[ -f "$bundle" ] || { echo "build-llamacpp: $bundle is missing: run npm ci first" >&2; exit 1; }
for tool in git cmake c++; do
  command -v "$tool" >/dev/null || { echo "build-llamacpp: needs $tool (apt-get install -y git cmake g++)" >&2; exit 1; }
done
mkdir -p "$dir"
[ -d "$dir/src/.git" ] || git clone -q "$bundle" "$dir/src"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$dir/src" -B "$dir/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$dir/build" -j"$(nproc)" --target llama-bench llama-batched-bench
mkdir -p "$dir/bin"
cp "$dir/build/bin/llama-bench" "$dir/build/bin/llama-batched-bench" "$dir/bin/"
echo "build-llamacpp: $dir/bin/llama-bench, $dir/bin/llama-batched-bench ($(git -C "$dir/src" log -1 --format=%h) of node-llama-cpp's bundle)"

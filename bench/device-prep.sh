#!/usr/bin/env bash
# Prepares .device/ (ignored by git) for bench/device-check.sh on a GPU machine, which
# has no Node.js, no package registry and no ../shared. Run here, from the repo, no GPU
# needed (about 2-5 minutes the first time; cached after):
#
#   bash bench/device-prep.sh          # then carry ".device" with the device run
#
#   .device/node.xz            this machine's Node (../shared/device/pack-node.sh)
#   .device/app/device.mjs     bench/device/main.ts bundled with esbuild (koffi external)
#   .device/app/llmrt.mjs      the llmrt CLI bundled (llmrt generate --target cuda there)
#   .device/app/node_modules   koffi and its Linux x64 native module
#   .device/cubins/kernels/    every kernel unit compiled for sm_90 by nvcc here
#   .device/fixtures/          stories260K model, tokenizer and goldens
# The total must stay under ~60 MiB (what a device call carries).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared=${LLMRT_SHARED:-$root/../shared}
DEV=.device
ARCH=${GPU_ARCH:-sm_90}
mkdir -p "$DEV/app/node_modules/@koromix" "$DEV/cubins" "$DEV/fixtures/models/stories260K" "$DEV/fixtures/golden"
grep -qx '/.device/' .gitignore .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude

echo "== node"
bash "$shared/device/pack-node.sh" | tail -1

echo "== bundles"
esbuild=node_modules/.bin/esbuild
[ -x "$esbuild" ] || { echo "esbuild is missing: npm ci (tsx brings it), or npm i -E -D esbuild@0.28.2" >&2; exit 1; }
banner="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
for pair in "bench/device/main.ts:device.mjs" "src/cli/main.ts:llmrt.mjs"; do
  "$esbuild" "${pair%%:*}" --bundle --platform=node --format=esm --target=node20 --log-level=warning \
    --external:koffi --banner:js="$banner" --outfile="$DEV/app/${pair##*:}"
done
rm -rf "$DEV/app/node_modules/koffi" "$DEV/app/node_modules/@koromix/koffi-linux-x64"
cp -r node_modules/koffi "$DEV/app/node_modules/koffi"
cp -r node_modules/@koromix/koffi-linux-x64 "$DEV/app/node_modules/@koromix/koffi-linux-x64"
rm -rf "$DEV/app/node_modules/koffi/src/koffi/src"/*.cc "$DEV/app/node_modules/koffi/doc" "$DEV/app/node_modules/koffi/vendor"

echo "== cubins for $ARCH (nvcc, cached in \${LLMRT_CUDA_CACHE:-/tmp/llmrt-cuda})"
npx tsx bench/device/prep-cubins.ts "$ARCH" "$DEV/cubins"

echo "== fixtures"
cp "$shared/models/stories260K/stories260K.bin" "$shared/models/stories260K/tok512.bin" "$DEV/fixtures/models/stories260K/"
cp "$shared"/golden/stories260K.llama2c.*.json "$shared"/golden/stories260K.llamacpp.*.json "$DEV/fixtures/golden/"

echo "== dry run of the bundle here (no GPU: env must report the missing driver, not crash)"
node "$DEV/app/device.mjs" env --out "$(mktemp -d)" | grep -E '"error"|cuda_unavailable|no CUDA' | head -2 || true

rm -f "$DEV/node" # an unpacked Node (left by a dry run here) would travel too: the GPU side unpacks node.xz
size=$(du -sm "$DEV" | cut -f1)
du -sh "$DEV"/* | sort -h
echo "== .device is ${size} MiB"
[ "$size" -le 60 ] || { echo "over the 60 MiB carry budget" >&2; exit 1; }
echo 'device run: bash bench/device-check.sh --quick   (carry: [".device"], timeout_s 600)'

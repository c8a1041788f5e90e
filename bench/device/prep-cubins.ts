/**
 * bench/device-prep.sh: compiles every kernel unit for one GPU architecture with nvcc
 * here (no GPU) into DIR/kernels/<unit>.<arch>.cubin, the layout an engine dir has.
 *   npx tsx bench/device/prep-cubins.ts sm_90 .device/cubins
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { compileEngineKernels } from "../../src/backends/cuda/engine-files.js";

const [arch = "sm_90", dir = ".device/cubins"] = process.argv.slice(2);
compileEngineKernels(arch).then((files) => {
  for (const [rel, data] of files) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), data);
  }
  console.log(`${files.size} cubins for ${arch} in ${dir}/kernels`);
});

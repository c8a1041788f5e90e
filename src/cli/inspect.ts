/**
 * llmrt inspect DIR|PATH: what an engine is (or what building this checkpoint would
 * make): passes and fusions applied, ops before and after, kernels per layer and per
 * step, arena bytes, weight bytes by dtype, build options. --graph prints the ops.
 */
import type { Command } from "commander";
import { isEngineDir, openModelSpec } from "../api/load-model.js";
import type { ModelConfig } from "../checkpoint/config.js";
import { keptPackedFormats, planEngine } from "../engine/build.js";
import { DEFAULT_PASSES } from "../graph/passes/pipeline.js";
import { deserializeGraph, readManifest } from "../engine/format.js";
import { DTYPE_CHOICES, parseDTypeChoice, resolveBuildOptions, type BuildOptions } from "../engine/options.js";
import { formatBytes, type BuildReport } from "../engine/report.js";
import { describeOverrides } from "../quant/overrides.js";
import { opLayer, type Graph } from "../graph/ir.js";
import { printGraph } from "../graph/printer.js";
import { intOption } from "./options.js";
import { describeParallel, planView, rankView } from "../parallel/describe.js";
import { checkParallel } from "../parallel/layout.js";
import { planRanks } from "../parallel/plan.js";

interface InspectFlags {
  graph?: boolean;
  before?: boolean;
  layer?: number;
  dtype: string;
  maxBatchTokens?: number;
  maxSeqs?: number;
  tp?: number;
  pp?: number;
}

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .argument("<path>", "an engine dir, or a checkpoint (shows what a build would make)")
    .description("show an engine's passes, fusions, kernels, memory plan and weights")
    .option("--graph", "print the optimized graph's ops")
    .option("--before", "with --graph: print the model's plain graph (before the passes) too")
    .option("--layer <n>", "with --graph: only this layer's ops", intOption("--layer"))
    .option("--dtype <dtype>", `for a checkpoint: the dtype to plan for, ${DTYPE_CHOICES.join(", ")} (auto: fp32, as for the reference target it plans)`, "auto")
    .option("--max-batch-tokens <n>", "for a checkpoint: plan for this many tokens per step", intOption("--max-batch-tokens", 1))
    .option("--max-seqs <n>", "for a checkpoint: plan for this many sequences", intOption("--max-seqs", 1))
    .option("--tp <n>", "for a checkpoint: show the split over this many tensor-parallel ranks", intOption("--tp", 1))
    .option("--pp <n>", "for a checkpoint: show the split over this many pipeline stages", intOption("--pp", 1))
    .action(async (path: string, flags: InspectFlags) => {
      process.stdout.write(await inspect(path, flags));
    });
}

const counts = (c: Record<string, number>) => Object.entries(c).map(([k, n]) => `${k} ${n}`).join(", ");

function describeModel(c: ModelConfig): string {
  const extras = [c.attentionBias && "qkv bias", c.qkNorm && "q/k norm", c.slidingWindow !== null && `sliding window ${c.slidingWindow}`, c.tieWordEmbeddings && "tied head"].filter(Boolean);
  return `${c.architecture}: ${c.numLayers} layers, hidden ${c.hiddenSize}, ffn ${c.intermediateSize}, heads ${c.numHeads}/${c.numKvHeads} x ${c.headDim}, vocab ${c.vocabSize}, rope ${c.rope.style} theta ${c.rope.theta}${extras.length ? ", " + extras.join(", ") : ""}`;
}

function describeReport(r: BuildReport, b: BuildOptions): string[] {
  const fusions = r.passes.filter((p) => p.label && p.count > 0).map((p) => `fused ${p.label} x${p.count}`);
  const weightTotal = Object.values(r.weightBytes).reduce((a, n) => a + n, 0);
  return [
    `build     dtype ${b.dtype}, target ${b.target}, maxBatchTokens ${b.maxBatchTokens}, maxSeqs ${b.maxSeqs}, maxSeqLen ${b.maxSeqLen}, maxLogitRows ${b.maxLogitRows}`,
    `passes`,
    ...r.passes.map((p) => `  ${p.pass.padEnd(22)} ${String(p.opsBefore).padStart(5)} -> ${String(p.opsAfter).padEnd(5)} ${p.summary || "(no change)"}`),
    `fusions   ${fusions.join(", ") || "none"}`,
    `ops before  ${counts(r.opsBefore)}`,
    `ops after   ${counts(r.opsAfter)}`,
    `kernels   per layer ${r.kernelsPerLayer.before} -> ${r.kernelsPerLayer.after} (by layer: ${r.kernelsByLayer.before.join(" ")} -> ${r.kernelsByLayer.after.join(" ")}); per step ${r.kernelsPerStep.before} -> ${r.kernelsPerStep.after}`,
    `arena     ${formatBytes(r.arena.bytes)} planned; naive ${formatBytes(r.arena.naiveBytes)} (unfused graph ${formatBytes(r.arena.unfusedNaiveBytes)}), for ${b.maxBatchTokens} tokens / ${b.maxLogitRows} logit rows per step`,
    `weights   ${Object.entries(r.weightBytes).map(([dt, n]) => `${dt} ${formatBytes(n)}`).join(", ")} (total ${formatBytes(weightTotal)})`,
  ];
}

function graphs(f: InspectFlags, plain: Graph | null, optimized: Graph): string[] {
  if (!f.graph) return [];
  const keep = f.layer === undefined ? undefined : (op: Parameters<typeof opLayer>[0]) => opLayer(op) === f.layer;
  const out: string[] = [];
  if (f.before && plain) out.push("", "graph before the passes:", printGraph(plain, keep));
  out.push("", "optimized graph:", printGraph(optimized, keep));
  return out;
}

/** What --tp/--pp would make of a checkpoint. */
function sharded(c: ModelConfig, options: BuildOptions, f: InspectFlags): string[] {
  const p = { tp: f.tp ?? 1, pp: f.pp ?? 1 };
  if (p.tp * p.pp === 1) return [];
  checkParallel(c, p, options.target);
  return describeParallel(c, p.tp, p.pp, planRanks(c, options, p).map(planView));
}

export async function inspect(path: string, f: InspectFlags): Promise<string> {
  const dtype = parseDTypeChoice(f.dtype);
  let lines: string[];
  if (isEngineDir(path)) {
    const m = readManifest(path);
    const dtypes = new Map<string, number>();
    for (const t of m.weights.tensors) dtypes.set(t.dtype, (dtypes.get(t.dtype) ?? 0) + 1);
    lines = [
      `engine    ${path} (format v${m.version}, target ${m.target}, built ${m.builtAt})`,
      `source    ${m.source.format} ${m.source.path}${m.source.randomWeights ? " (random weights)" : ""}`,
      `model     ${describeModel(m.model)}`,
      ...describeReport(m.report, m.build),
      ...(m.build.quant ? [`quant     ${describeOverrides(m.build.quant)}`] : []),
      `tensors   ${m.weights.tensors.length} in ${m.weights.file} (${formatBytes(m.weights.bytes)}; ${[...dtypes].map(([d, n]) => `${n} ${d}`).join(", ")}), ${m.weights.alignment}-byte aligned, crc32 each`,
      `layout    ${m.layout}`,
      `tokenizer ${m.tokenizer.kind}${m.tokenizer.files.length ? ` (${m.tokenizer.files.join(", ")})` : ""}`,
      ...(m.parallel ? describeParallel(m.model, m.parallel.tp, m.parallel.pp, m.parallel.ranks.map(rankView)) : []),
      ...graphs(f, null, deserializeGraph(m.graph)),
    ];
  } else {
    const { checkpoint } = await openModelSpec(path);
    try {
      const options = resolveBuildOptions(checkpoint.config, { dtype, maxBatchTokens: f.maxBatchTokens, maxSeqs: f.maxSeqs }, checkpoint);
      const plan = planEngine(checkpoint.config, options, DEFAULT_PASSES, keptPackedFormats(checkpoint, options));
      lines = [
        `checkpoint ${checkpoint.format} ${checkpoint.path} (not built: what \`llmrt build\` would make)`,
        `model     ${describeModel(checkpoint.config)}`,
        ...describeReport(plan.report, options),
        ...sharded(checkpoint.config, options, f),
        ...graphs(f, plan.plainGraph, plan.graph),
      ];
    } finally {
      checkpoint.close();
    }
  }
  return lines.join("\n") + "\n";
}

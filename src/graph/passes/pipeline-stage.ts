/**
 * Pipeline parallelism: the part of a graph that one stage runs. Stage s keeps the ops
 * of its layers [first, end) (by opLayer), stage 0 also what precedes the first layer
 * (the embedding), the last stage also what follows the last (final norm, head), and
 * every stage the step-independent constants it reads (RoPE frequencies). The one
 * activation crossing into the stage (the residual stream) arrives by `recv` from the
 * previous stage's rank; the one crossing out leaves by `send`. Layer numbers stay the
 * model's; the rank rebases them when it binds (its KV cache holds only its layers).
 */
import { opInputs, opLayer, opOutputs, readsStep, type Graph, type Op, type TensorDecl } from "../ir.js";
import type { Pass } from "./pass.js";

export interface StageSpec {
  /** Layers [first, end) of this stage. */
  layers: [number, number];
  /** Whether this is the first / last stage. */
  first: boolean;
  last: boolean;
  /** Global ranks to receive from and send to (this rank's counterparts in the neighbouring stages). */
  prevPeer: number | null;
  nextPeer: number | null;
}

type Place = "pre" | "layer" | "post" | "const";

/** Where each op belongs: a layer, before all layers, after them, or a static constant every stage may need. */
function places(g: Graph): { place: Place; layer: number | null }[] {
  let seenLayer = false;
  return g.ops.map((op) => {
    const layer = opLayer(op);
    if (layer !== null) {
      seenLayer = true;
      return { place: "layer", layer };
    }
    const constant = !readsStep(op) && opInputs(op).every((t) => g.tensors.get(t)?.kind === "weight");
    if (constant) return { place: "const", layer: null };
    return { place: seenLayer ? "post" : "pre", layer: null };
  });
}

export function pipelineStage(g: Graph, spec: StageSpec): Graph {
  const [first, end] = spec.layers;
  const where = places(g);
  const kept: Op[] = g.ops.filter((_, i) => {
    const { place, layer } = where[i];
    if (place === "const") return true;
    if (place === "pre") return spec.first;
    if (place === "post") return spec.last;
    return layer! >= first && layer! < end;
  });
  const keptSet = new Set(kept);
  const written = new Set(kept.flatMap((op) => opOutputs(op)));
  const constants = new Set(g.ops.flatMap((op, i) => (where[i].place === "const" ? opOutputs(op) : []))); // every stage makes its own
  const isAct = (t: string) => g.tensors.get(t)?.kind === "activation";

  // activations this stage reads but an earlier stage writes
  const incoming = [...new Set(kept.flatMap((op) => opInputs(op)).filter((t) => isAct(t) && !written.has(t)))];
  // activations this stage writes that a later stage (or the graph output) reads
  const later = g.ops.filter((op) => !keptSet.has(op));
  const outgoing = spec.last ? [] : [...written].filter((t) => !constants.has(t) && (later.some((op) => opInputs(op).includes(t)) || g.outputs.includes(t)));
  if (spec.first !== (incoming.length === 0)) throw new Error(`pipeline: stage of layers ${first}..${end - 1} receives ${incoming.join(", ") || "nothing"}`);
  if (incoming.length > 1 || outgoing.length > 1) {
    throw new Error(`pipeline: a stage boundary carries more than one activation (in: ${incoming.join(", ")}; out: ${outgoing.join(", ")})`);
  }
  const ops: Op[] = [];
  if (incoming.length) ops.push({ op: "recv", out: incoming[0], peer: spec.prevPeer! });
  ops.push(...kept);
  if (outgoing.length) ops.push({ op: "send", x: outgoing[0], peer: spec.nextPeer! });

  const used = new Set(ops.flatMap((op) => [...opInputs(op), ...opOutputs(op)]));
  const tensors = new Map<string, TensorDecl>([...g.tensors].filter(([name]) => used.has(name)));
  return { tensors, ops, outputs: spec.last ? [...g.outputs] : [] };
}

/** The same graph with attention/kv_write layers rebased to `first` (for a stage's own KV cache). */
export function rebaseLayers(g: Graph, first: number): Graph {
  if (first === 0) return g;
  const ops = g.ops.map((op) => ("layer" in op ? { ...op, layer: op.layer - first } : op));
  return { ...g, ops };
}

/** The pass form: "layers 3..4; recv from rank 1, send to none". */
export function pipelineStagePass(spec: StageSpec): Pass {
  return {
    name: "pipeline-stage",
    run: (g) => pipelineStage(g, spec),
    count: () => 1,
    describe: () => `layers ${spec.layers[0]}..${spec.layers[1] - 1}${spec.prevPeer !== null ? `, recv from rank ${spec.prevPeer}` : ""}${spec.nextPeer !== null ? `, send to rank ${spec.nextPeer}` : ""}`,
  };
}

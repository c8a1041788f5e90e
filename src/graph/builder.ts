/**
 * Builds a Graph op by op, declaring tensors as it goes so that every name used is
 * declared once with its shape. Model files use this; it knows nothing of models.
 */
import type { RopeConfig } from "../checkpoint/config.js";
import type { AttentionGeometry, Graph, Op, Rows, TensorDecl } from "./ir.js";

export class GraphBuilder {
  private readonly tensors = new Map<string, TensorDecl>();
  private readonly ops: Op[] = [];

  weight(name: string, shape: number[]): string {
    this.declare(name, { kind: "weight", shape });
    return name;
  }

  private activation(name: string, rows: Rows, cols: number): string {
    this.declare(name, { kind: "activation", rows, cols });
    return name;
  }

  private declare(name: string, decl: TensorDecl): void {
    if (this.tensors.has(name)) throw new Error(`graph: tensor "${name}" declared twice`);
    this.tensors.set(name, decl);
  }

  cols(name: string): number {
    const d = this.tensors.get(name);
    if (!d) throw new Error(`graph: unknown tensor "${name}"`);
    return d.kind === "activation" ? d.cols : d.shape[d.shape.length - 1];
  }

  private rows(name: string): Rows {
    const d = this.tensors.get(name);
    if (!d || d.kind !== "activation") throw new Error(`graph: "${name}" is not an activation`);
    return d.rows;
  }

  private shape(name: string): number[] {
    const d = this.tensors.get(name);
    if (!d || d.kind !== "weight") throw new Error(`graph: "${name}" is not a weight`);
    return d.shape;
  }

  embedding(out: string, table: string): string {
    this.activation(out, "T", this.shape(table)[1]);
    this.ops.push({ op: "embedding", out, table });
    return out;
  }

  rmsnorm(out: string, x: string, weight: string, eps: number, groupSize = this.cols(x)): string {
    this.activation(out, this.rows(x), this.cols(x));
    this.ops.push({ op: "rmsnorm", out, x, weight, eps, groupSize });
    return out;
  }

  matmul(out: string, x: string, w: string, bias?: string): string {
    const [n, k] = this.shape(w);
    if (k !== this.cols(x)) throw new Error(`graph: matmul ${x}[*, ${this.cols(x)}] @ ${w}[${n}, ${k}]^T`);
    this.activation(out, this.rows(x), n);
    this.ops.push(bias ? { op: "matmul", out, x, w, bias } : { op: "matmul", out, x, w });
    return out;
  }

  /** The rotary inverse frequencies [1, rope.dim / 2]: static, so constant folding bakes them in. */
  ropeInvFreq(out: string, rope: RopeConfig): string {
    this.activation(out, "1", rope.dim / 2);
    this.ops.push({ op: "rope_inv_freq", out, rope });
    return out;
  }

  rope(out: string, x: string, invFreq: string, headDim: number, rope: RopeConfig): string {
    this.activation(out, this.rows(x), this.cols(x));
    this.ops.push({ op: "rope", out, x, invFreq, headDim, rotary: { style: rope.style, dim: rope.dim } });
    return out;
  }

  kvWrite(k: string, v: string, layer: number): void {
    this.ops.push({ op: "kv_write", k, v, layer });
  }

  attention(out: string, q: string, geom: AttentionGeometry): string {
    this.activation(out, "T", geom.numHeads * geom.headDim);
    this.ops.push({ op: "attention", out, q, ...geom });
    return out;
  }

  silu(out: string, x: string): string {
    this.activation(out, this.rows(x), this.cols(x));
    this.ops.push({ op: "silu", out, x });
    return out;
  }

  mul(out: string, a: string, b: string): string {
    this.activation(out, this.rows(a), this.cols(a));
    this.ops.push({ op: "mul", out, a, b });
    return out;
  }

  add(out: string, a: string, b: string): string {
    this.activation(out, this.rows(a), this.cols(a));
    this.ops.push({ op: "add", out, a, b });
    return out;
  }

  gatherRows(out: string, x: string): string {
    this.activation(out, "R", this.cols(x));
    this.ops.push({ op: "gather_rows", out, x });
    return out;
  }

  build(outputs: string[]): Graph {
    return { tensors: new Map(this.tensors), ops: [...this.ops], outputs };
  }
}

/**
 * Row permutations of the q and k projections between the two RoPE layouts.
 *
 * Within each head of headDim rows, the rotated pairs are
 *   interleaved (Meta / llama2.c / llama.cpp "llama" GGUFs): rows (2i, 2i+1)
 *   neox (Hugging Face, rotate_half):                        rows (i, i + rotaryDim/2)
 * Moving row 2i+j (j = 0, 1) to row j*rotaryDim/2 + i turns one into the other, which is
 * what transformers' convert_llama_weights_to_hf and llama.cpp's convert script do. The
 * attention output is the same either way as long as the RoPE style matches the layout.
 * Works for weights [rows, cols] and biases (cols = 1). Rows past rotaryDim (partial
 * rotary) are not rotated and stay in place.
 */
import type { ModelConfig } from "./config.js";

function permuteRows(
  w: Float32Array,
  nHeads: number,
  headDim: number,
  rotaryDim: number,
  toInterleaved: boolean,
): Float32Array {
  const rows = nHeads * headDim;
  if (w.length % rows !== 0) {
    throw new RangeError(`q/k permutation: ${w.length} values do not split into ${nHeads} heads x ${headDim} rows`);
  }
  if (rotaryDim % 2 !== 0 || rotaryDim > headDim) throw new RangeError(`q/k permutation: bad rotaryDim ${rotaryDim}`);
  const cols = w.length / rows;
  const half = rotaryDim / 2;
  const out = new Float32Array(w); // rows past rotaryDim keep their place
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const inter = h * headDim + 2 * i + j;
        const neox = h * headDim + j * half + i;
        const [src, dst] = toInterleaved ? [neox, inter] : [inter, neox];
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

/** HF (neox) q/k rows -> interleaved (llama.cpp "llama" GGUF, llama2.c). w: [nHeads*headDim, cols]. */
export function permuteQkNeoxToInterleaved(
  w: Float32Array,
  nHeads: number,
  headDim: number,
  rotaryDim = headDim,
): Float32Array {
  return permuteRows(w, nHeads, headDim, rotaryDim, true);
}

/** Interleaved q/k rows -> HF (neox). Inverse of permuteQkNeoxToInterleaved. */
export function permuteQkInterleavedToNeox(
  w: Float32Array,
  nHeads: number,
  headDim: number,
  rotaryDim = headDim,
): Float32Array {
  return permuteRows(w, nHeads, headDim, rotaryDim, false);
}

const QK_TENSOR = /^blk\.\d+\.attn_(q|k)(\.weight|\.bias|_norm\.weight)$/;

/**
 * How many heads a tensor's rows split into when the RoPE layout changes, or null for
 * tensors the layout does not touch. q/k weights and biases move per head; the q/k norm
 * weights ([headDim], applied before RoPE) move like one head.
 */
export function qkPermuteHeads(c: ModelConfig, name: string): number | null {
  const m = QK_TENSOR.exec(name);
  if (!m) return null;
  if (m[2] === "_norm.weight") return 1;
  return m[1] === "q" ? c.numHeads : c.numKvHeads;
}

/** Moves a canonical tensor from `from` to `to` RoPE layout (a no-op for tensors RoPE does not touch). */
export function toRopeLayout(
  c: ModelConfig,
  name: string,
  w: Float32Array,
  from: "interleaved" | "neox",
  to: "interleaved" | "neox",
): Float32Array {
  const heads = qkPermuteHeads(c, name);
  if (from === to || heads === null) return w;
  return to === "interleaved"
    ? permuteQkNeoxToInterleaved(w, heads, c.headDim, c.rope.dim)
    : permuteQkInterleavedToNeox(w, heads, c.headDim, c.rope.dim);
}

/**
 * Native llama.cpp (llama-bench, llama-batched-bench built by bench/build-llamacpp.sh from
 * node-llama-cpp's own source bundle, for this CPU) as a third peer of compare-llamacpp.ts:
 * on small models it is the stronger reference, since node-llama-cpp adds its own per-token
 * work (sampling, detokenizing, JavaScript promises) to every decode step.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export class NativeLlamaCpp {
  constructor(readonly binDir: string) {
    for (const tool of ["llama-bench", "llama-batched-bench"]) {
      if (!existsSync(join(binDir, tool))) throw new Error(`--native ${binDir}: no ${tool} there; build it with bash bench/build-llamacpp.sh`);
    }
  }

  private run(tool: string, args: string[]): string {
    return execFileSync(join(this.binDir, tool), args, { encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "pipe"] });
  }

  /**
   * Prefill tok/s of `prompt` tokens from an empty cache, and decode tok/s of `gen` tokens after
   * a `prompt`-token context (llama-bench's pp test, then its tg test at depth -d prompt, as the
   * other engines decode after their prefill), one repetition each after its warm-up run.
   */
  latency(file: string, prompt: number, gen: number, threads: number): { prefill: number; decode: number } {
    const bench = (args: string[]) => JSON.parse(this.run("llama-bench", ["-m", file, "-t", String(threads), "-r", "1", "-o", "json", ...args])) as { n_prompt: number; n_gen: number; avg_ts: number }[];
    const pp = bench(["-p", String(prompt), "-n", "0"]).find((r) => r.n_prompt === prompt && r.n_gen === 0);
    const tg = bench(["-p", "0", "-n", String(gen), "-d", String(prompt)]).find((r) => r.n_prompt === 0 && r.n_gen === gen);
    if (!pp || !tg) throw new Error(`llama-bench on ${file}: no pp${prompt} / tg${gen} rows in its output`);
    return { prefill: pp.avg_ts, decode: tg.avg_ts };
  }

  /**
   * Aggregate tok/s of `seqs` sequences each decoding `gen` tokens after its own `prompt`-token
   * prompt, in one unified KV cache (llama-batched-bench -kvu): generated tokens over the whole
   * time, prompts included, as compare-llamacpp counts the other two engines' figure. Its
   * tokens are random and its logits unsampled; pure decode speed is returned beside it.
   */
  parallel(file: string, seqs: number, prompt: number, gen: number, threads: number): { tokPerS: number; decodeTokPerS: number } {
    const ctx = seqs * (prompt + gen) + 64;
    const lines = this.run("llama-batched-bench", ["-m", file, "-c", String(ctx), "-b", "2048", "-ub", "512", "-npp", String(prompt), "-ntg", String(gen), "-npl", String(seqs), "-t", String(threads), "-tb", String(threads), "-kvu", "--output-format", "jsonl"])
      .split("\n")
      .filter((l) => l.startsWith("{"));
    const r = lines.map((l) => JSON.parse(l) as { pl: number; t: number; speed_tg: number }).find((x) => x.pl === seqs);
    if (!r) throw new Error(`llama-batched-bench on ${file}: no row for ${seqs} sequences in its output`);
    return { tokPerS: (seqs * gen) / r.t, decodeTokPerS: r.speed_tg };
  }
}

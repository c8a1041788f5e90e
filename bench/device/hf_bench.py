"""The PyTorch + transformers baseline of bench/device/speed.ts: the same model shapes
(random bf16 weights on the GPU), `generate` with a static KV cache, greedy, batch 1
decode and batches of 1 / 8 / 64 prompts; plus the HBM bandwidth torch measures.

  python3 bench/device/hf_bench.py --shapes llama-110m,tinyllama-1.1b --out FILE.json

Each figure is the median of --runs timed runs after one warm-up. Output tokens per
second = batch x new tokens / wall time of generate (prefill included, as a batch
request's throughput).
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

SHAPES = {  # keep in step with bench/device/shapes.ts
    "llama-110m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12, vocab_size=32000, max_position_embeddings=2048),
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048),
    "llama-3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0),
}


def hbm_gbps(nbytes=1 << 30, reps=20):
    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(reps):
        b.copy_(a)
    e.record()
    torch.cuda.synchronize()
    return 2 * nbytes * reps / (s.elapsed_time(e) / 1000) / 1e9


def make_model(shape):
    cfg = LlamaConfig(rms_norm_eps=1e-5, tie_word_embeddings=False, **SHAPES[shape])
    with torch.device("cuda"):
        try:  # transformers 5 names it dtype; 4.x torch_dtype
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        except TypeError:
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    return model.eval()


def timed_generate(model, batch, prompt_len, new_tokens, runs):
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt_len), device="cuda")
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, cache_implementation="static", pad_token_id=0)
    times = []
    for r in range(runs + 1):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
        torch.cuda.synchronize()
        if r > 0:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="llama-110m,tinyllama-1.1b")
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "hbm_gbps": hbm_gbps(), "shapes": {}}
    import transformers
    result["transformers"] = transformers.__version__
    for shape in a.shapes.split(","):
        model = make_model(shape)
        r = {}
        # decode at batch 1: time of N new tokens minus time of 1 (the prefill)
        t_full = timed_generate(model, 1, a.prompt_len, a.new_tokens, a.runs)
        t_one = timed_generate(model, 1, a.prompt_len, 1, a.runs)
        r["decode_tok_s"] = (a.new_tokens - 1) / (t_full - t_one)
        r["prefill_s"] = t_one
        for c in map(int, a.concurrency.split(",")):
            t = timed_generate(model, c, a.prompt_len, a.new_tokens, a.runs)
            r[f"c{c}_output_tok_s"] = c * a.new_tokens / t
        result["shapes"][shape] = r
        print(f"hf_bench: {shape}: {json.dumps(r)}", flush=True)
        with open(a.out, "w") as f:  # after each shape: a stage cut short keeps what finished
            json.dump(result, f, indent=1)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

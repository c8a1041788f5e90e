"""Random-weight Llama and Qwen2 checkpoints and their transformers logits, for
bench/device/hf.ts to compare llmrt's CUDA backend against.

  python3 bench/device/hf_models.py OUT_DIR

Writes OUT_DIR/<case>/ as a Hugging Face dir (config.json, model.safetensors, float32)
plus llmrt-meta.json (prompt token ids) and the logits transformers computes on the GPU
at every position of every prompt, in float32 and in bfloat16 (logits.float32.f32,
logits.bfloat16.f32: float32 [sum(prompt lengths), vocab], prompts concatenated).
Weights are drawn with std 1/sqrt(fan_in) so activations and attention are not flat.
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

CASES = {
    "llama-gqa": LlamaConfig(
        vocab_size=1024, hidden_size=512, intermediate_size=1376, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
    ),
    "qwen2-bias-tied": Qwen2Config(
        vocab_size=1024, hidden_size=512, intermediate_size=1376, num_hidden_layers=4,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=1024,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
    ),
}
PROMPT_LENGTHS = [7, 64, 150]


def from_config(cfg, dtype):
    try:  # transformers 5 names it dtype; 4.x torch_dtype
        return AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    except TypeError:
        return AutoModelForCausalLM.from_config(cfg, torch_dtype=dtype)


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


def main(out):
    for i, (name, cfg) in enumerate(CASES.items()):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        model = from_config(cfg, torch.float32)
        init_weights(model, 1234 + i)
        model.save_pretrained(d, safe_serialization=True)
        g = torch.Generator().manual_seed(99 + i)
        prompts = [torch.randint(0, cfg.vocab_size, (n,), generator=g).tolist() for n in PROMPT_LENGTHS]
        meta = {"prompts": prompts, "vocab": cfg.vocab_size, "logits": {}}
        for dtype in (torch.float32, torch.bfloat16):
            m = model.to("cuda", dtype).eval()
            rows = []
            with torch.no_grad():
                for p in prompts:
                    ids = torch.tensor([p], device="cuda")
                    rows.append(m(ids).logits[0].float().cpu())
            tag = str(dtype).split(".")[-1]
            fname = f"logits.{tag}.f32"
            torch.cat(rows).contiguous().numpy().tofile(os.path.join(d, fname))
            meta["logits"][fname] = tag
        with open(os.path.join(d, "llmrt-meta.json"), "w") as f:
            json.dump(meta, f)
        print(f"hf_models: {name}: {sum(PROMPT_LENGTHS)} positions, logits in float32 and bfloat16", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

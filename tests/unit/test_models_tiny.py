"""Tiny random models (used by the extraction and NLI tests) and load_model on them."""

from __future__ import annotations

import pytest
import torch

from learnerprobe.errors import LearnerprobeError
from learnerprobe.models.loading import load_model, weights_fingerprint
from learnerprobe.models.testing import tiny_entry, tiny_model


@pytest.mark.parametrize("kind", ["qwen3", "bert", "xlmr"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_tiny_models_forward(kind, side):
    tok, model, entry = tiny_model(kind, padding_side=side)
    assert tok.padding_side == side == entry.padding_side
    assert model.config.vocab_size == len(tok)
    assert entry.kind == ("decoder" if kind == "qwen3" else "encoder")
    texts = [entry.format("Ich habe Hunger."), entry.format("Una frase un po' più lunga, sì.")]
    batch = tok(texts, padding=True, return_tensors="pt")
    pad_col = 0 if side == "left" else -1
    assert batch["attention_mask"][0, pad_col] == 0  # the short text is padded on that side
    with torch.inference_mode():
        out = model(**batch, output_hidden_states=True)
    hs = out.hidden_states
    assert len(hs) == model.config.num_hidden_layers + 1
    assert hs[-1].shape == (2, batch["input_ids"].shape[1], model.config.hidden_size)
    assert all(torch.isfinite(h).all() for h in hs)


def test_tiny_models_are_seeded():
    _, a, _ = tiny_model("bert", seed=0)
    _, b, _ = tiny_model("bert", seed=0)
    _, c, _ = tiny_model("bert", seed=1)
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    name = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(pa[name], pb[name]) and not torch.equal(pa[name], pc[name])


def test_tiny_unknown_kind():
    with pytest.raises(LearnerprobeError, match="qwen3"):
        tiny_model("gpt9")


def test_load_model_tiny_entry():
    tok, model, entry = load_model(tiny_entry("qwen3", "left"), dtype="bfloat16")
    assert entry.name == "tiny-qwen3" and tok.padding_side == "left"
    assert next(model.parameters()).dtype == torch.bfloat16
    fps = {weights_fingerprint(tiny_entry(k)) for k in ("qwen3", "bert", "xlmr")}
    assert len(fps) == 3

"""Extraction engine: pooling under both padding sides, all hidden states, chunking, truncation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from learnerprobe.extract import extract
from learnerprobe.extract.engine import _Runner, _tokenize, bucket_length, plan_batches
from learnerprobe.extract.pooling import last_real_index, pool, position_ids_from_mask
from learnerprobe.models.testing import tiny_model

TEXTS = [
    "Hallo, ich heiße Anna und wohne seit zwei Jahren in Berlin.",
    "Ciao!",
    "Dobrý den, jmenuji se Petr. " * 12,
    "tabs\tand\nnewlines  — odd “quotes” ß Ž ø",
    "Ich möchte mich für die Stelle als Au-pair bewerben, weil ich Kinder mag.",
    "Sehr geehrte Damen und Herren",
]


def _reference(tok, model, entry, text: str, pooling: str) -> np.ndarray:
    """Independent reference: a plain HF forward of one unpadded text, pooled with numpy."""
    enc = tok(entry.format(text), truncation=True, max_length=entry.max_length, return_tensors="pt")
    with torch.no_grad():
        hs = model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
    h = np.stack([x[0].float().numpy() for x in hs])  # layers x tokens x hidden
    return {"mean": h.mean(axis=1), "last": h[:, -1], "cls": h[:, 0]}[pooling]


def test_pool_indices_left_and_right():
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_real_index(right).tolist() == [2, 4]
    assert last_real_index(left).tolist() == [4, 4]
    assert position_ids_from_mask(left)[0].tolist() == [0, 0, 0, 1, 2]
    h = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    assert torch.equal(pool(h, right, "last")[0], h[0, 2])
    assert torch.equal(pool(h, left, "cls")[0], h[0, 2])
    assert torch.equal(pool(h, right, "cls")[0], h[0, 0])
    assert torch.allclose(pool(h, left, "mean")[0], h[0, 2:].mean(0))
    assert torch.allclose(pool(h, right, "mean")[0], h[0, :3].mean(0))


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize(
    "kind,pooling", [("qwen3", "last"), ("bert", "mean"), ("bert", "cls"), ("xlmr", "mean")]
)
def test_batched_equals_one_at_a_time(kind, pooling, side):
    tok, model, entry = tiny_model(kind, padding_side=side)
    entry = dataclasses.replace(entry, pooling=pooling)
    triple = (tok, model, entry)
    batched = extract(TEXTS, triple, cache=False, progress=False, batch_tokens=4096)
    assert batched.array.shape == (3, len(TEXTS), 32)  # 2 layers + embeddings
    assert batched.layers == [0, 1, 2]
    for j, t in enumerate(TEXTS):
        single = extract([t], triple, cache=False, progress=False).array[:, 0]
        np.testing.assert_allclose(batched.array[:, j], single, atol=1e-4, rtol=0)
        np.testing.assert_allclose(
            batched.array[:, j], _reference(tok, model, entry, t, pooling), atol=1e-4, rtol=0
        )


def test_final_layer_is_last_hidden_state():
    tok, model, entry = tiny_model("bert")
    acts = extract(TEXTS[:2], (tok, model, entry), cache=False, progress=False)
    enc = tok(entry.format(TEXTS[0]), return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    np.testing.assert_allclose(
        acts.array[-1, 0], out.last_hidden_state[0].mean(0).numpy(), atol=1e-5
    )


def test_plan_batches_respects_token_budget():
    lengths = [100, 90, 90, 50, 40, 10, 10, 3]
    assert [bucket_length(n) for n in lengths] == [104, 96, 96, 56, 40, 16, 16, 16]
    batches = plan_batches(lengths, 200)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len({bucket_length(lengths[i]) for i in b}) == 1  # one padded length per batch
        assert len(b) == 1 or bucket_length(lengths[b[0]]) * len(b) <= 200
    assert batches == [[0], [1, 2], [3], [4], [5, 6, 7]]
    assert plan_batches(lengths, 10_000) == [[0], [1, 2], [3], [4], [5, 6, 7]]
    # the attention cap: size x length^2 <= attn_tokens
    assert plan_batches([300] * 5, 10_000, attn_tokens=2 * 304**2) == [[0, 1], [2, 3], [4]]


def test_bucket_length_is_canonical_and_bounded():
    for n in range(1, 3000):
        b = bucket_length(n)
        assert b >= max(n, 16) and b % 8 == 0
        assert b == 16 or b - n < 8 or (b - n) / n <= 1 / 16
        assert bucket_length(n, max_length=512) <= max(n, 512)
    assert bucket_length(500, max_length=510) == 510


def test_vectors_do_not_depend_on_batch_neighbours():
    """A text's vector is the same bits whatever it is extracted with (batch size, batch
    composition, a subset of the texts) -- so a cache filled by different calls, or resumed after
    a crash, holds the vectors one fresh call would compute. The old plan padded to the batch's
    longest text and failed this."""
    triple = tiny_model("bert")
    texts = TEXTS + [t + " Noch ein Satz dazu." for t in TEXTS] + [t[:20] for t in TEXTS]
    kw = dict(cache=False, progress=False)
    full = extract(texts, triple, batch_tokens=16384, **kw).array
    for bt in (1, 48, 256):
        np.testing.assert_array_equal(extract(texts, triple, batch_tokens=bt, **kw).array, full)
    for part in (slice(0, 5), slice(5, None), slice(1, None, 3)):
        np.testing.assert_array_equal(extract(texts[part], triple, **kw).array, full[:, part])
    for j in range(0, len(texts), 4):
        np.testing.assert_array_equal(extract([texts[j]], triple, **kw).array[:, 0], full[:, j])


def test_truncation_counted_and_chunks_average_windows():
    tok, model, entry = tiny_model("bert")
    entry = dataclasses.replace(entry, max_length=16)
    triple = (tok, model, entry)
    trunc = extract(TEXTS, triple, cache=False, progress=False)
    lens = [len(tok(entry.format(t))["input_ids"]) for t in TEXTS]
    assert trunc.n_truncated == sum(n > 16 for n in lens) > 0
    chunks = extract(TEXTS, triple, cache=False, progress=False, chunking="chunks")
    assert chunks.n_truncated == 0
    for j, n in enumerate(lens):
        if n <= 16:
            np.testing.assert_allclose(chunks.array[:, j], trunc.array[:, j], atol=1e-5)
    # the long text: token-weighted mean of its windows, each run alone
    j = 2
    units, _ = _tokenize(tok, [entry.format(TEXTS[j])], 16, "chunks")
    runner = _Runner(tok, model, entry, "cpu", "float32")
    vecs = [runner([u.ids], None)[:, 0] for u in units[0]]
    w = np.array([len(u.ids) for u in units[0]], dtype=np.float64)
    expect = sum(v * wi for v, wi in zip(vecs, w, strict=True)) / w.sum()
    assert len(units[0]) > 2
    np.testing.assert_allclose(chunks.array[:, j], expect, atol=1e-5)
    assert not np.allclose(chunks.array[:, j], trunc.array[:, j], atol=1e-3)


def test_layer_subset_and_negative_index():
    triple = tiny_model("qwen3")
    full = extract(TEXTS, triple, cache=False, progress=False)
    sub = extract(TEXTS, triple, cache=False, progress=False, layers=[0, -1])
    assert sub.layers == [0, 2]
    np.testing.assert_allclose(sub.array, full.array[[0, 2]], atol=1e-6)
    np.testing.assert_allclose(sub.layer(2), full.layer(2), atol=1e-6)


def test_bf16_close_to_fp32():
    triple = tiny_model("bert")
    a = extract(TEXTS, triple, cache=False, progress=False, dtype="fp32")
    b = extract(TEXTS, triple, cache=False, progress=False, dtype="bf16")
    assert b.dtype == "bfloat16" and a.dtype == "float32"
    cos = (a.array * b.array).sum(-1) / (
        np.linalg.norm(a.array, axis=-1) * np.linalg.norm(b.array, axis=-1)
    )
    assert cos.min() > 0.99
    assert not np.array_equal(a.array, b.array)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("kind", ["bert", "xlmr", "qwen3"])
def test_layers_below_the_last_skip_deeper_layers_bit_identically(kind, side):
    """Asking for layers below the final one runs the model only that deep (a bundle on layer 5
    of 12 pays for 5 layers) and gives exactly the vectors the full forward gives."""
    tok, model, entry = tiny_model(kind, padding_side=side)
    full = extract(TEXTS, (tok, model, entry), cache=False, progress=False)
    ran: list[int] = []
    blocks = [m for m in model.modules() if isinstance(m, type(model)._can_record_outputs["hidden_states"])]
    handles = [b.register_forward_hook(lambda m, a, o, i=i: ran.append(i)) for i, b in enumerate(blocks)]
    try:
        for layers in ([0], [1], [1, 0]):
            ran.clear()
            sub = extract(TEXTS, (tok, model, entry), cache=False, progress=False, layers=layers)
            np.testing.assert_array_equal(sub.array, full.array[sorted(layers)])
            assert max(ran, default=-1) < max(layers)  # block i makes hidden state i + 1
    finally:
        for h in handles:
            h.remove()

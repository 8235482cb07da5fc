"""`learnerprobe train --method NAME`: inductive transfer methods trained into CEFR bundles
(variant and layer chosen by leave-one-corpus-out validation), predicted through `Predictor`
exactly as the refitted estimator predicts; transductive methods refused; the trusted skops
types cover every bundleable transfer estimator.

Three toy corpora (CSV tables) and the seeded tiny BERT: no real corpus, no real weights.
"""

import csv
import warnings

import numpy as np
import pytest

from learnerprobe.bundles.io import load_bundle
from learnerprobe.bundles.trust import trusted_types
from learnerprobe.errors import ConfigError
from learnerprobe.methods.registry import BuildContext, get_method, method_names
from learnerprobe.predict import Predictor
from learnerprobe.train import train_bundle

LEVELS = ["A1", "A2", "B1", "B2", "C1"]
WORDS = ("ich wohne gern in der Stadt und arbeite jeden Tag sehr viel mit meinen Kollegen "
         "obwohl die Arbeit manchmal schwierig ist weil wir wenig Zeit haben").split()


def _corpus(path, seed: int, n: int = 30) -> None:
    """Texts whose length grows with the level (a signal the surface features and the tiny
    model's states both carry), one author per text."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "cefr"])
        for i in range(n):
            lev = i % len(LEVELS)
            k = 3 + 4 * lev + int(rng.integers(0, 3))
            w.writerow([f"{path.stem}-{i}", " ".join(rng.choice(WORDS, size=k)), LEVELS[lev]])


@pytest.fixture(scope="module")
def study_root(tmp_path_factory):
    """Three table corpora and the tiny model folder, made once."""
    from learnerprobe.models.testing import tiny_model

    root = tmp_path_factory.mktemp("transfer-train")
    tok, model, _ = tiny_model("bert", seed=0)
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    for j, name in enumerate(("ca", "cb", "cc")):
        _corpus(root / f"{name}.csv", seed=j)
    return root


@pytest.fixture
def study(study_root, tmp_path, monkeypatch):
    """The config: three table corpora, two candidate layers, and the tiny model copied under
    this test's model cache (the only kind of folder a bundle's model may be)."""
    import shutil

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "cache" / "models" / "tiny"
    shutil.copytree(study_root / "tiny", model)
    specs = [f'{{ name = "table", root = "{study_root}", path = "{name}.csv", as = "{name}", '
             'language = "de" }' for name in ("ca", "cb", "cc")]
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
name = "t"
task = "cefr"
corpora = [{", ".join(specs)}]
models = ["{model}"]
n_boot = 20
[labels]
scheme = "five"
[extraction]
dtype = "float32"
max_length = 64
[transfer]
layers = [1, 2]
""")
    return cfg


TEXTS = ["ich wohne in der Stadt", "Hallo",
         "ich arbeite jeden Tag sehr viel mit meinen Kollegen obwohl die Arbeit manchmal "
         "schwierig ist weil wir wenig Zeit haben und ich wohne gern in der Stadt"]


def _direct(path, est, texts):
    """The refitted estimator on the features the study would give it (tiny model states at
    the bundle's layer(s), then the surface columns): what Predictor must reproduce."""
    from learnerprobe.estimators.probes.surface import surface_features
    from learnerprobe.extract import extract
    from learnerprobe.models.loading import load_model

    m = load_bundle(path).manifest
    want = m.get("layers") or [m["layer"]]
    tok, mdl, entry = load_model(m["model"]["source"], device="cpu", dtype="float32")
    acts = extract(texts, (tok, mdl, entry), layers=want, device="cpu", dtype="float32",
                   max_length=64, cache=False, progress=False)
    X = np.concatenate([np.asarray(acts.layer(i), dtype=np.float32) for i in want], 1)
    if m["preprocessing"].get("surface"):
        X = np.hstack([X, np.log1p(surface_features(texts))])
    return est.predict_proba(X), est.predict(X)


@pytest.mark.parametrize("method", ["thresholds", "hidden_surface"])
def test_transfer_bundle_round_trip(study, tmp_path, monkeypatch, method):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    path = train_bundle(study, tmp_path / method, log=lambda *_: None, method=method)
    b = load_bundle(path)
    m = b.manifest
    assert m["method"] == method and m["labels"] == ["A1", "A2", "B1", "B2", "C1+C2"]
    assert m["layer"] in (1, 2) and "layers" not in m
    # TransferProbe takes the surface columns as the study gives them (ignored with hidden only)
    assert m["preprocessing"]["surface"] == 3
    v = m["metrics"]["validation"]["qwk"]
    assert v["ci_low"] <= v["value"] <= v["ci_high"]
    assert set(m["metrics"]["validation_by_corpus"]) == {"ca", "cb", "cc"}
    assert len(m["metrics"]["candidates"]) == 2  # one grid point x two layers
    assert "held out in turn" in m["card"]["selection"]
    # the chosen candidate is the best validation score (ties: the earliest)
    cands = m["metrics"]["candidates"]
    best = max(cands.values())
    assert next(k for k, s in cands.items() if s == best).endswith(f"layer {m['layer']}")
    est = b.load_estimator()
    predictor = Predictor.load(path)
    out = predictor.predict(TEXTS)
    proba, pred = _direct(path, est, TEXTS)
    for r, p, lev in zip(out, proba, pred, strict=True):
        c = r["cefr"]
        assert c["probabilities"] == {lab: round(float(x), 6)
                                      for lab, x in zip(m["labels"], p, strict=True)}
        assert c["label"] == m["labels"][int(lev)]  # the method's decoding, not the argmax
        assert isinstance(c["score"], float)
        # sets calibrated on the held-out-corpus predictions, flags on the layer's states
        assert c["set"] and set(c["set"]) <= set(m["labels"]) and c["coverage"] == 0.9
        assert isinstance(c["flags"]["unfamiliar"], bool)
    assert m["applicability"]["n_calibration"] > 0 and "validation ECE" in m["card"]["calibration"]
    # serve answers with the same prediction
    from fastapi.testclient import TestClient

    from learnerprobe.serve.app import create_app

    client = TestClient(create_app(predictor, max_chars=1000, timeout_s=30))
    assert client.get("/api/bundles").json()["cefr"]["method"] == method
    r = client.post("/api/predict", json={"text": TEXTS[2]})
    assert r.status_code == 200 and r.json()["cefr"] == out[2]["cefr"]


def test_transfer_refusals(study, tmp_path, monkeypatch):
    """Transductive methods are one-line ConfigErrors before anything is read or trained."""
    import learnerprobe.train as train_mod

    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(train_mod, "train_transfer", boom)
    for name in [n for n in method_names(task="transfer") if get_method(n).transductive]:
        with pytest.raises(ConfigError, match="transductive") as e:
            train_bundle(study, tmp_path / "x", method=name)
        assert "\n" not in str(e.value) and "leace" in str(e.value)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="unknown transfer"):
        train_bundle(study, tmp_path / "x", method="nope")


def test_cli_refuses_transductive_with_exit_2(study, tmp_path, capsys, monkeypatch):
    import learnerprobe.cli as lp

    monkeypatch.setattr("sys.argv", ["learnerprobe", "train", str(study), "--bundle",
                                     str(tmp_path / "b"), "--method", "em_prior"])
    with pytest.raises(SystemExit) as e:
        lp.main()
    assert e.value.code == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "transductive" in text and "Traceback" not in text
    assert not (tmp_path / "b").exists()


def test_trust_list_covers_transfer_estimators():
    """Regenerate the trusted types from every bundleable transfer method, freshly fitted (with
    corpora, so the erasers exist): exactly the listed transfer types, none missing."""
    import skops.io as sio

    from learnerprobe.bundles.integrity import SEAL_FORMAT

    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 6))
    y = np.arange(90) % 4
    d = np.array(["a", "b", "c"] * 30)
    found: set[str] = set()
    names = [n for n in method_names(task="transfer") if get_method(n).bundle]
    assert "leace" in names and not any(get_method(n).transductive for n in names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in names:
            entry = get_method(n)
            params = entry.build(n_classes=4).get_params()
            grid = entry.grid or {}
            opts = {k: v[-1] for k, v in grid.items()}  # the non-default end of each option
            opts |= {"n_surface": 2} if "n_surface" in params else {}
            opts |= {"n_layers": 2} if "n_layers" in params else {}
            est = entry.build(BuildContext(n_classes=4, seed=0), opts).fit(X, y, domains=d)
            data = sio.dumps({"format": SEAL_FORMAT, "estimator": est, "seal": "{}"})
            found |= set(sio.get_untrusted_types(data=data))
    trusted = trusted_types()
    assert found <= trusted, sorted(found - trusted)
    listed = {t for t in trusted if t.startswith("learnerprobe.estimators.transfer.")}
    assert listed == found, sorted(listed ^ found)
    assert not any("torch" in t.split(".")[0] for t in found)


def test_scalar_mix_bundle_reads_several_layers(study, tmp_path, monkeypatch):
    """A multi-layer estimator: the manifest lists its layers, Predictor extracts all of them."""
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    path = train_bundle(study, tmp_path / "mix", log=lambda *_: None, method="scalar_mix")
    b = load_bundle(path)
    m = b.manifest
    assert m["layers"] == [1, 2] and m["layer"] == 2
    est = b.load_estimator()
    out = Predictor.load(path).predict(TEXTS)
    proba, _ = _direct(path, est, TEXTS)
    for r, p in zip(out, proba, strict=True):
        assert r["cefr"]["probabilities"] == {lab: round(float(x), 6)
                                              for lab, x in zip(m["labels"], p, strict=True)}


def test_predictor_labels_with_the_methods_decoding(tmp_path, monkeypatch):
    """A threshold-decoding probe whose probabilities always favour C1+C2 but whose cut points
    put every text at A1: the bundle's label is the decoded level, not the argmax."""
    from learnerprobe.bundles.io import save_bundle
    from learnerprobe.estimators.transfer.probe import TransferProbe
    from learnerprobe.models.pinning import weights_pin
    from learnerprobe.models.testing import tiny_entry

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 32))
    y = np.where(np.arange(200) % 10 < 9, 4, np.arange(200) % 4)  # 90 % C1+C2
    est = TransferProbe(decode="thresholds", n_classes=5).fit(X, y)
    est.thresholds_ = np.array([10.0, 11.0, 12.0, 13.0])  # every expected level is below
    assert not est.label_is_argmax
    entry = tiny_entry("bert")
    path = save_bundle(tmp_path / "b", task="cefr", method="thresholds",
                       labels=["A1", "A2", "B1", "B2", "C1+C2"], estimator=est,
                       model=entry.to_dict(), weights=weights_pin(entry), layer=1,
                       preprocessing={"features": "hidden", "extraction": {"dtype": "float32"}})
    for r in Predictor.load(path).predict(TEXTS):
        c = r["cefr"]
        assert max(c["probabilities"], key=c["probabilities"].get) == "C1+C2"
        assert c["label"] == "A1"

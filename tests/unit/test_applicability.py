"""Prediction sets and applicability flags from a bundle (bundles.applicability, Predictor):
each flag fires and stays quiet, sets follow the coverage, bad statistics are refused at load,
and a bundle without them predicts with a note."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learnerprobe.bundles import applicability as ap
from learnerprobe.errors import BundleError, LearnerprobeError
from learnerprobe.predict import Predictor
from tests.helpers.bundles import TEXTS, make_bundle, make_hidden_bundle, toy_levels

GERMAN = "Ich habe eine Frage zu der Wohnung bitte"
ENGLISH = "I would like to ask a question about the flat please"
LONG_GERMAN = " ".join(["Die Arbeit macht mir viel Spaß und ich wohne gern in der Stadt."] * 6)


@pytest.fixture(scope="module")
def l1(tmp_path_factory):
    path, _ = make_bundle(tmp_path_factory.mktemp("ap"), task="l1", applicability=True)
    return Predictor.load(path)


def test_language_flag_fires_on_english_not_on_german(l1):
    de, en = (r["l1"] for r in l1.predict([GERMAN, ENGLISH]))
    assert de["flags"]["language"] is False and de["checks"]["language"] == "de"
    assert en["flags"]["language"] is True and en["checks"]["language"] == "en"
    assert en["checks"]["training_languages"] == ["de", "it"]


def test_length_flag_fires_outside_the_training_word_counts(l1):
    short, long_ = (r["l1"] for r in l1.predict([GERMAN, LONG_GERMAN]))
    lo, hi = short["checks"]["training_words"]
    assert lo <= short["checks"]["words"] <= hi and short["flags"]["length"] is False
    assert long_["checks"]["words"] > hi and long_["flags"]["length"] is True


def test_text_bundle_cannot_tell_unfamiliar(l1):
    assert l1.predict([GERMAN])[0]["l1"]["flags"]["unfamiliar"] is None


def test_sets_grow_with_coverage_and_bad_coverage_is_refused(l1):
    small = l1.predict([GERMAN], coverage=0.5)[0]["l1"]
    big = l1.predict([GERMAN], coverage=0.99)[0]["l1"]
    assert small["coverage"] == 0.5 and big["coverage"] == 0.99
    assert set(small["set"]) <= set(big["set"]) <= {"de", "it"}
    assert big["set"] == ["de", "it"]  # 8 calibration texts: 99 % needs every label
    for bad in (0, 1, 1.2, -0.5, float("nan"), "0.9", True):
        with pytest.raises(LearnerprobeError, match="coverage"):
            l1.predict([GERMAN], coverage=bad)


def test_bundle_without_statistics_predicts_and_says_so(tmp_path):
    r = Predictor.load(make_bundle(tmp_path)[0]).predict([GERMAN])[0]["l1"]
    assert "set" not in r and "flags" not in r and "retrain" in r["note"]


def test_manifest_states_validation_ece(tmp_path):
    path, _ = make_bundle(tmp_path, applicability=True)
    m = json.loads((path / "manifest.json").read_text())
    assert 0 <= m["applicability"]["validation_ece"] <= 1
    assert m["applicability"]["n_calibration"] == 8


def _limits(**over):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    p = rng.dirichlet(np.ones(5), 100)
    a = ap.fit("ordinal", p, rng.integers(0, 5, 100), ["a b c"] * 50, ["de"], X[:300], X[300:])
    a.tensors.update(over)
    return a


def test_unfamiliar_flags_about_5_percent_of_similar_and_all_of_distant_states():
    a = _limits()
    lim = ap.Limits(a.spec, a.tensors, "t", width=8)
    rng = np.random.default_rng(1)
    near = lim.distances(rng.normal(size=(2000, 8)))
    far = lim.distances(rng.normal(3.0, 1.0, size=(200, 8)))
    assert 0.01 < (near > lim.threshold).mean() < 0.12
    assert (far > lim.threshold).all()
    assert lim.flags("a b c", "de", float(far[0]))[0]["unfamiliar"] is True
    assert lim.flags("a b c", "de", float(np.median(near)))[0]["unfamiliar"] is False


@pytest.mark.parametrize("bad, match", [
    ({"conformal_scores": np.full(100, np.nan)}, "non-finite"),
    ({"conformal_scores": np.full(100, 1.5)}, r"\[0, 1\]"),
    ({"conformal_scores": np.zeros(7)}, "shape"),
    ({"precision": np.full((32, 32), np.inf, dtype=np.float32)}, "non-finite"),
    ({"mean": np.zeros(9, dtype=np.float32)}, "shape"),
    ({"mean": np.zeros(32, dtype=np.int32)}, "float"),
    ({"extra": np.zeros(1)}, "expected"),
])
def test_bad_statistics_are_refused_at_load(tmp_path, bad, match):
    from learnerprobe.bundles.io import load_bundle

    X, _ = toy_levels(d=32)  # the tiny model's width
    a = ap.fit("ordinal", np.random.default_rng(0).dirichlet(np.ones(5), 100),
               np.arange(100) % 5, ["a b"] * 10, ["de"], X[:100], X[100:])
    a.tensors.update(bad)
    path = make_hidden_bundle(tmp_path, applicability=a)
    with pytest.raises(BundleError, match=match):
        load_bundle(path).load_limits()


def test_width_must_match_the_model(tmp_path):
    from learnerprobe.bundles.io import load_bundle

    path = make_hidden_bundle(tmp_path, applicability=_limits())  # 8 wide, the model 32
    with pytest.raises(BundleError, match="width 8"):
        load_bundle(path).load_limits()


@pytest.mark.parametrize("field, value", [
    ("length", {"low": 50, "high": 10, "quantiles": [0.01, 0.99]}),
    ("validation_ece", 1.5),
    ("languages", ["de; rm -rf"]),
    ("n_calibration", 0),
])
def test_manifest_numbers_are_bounded(tmp_path, field, value):
    a = _limits()
    a.spec[field] = value
    with pytest.raises(BundleError, match=field):
        make_hidden_bundle(tmp_path, applicability=a)


def test_hidden_bundle_flags_unfamiliar_end_to_end(tmp_path):
    """Statistics of the tiny model's own states at the bundle's layer: a training text is
    familiar, a text in another script and register is not."""
    plain = Predictor.load(make_hidden_bundle(tmp_path, name="plain"))
    lo = plain._loaded["cefr"]
    X = np.asarray(plain._features(lo, list(TEXTS)), dtype=np.float32)
    rng = np.random.default_rng(0)
    a = ap.fit("ordinal", rng.dirichlet(np.ones(5), 24), np.arange(24) % 5, TEXTS, ["de", "it"],
               X, X)
    pred = Predictor.load(make_hidden_bundle(tmp_path, name="ap", applicability=a))
    known, odd = (r["cefr"] for r in pred.predict([TEXTS[0], "ႠႡႢႣ ႤႥႦ 12345 ႧႨႩ @@@ ###"]))
    assert known["flags"]["unfamiliar"] is False
    assert odd["flags"]["unfamiliar"] is True
    assert odd["checks"]["distance"] > odd["checks"]["threshold"]
    assert known["set"] and set(known["set"]) <= set(pred.manifests["cefr"]["labels"])


def test_serve_returns_sets_and_flags_and_refuses_bad_coverage(tmp_path):
    from fastapi.testclient import TestClient

    from learnerprobe.serve.app import create_app

    path, _ = make_bundle(tmp_path, applicability=True)
    client = TestClient(create_app(Predictor.load(path), max_chars=1000, timeout_s=10))
    r = client.post("/api/predict", json={"text": ENGLISH, "coverage": 0.8})
    assert r.status_code == 200, r.text
    body = r.json()["l1"]
    assert body["coverage"] == 0.8 and body["set"] and body["flags"]["language"] is True
    for bad in (0.0, 1.0, 1.5, -1.0, "0.9", True):
        assert client.post("/api/predict", json={"text": GERMAN, "coverage": bad}
                           ).status_code == 422
    assert client.post("/api/predict", json={"text": GERMAN}).json()["l1"]["coverage"] == 0.9
    page = client.get("/static/page.js").text
    assert "flags" in page and "coverage" in page


def test_cli_prints_set_and_warnings_and_refuses_bad_coverage(tmp_path, capsys):
    from tests.helpers.cli import one_error_line, run_main

    path, _ = make_bundle(tmp_path, applicability=True)
    code, out, err = run_main(["predict", "--bundle", path, "--coverage", "0.8", ENGLISH], capsys)
    assert code == 0, err
    assert "set {" in out and "(80 %)" in out and "warning: language (en" in out
    code, out, _ = run_main(["predict", "--bundle", path, "--json", GERMAN], capsys)
    r = json.loads(out)["l1"]
    assert r["coverage"] == 0.9 and isinstance(r["set"], list) and "flags" in r
    for bad in ("0", "1", "1.5", "-0.2", "nan"):
        code, out, err = run_main(["predict", "--bundle", path, "--coverage", bad, GERMAN],
                                  capsys)
        assert code == 2 and "--coverage" in one_error_line(out + err)


def test_cli_set_text():
    from learnerprobe.cli.predict import set_text

    assert set_text(["A2", "B1"], True) == "A2–B1"
    assert set_text(["B1"], True) == "B1"
    assert set_text(["de", "it"], False) == "{de, it}"
    assert set_text([], True) == "∅"


def test_bundle_verify_states_validation_ece_or_says_to_retrain(tmp_path, capsys):
    from tests.helpers.cli import run_main

    new, _ = make_bundle(tmp_path, name="new", applicability=True)
    old, _ = make_bundle(tmp_path, name="old")
    code, out, err = run_main(["bundle", "verify", new], capsys)
    assert code == 0, err
    assert "validation ECE" in out and "length (" in out and "language (trained on de, it)" in out
    code, out, _ = run_main(["bundle", "verify", "--json", new], capsys)
    info = json.loads(out)
    assert info["prediction_sets"] is True and 0 <= info["validation_ece"] <= 1
    code, out, _ = run_main(["bundle", "verify", old], capsys)
    assert code == 0 and "retrain" in out

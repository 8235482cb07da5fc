"""Estimators as arrays (learnerprobe.bundles.arrays): written only when they reproduce the
estimator, applied without scikit-learn, and refused when tampered with."""

import json

import numpy as np
import pytest

from learnerprobe.bundles import arrays
from learnerprobe.bundles.export import export
from learnerprobe.bundles.io import load_bundle, save_bundle
from learnerprobe.calibration import OrdinalCalibrated
from learnerprobe.errors import BundleError
from learnerprobe.nli.ngram import NgramClassifier
from learnerprobe.predict import Predictor
from learnerprobe.probes.estimators import (
    LogisticProbe,
    MLPClfProbe,
    MLPRegProbe,
    OrdinalLogisticAT,
    RidgeOrdinal,
)
from tests.helpers.bundles import LABELS, TEXTS, make_hidden_bundle, toy_levels

PROBES = {
    "mlp_clf": lambda: MLPClfProbe(hidden_layer_size=8, n_classes=5, max_epochs=15),
    "mlp_clf_reference": lambda: MLPClfProbe(hidden_layer_size=8, n_classes=5,
                                             backend="sklearn_torch"),
    "logistic": lambda: LogisticProbe(n_classes=5, Cs=[0.1, 1.0], scale=True),
    "ordinal": lambda: OrdinalLogisticAT(n_classes=5, alphas=[1.0, 10.0], scale=True),
    "ridge": lambda: RidgeOrdinal(n_classes=5, alphas=[1.0, 10.0], scale=True),
    "calibrated_ridge": lambda: OrdinalCalibrated(RidgeOrdinal(n_classes=5), n_classes=5),
    "calibrated_mlp_reg": lambda: OrdinalCalibrated(
        MLPRegProbe(hidden_layer_size=8, n_classes=5, max_epochs=15), n_classes=5),
}


def _outputs(est, X):
    out = {}
    for name in ("predict_proba", "predict_score"):
        fn = getattr(est, name, None)
        if fn is not None:
            out[name] = np.asarray(fn(X), dtype=float)
    out["predict"] = np.asarray(est.predict(X))
    return out


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probe_array_form_matches_the_estimator(name):
    X, y = toy_levels()
    est = PROBES[name]().fit(X, y)
    spec, tensors = export(est)
    back, _ = arrays.loads(arrays.dumps(tensors, {}), "t")
    arr = arrays.build(json.loads(json.dumps(spec)), back, "t")
    Xn = np.random.default_rng(1).normal(size=(40, X.shape[1])).astype(np.float32)
    want, got = _outputs(est, Xn), _outputs(arr, Xn)
    assert set(want) == set(got)
    for k in want:
        if k == "predict":
            assert np.array_equal(want[k], got[k])
        else:
            np.testing.assert_allclose(got[k], want[k], atol=1e-6, rtol=0)


@pytest.mark.parametrize("options", [{}, {"classifier": "logreg"}, {"char_ngrams": None},
                                     {"lowercase": True, "word_ngrams": (1, 3)}])
def test_ngram_array_form_matches_sklearn(options):
    est = NgramClassifier(min_df=1, **options).fit(TEXTS, LABELS)
    spec, tensors = export(est)
    arr = arrays.build(spec, arrays.loads(arrays.dumps(tensors, {}), "t")[0], "t")
    texts = np.asarray(["Ich  wohne\tin Wien.\n\nDAS ist gut!", " ", "é 😀", "x" * 50,
                        "Caro amico, io sono contento"], dtype=object)
    np.testing.assert_allclose(arr.predict_proba(texts), est.predict_proba(texts), atol=1e-6)
    assert list(arr.predict(texts)) == list(est.predict(texts))


def _ngram_bundle(tmp_path, est, name="b"):
    labels = [str(c) for c in est.classes_]
    return save_bundle(tmp_path / name, task="l1", method="ngram", labels=labels, estimator=est,
                       preprocessing={"features": "text", "mask": False},
                       check_inputs=np.asarray(TEXTS, dtype=object))


def test_bundle_round_trip_uses_the_arrays_and_agrees_with_skops(tmp_path):
    est = NgramClassifier(min_df=1).fit(TEXTS, LABELS)
    path = _ngram_bundle(tmp_path, est)
    b = load_bundle(path)
    assert b.manifest["arrays"]["spec"]["kind"] == "ngram"
    assert "estimator.safetensors" in b.manifest["files"]
    arr = b.load_array_estimator()
    assert isinstance(arr, arrays.ArrayEstimator)
    fast = Predictor.load(path).predict(["Io sono contento", "Ich bin hier"])
    slow = Predictor.load(path, arrays=False).predict(["Io sono contento", "Ich bin hier"])
    assert fast == slow


def test_no_array_form_when_the_kind_has_none(tmp_path):
    est = NgramClassifier(min_df=1, probability="calibrated").fit(TEXTS * 2, LABELS * 2)
    b = load_bundle(_ngram_bundle(tmp_path, est))
    assert "arrays" not in b.manifest and b.load_array_estimator() is None
    assert Predictor.load(b.path).predict(["Io sono contento"])[0]["l1"]["label"] == "it"


def test_no_array_form_when_it_does_not_reproduce_the_estimator(tmp_path, monkeypatch):
    est = NgramClassifier(min_df=1).fit(TEXTS, LABELS)
    real = arrays.build

    def off_by_a_little(spec, tensors, where):
        arr = real(spec, tensors, where)
        proba = arr.predict_proba
        arr.predict_proba = lambda X: proba(X) + 1e-5
        return arr

    monkeypatch.setattr(arrays, "build", off_by_a_little)
    b = load_bundle(_ngram_bundle(tmp_path, est))
    assert "arrays" not in b.manifest


def _rewrite(path, name, data):
    """Replace a bundle file and fix its manifest hash (as a tamperer would)."""
    import hashlib

    (path / name).write_bytes(data)
    m = json.loads((path / "manifest.json").read_text())
    m["files"][name] = hashlib.sha256(data).hexdigest()
    (path / "manifest.json").write_text(json.dumps(m))


def test_tampered_array_form_is_refused(tmp_path):
    est = NgramClassifier(min_df=1).fit(TEXTS, LABELS)
    path = _ngram_bundle(tmp_path, est)
    m = json.loads((path / "manifest.json").read_text())
    m["arrays"]["spec"]["head"] = "logreg"  # manifest edited: the seal in the arrays differs
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="sealed|differs"):
        load_bundle(path).load_array_estimator()

    path = _ngram_bundle(tmp_path, est, "c")
    data = (path / "estimator.safetensors").read_bytes()
    _rewrite(path, "estimator.safetensors", data[:-7])
    with pytest.raises(BundleError, match="safetensors"):
        load_bundle(path).load_array_estimator()


def test_bad_specs_are_clear_bundle_errors():
    X, y = toy_levels()
    spec, tensors = export(LogisticProbe(n_classes=5).fit(X, y))
    with pytest.raises(BundleError, match="unknown kind"):
        arrays.build({**spec, "kind": "builtins.eval"}, tensors, "t")
    with pytest.raises(BundleError, match="exactly the fields"):
        arrays.build({**spec, "extra": 1}, tensors, "t")
    with pytest.raises(BundleError, match="not in the spec"):
        arrays.build(spec, {**tensors, "junk": np.zeros(2)}, "t")
    with pytest.raises(BundleError, match="shape"):
        arrays.build(spec, {**tensors, "coef": tensors["coef"][:, :3]}, "t")
    bad = tensors["coef"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(BundleError, match="non-finite"):
        arrays.build(spec, {**tensors, "coef": bad}, "t")
    with pytest.raises(BundleError, match="safetensors"):
        arrays.loads(b"\xff" * 20, "t")


def test_hidden_bundle_predicts_through_the_arrays(tmp_path):
    path = make_hidden_bundle(tmp_path, probe="mlp_clf")
    b = load_bundle(path)
    assert b.manifest["arrays"]["spec"]["kind"] == "mlp_clf"
    texts = ["Ich bin hier.", "Das ist ein langer Satz mit vielen Wörtern."]
    assert Predictor.load(path).predict(texts) == Predictor.load(path, arrays=False).predict(texts)


def test_ngram_spec_names_no_regular_expression_of_its_own():
    est = NgramClassifier(min_df=1).fit(TEXTS, LABELS)
    spec, tensors = export(est)
    word = [i for i, p in enumerate(spec["parts"]) if p["analyzer"] == "word"][0]
    spec["parts"][word]["token_pattern"] = "(a+)+$"  # catastrophic backtracking
    with pytest.raises(BundleError, match="token_pattern"):
        arrays.build(spec, tensors, "t")

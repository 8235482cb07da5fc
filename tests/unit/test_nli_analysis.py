"""NLI analyses on hand-checked tables."""

import numpy as np
import pandas as pd
import pytest

from learnerprobe.nli.analysis import (
    accuracy_by_level,
    confusion,
    correctness_logit,
    family_error_share,
    language_families,
    plot_confusion,
    row_normalise,
)


def test_chi_square_and_cramers_v_on_a_hand_computed_table():
    # A1: 8 correct, 2 wrong; B1: 2 correct, 8 wrong. Expected counts are all 5, so
    # chi2 = 4 * (3^2 / 5) = 7.2 and V = sqrt(7.2 / (20 * 1)) = 0.6.
    levels = ["A1"] * 10 + ["B1"] * 10
    correct = [True] * 8 + [False] * 2 + [True] * 2 + [False] * 8
    res = accuracy_by_level(correct, levels, order=["A1", "A2", "B1"])
    assert res["chi2"] == pytest.approx(7.2)
    assert res["cramers_v"] == pytest.approx(0.6)
    assert res["dof"] == 1
    assert res["p_value"] == pytest.approx(0.00729, abs=1e-4)
    per = res["per_level"].set_index("level")
    assert list(per.index) == ["A1", "B1"]  # A2 has no texts
    assert per.loc["A1", "accuracy"] == pytest.approx(0.8)
    assert per.loc["B1", "n"] == 10


def test_family_share_counts_errors_inside_a_family():
    y_true = ["Spanish", "Spanish", "Russian", "Arabic", "Klingon"]
    y_pred = ["Portuguese", "Russian", "Polish", "Arabic", "Spanish"]
    labels = ["Spanish", "Portuguese", "Russian", "Polish", "Arabic", "Klingon"]
    r = family_error_share(y_true, y_pred, labels=labels)
    assert r["n_errors"] == 4 and r["n_unknown"] == 1  # Klingon has no family
    assert r["n_within_family"] == 2
    assert r["share"] == pytest.approx(2 / 3)
    # Each known error: 1 of the 4 other family-known labels shares the family.
    assert r["chance_share"] == pytest.approx(0.25)


def test_family_table_covers_the_corpora_l1s():
    fam = language_families()
    for l1 in ["Russian", "Polish", "Spanish", "Arabic", "Turkish", "English", "Hungarian",
               "French", "Portuguese", "Mandarin", "Japanese", "Korean", "German", "Italian"]:
        assert l1 in fam, l1
    assert fam["Russian"] == fam["Polish"] == "Slavic"
    assert fam["Hungarian"] == "Uralic" and fam["Turkish"] == "Turkic"


def test_confusion_and_heatmaps(tmp_path):
    cm = confusion(["a", "a", "b", "c"], ["a", "b", "b", "a"], ["a", "b", "c"])
    assert cm.loc["a", "a"] == 1 and cm.loc["a", "b"] == 1 and cm.loc["c", "a"] == 1
    norm = row_normalise(cm)
    np.testing.assert_allclose(norm.loc["a"].values, [0.5, 0.5, 0.0])
    for n in (False, True):
        p = plot_confusion(cm, tmp_path / f"cm{n}.png", title="t", normalise=n)
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_logit_level_effect_vanishes_when_length_explains_it():
    # Correctness depends only on length; higher levels write longer texts.
    rng = np.random.default_rng(0)
    n = 1500
    level = rng.integers(0, 5, n)
    length = np.exp(3 + 0.4 * level + rng.normal(0, 0.4, n))
    p = 1 / (1 + np.exp(-(-6 + 1.6 * np.log1p(length))))
    correct = rng.random(n) < p
    df = correctness_logit(correct, level, length).set_index(["model", "term"])
    alone = df.loc[("level", "level")]
    ctrl = df.loc[("level+log_length", "level")]
    assert alone["coef"] > 0.3 and alone["p_value"] < 1e-6
    assert abs(ctrl["coef"]) < alone["coef"] / 3 and ctrl["p_value"] > 0.01
    assert df.loc[("level+log_length", "log_length"), "p_value"] < 1e-6
    assert isinstance(df, pd.DataFrame)

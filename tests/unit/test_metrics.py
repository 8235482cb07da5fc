"""Metrics: hand-checked QWK, agreement with sklearn/scipy, bootstrap behaviour, residuals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, f1_score, top_k_accuracy_score

from learnerprobe.evaluation import metrics as M
from learnerprobe.evaluation.residuals import residual_analysis


def test_qwk_hand_computed_3x3():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    # Confusion O (rows true): [[1,1,0],[0,2,0],[1,0,1]]; weights (i-j)^2.
    # Observed weighted disagreement: 1*1 (0->1) + 4*1 (2->0) = 5.
    # Row sums 2,2,2; column sums 2,3,1; E = r c' / 6:
    #   [[2/3,1,1/3],[2/3,1,1/3],[2/3,1,1/3]]; weighted: 1*1 + 4*1/3 + 1*2/3 + 1*1/3 + 4*2/3 + 1*1
    #   = 1 + 4/3 + 2/3 + 1/3 + 8/3 + 1 = 7.
    # kappa = 1 - 5/7 = 2/7.
    assert M.qwk(y_true, y_pred, labels=3) == pytest.approx(2 / 7)
    assert cohen_kappa_score(y_true, y_pred, weights="quadratic") == pytest.approx(2 / 7)


def test_qwk_matches_sklearn_on_random_cases():
    rng = np.random.default_rng(1)
    for _ in range(50):
        k = int(rng.integers(2, 7))
        n = int(rng.integers(5, 80))
        yt = rng.integers(0, k, n)
        yp = np.clip(yt + rng.integers(-2, 3, n), 0, k - 1)
        ref = cohen_kappa_score(yt, yp, weights="quadratic", labels=np.arange(k))
        if np.isnan(ref):
            continue
        assert M.qwk(yt, yp, labels=k) == pytest.approx(ref, abs=1e-12)


def test_qwk_edge_cases():
    assert M.qwk([2, 2, 2], [2, 2, 2], labels=5) == 1.0  # sklearn gives NaN here
    assert M.qwk([1, 1, 1], [0, 1, 2], labels=3) == pytest.approx(0.0)
    assert M.qwk([0, 1, 2], [2, 1, 0], labels=3) == pytest.approx(-1.0)


def test_score_all_ordinal_against_references():
    rng = np.random.default_rng(2)
    yt = rng.integers(0, 5, 300)
    yp = np.clip(yt + rng.integers(-2, 3, 300), 0, 4)
    s = M.score_all(yt, yp, labels=5)
    assert set(s) == set(M.ORDINAL_METRICS)
    assert s["qwk"] == pytest.approx(cohen_kappa_score(yt, yp, weights="quadratic"))
    assert s["accuracy"] == pytest.approx(np.mean(yt == yp))
    assert s["adjacent_accuracy"] == pytest.approx(np.mean(np.abs(yt - yp) <= 1))
    assert s["mae"] == pytest.approx(np.mean(np.abs(yt - yp)))
    assert s["macro_f1"] == pytest.approx(f1_score(yt, yp, average="macro"))
    assert s["spearman"] == pytest.approx(spearmanr(yt, yp).statistic)
    assert M.score_all(yt, yp, n_classes=5) == s


def test_score_all_nominal_topk_and_per_class():
    rng = np.random.default_rng(3)
    labels = ["de", "es", "fr", "it", "pl", "ru", "zh"]
    proba = rng.dirichlet(np.ones(7), 200)
    yt = rng.integers(0, 7, 200)
    pred = proba.argmax(1)
    s = M.score_all(np.array(labels)[yt], np.array(labels)[pred], proba=proba, task="nominal",
                    labels=labels, per_class=True)
    for k in (1, 3, 5):
        assert s[f"top{k}"] == pytest.approx(top_k_accuracy_score(yt, proba, k=k,
                                                                  labels=np.arange(7)))
    assert s["top1"] == pytest.approx(s["accuracy"])
    assert s["macro_f1"] == pytest.approx(f1_score(yt, pred, average="macro"))
    assert s["f1/de"] == pytest.approx(f1_score(yt, pred, average=None, labels=[0])[0])
    # top-k with k >= K is trivially 1 and is left out.
    s3 = M.score_all([0, 1, 2], [0, 1, 1], proba=np.eye(3), task="nominal")
    assert "top3" not in s3 and "top5" not in s3


def test_bootstrap_matches_sklearn_per_resample():
    rng = np.random.default_rng(4)
    yt = rng.integers(0, 4, 60)
    yp = np.clip(yt + rng.integers(-1, 2, 60), 0, 3)
    idx = M.bootstrap_indices(60, n_boot=25, seed=7)
    boot = M._resampled(yt, yp, 4, ["qwk", "macro_f1", "spearman"], idx, None)
    for b in range(25):
        t, p = yt[idx[b]], yp[idx[b]]
        assert boot["qwk"][b] == pytest.approx(
            cohen_kappa_score(t, p, weights="quadratic", labels=np.arange(4)))
        assert boot["macro_f1"][b] == pytest.approx(f1_score(t, p, average="macro"))
        assert boot["spearman"][b] == pytest.approx(spearmanr(t, p).statistic)


def test_bootstrap_ci_contains_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(5)

    def sample(n):
        yt = rng.integers(0, 5, n)
        return yt, np.clip(yt + rng.integers(-1, 2, n), 0, 4)

    widths = []
    for n in (50, 500, 5000):
        yt, yp = sample(n)
        res = M.bootstrap_all(yt, yp, labels=5, n_boot=500, seed=0)
        for name, (value, lo, hi) in res.items():
            assert lo <= value <= hi, (name, n)
        widths.append(res["qwk"][2] - res["qwk"][1])
        lo, hi = M.bootstrap_ci(yt, yp, "qwk", labels=5, n_boot=500, seed=0)
        assert (lo, hi) == pytest.approx(res["qwk"][1:])
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < 0.03


def test_paired_bootstrap_diff():
    rng = np.random.default_rng(6)
    yt = rng.integers(0, 5, 400)
    good = np.clip(yt + rng.integers(-1, 2, 400), 0, 4)
    bad = rng.integers(0, 5, 400)
    diff, lo, hi = M.paired_bootstrap_diff(yt, good, bad, "qwk", labels=5, n_boot=500)
    assert diff == pytest.approx(M.qwk(yt, good, labels=5) - M.qwk(yt, bad, labels=5))
    assert 0 < lo <= diff <= hi
    d0, lo0, hi0 = M.paired_bootstrap_diff(yt, good, good, "accuracy", labels=5, n_boot=200)
    assert d0 == lo0 == hi0 == 0.0


def test_bootstrap_speed_many_cells():
    import time

    rng = np.random.default_rng(7)
    yt = rng.integers(0, 5, 1800)
    yp = np.clip(yt + rng.integers(-1, 2, 1800), 0, 4)
    t0 = time.perf_counter()
    M.bootstrap_all(yt, yp, labels=5, n_boot=1000)
    assert time.perf_counter() - t0 < 5.0  # ~0.3 s here; sklearn per resample takes ~10x longer


def test_unknown_label_is_a_clear_error():
    with pytest.raises(ValueError, match="not among labels"):
        M.qwk([0, 1, 7], [0, 1, 1], labels=3)


def test_residuals_collapse_vs_perfect():
    yt = np.repeat(np.arange(5), 40)
    train = np.repeat(np.arange(5), [10, 30, 80, 50, 30])
    perfect = residual_analysis(yt, yt, n_classes=5, train_labels=train)
    flat = residual_analysis(yt, np.full_like(yt, 2), n_classes=5, train_labels=train)
    assert perfect["collapse"] == pytest.approx(0.0)
    assert flat["collapse"] == pytest.approx(1.0)
    assert perfect["js"]["pred_true"] == pytest.approx(0.0)
    assert flat["js"]["pred_true"] > 0.5
    assert flat["entropy"]["pred"] == 0.0
    assert perfect["entropy"]["true"] == pytest.approx(np.log2(5))
    # Regression to the mean: low levels over-predicted, high levels under-predicted.
    assert flat["mean_signed_error"].tolist() == [2, 1, 0, -1, -2]
    assert np.allclose(perfect["mean_signed_error"], 0)
    # Predictions that follow the training prior (argmax class 2) sit nearer the prior.
    assert flat["prior_pull"] > 0.5  # the training prior peaks at level 2 too
    rows = flat["rows"]
    assert {"metric", "level", "value"} <= set(rows[0])
    assert any(r["metric"] == "collapse" and r["value"] == pytest.approx(1.0) for r in rows)


def test_residuals_prior_pull_detects_copying_the_prior():
    rng = np.random.default_rng(8)
    yt = np.repeat(np.arange(5), 40)  # uniform test set
    train = np.repeat(np.arange(5), [5, 60, 100, 30, 5])
    copy_prior = rng.permutation(np.repeat(np.arange(5), [5, 60, 100, 30, 5]))
    res = residual_analysis(yt, copy_prior, n_classes=5, train_labels=train,
                            labels=["A1", "A2", "B1", "B2", "C"])
    assert res["prior_pull"] > 0.95  # JS(pred, prior) = 0: predictions are the prior
    assert res["collapse"] == pytest.approx(1.0, abs=0.2)
    assert {r["level"] for r in res["rows"]} >= {"A1", "C", "all"}

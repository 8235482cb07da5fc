"""Conformal sets (evaluation.conformal), ECE (evaluation.reliability) and the study's
coverage rows (evaluation.trust_rows)."""

from __future__ import annotations

import numpy as np
import pytest

from learnerprobe.evaluation import conformal
from learnerprobe.evaluation.reliability import ece, reliability_bins
from learnerprobe.evaluation.results import Pooled
from learnerprobe.evaluation.trust_rows import fold_sets, trust_rows


def _data(n: int, K: int, seed: int, shift: float = 0.0):
    """Probabilities from a softmax around the true level (noisy), as a calibrated-ish model."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    centre = y + rng.normal(shift, 0.8, n)
    logits = -((np.arange(K)[None] - centre[:, None]) ** 2)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), y


@pytest.mark.parametrize("kind", ["ordinal", "nominal"])
def test_numpy_sets_equal_crepes(kind):
    p, y = _data(300, 5, 0)
    cal = conformal.true_scores(p[:150], y[:150], kind)
    a = conformal.label_scores(p[150:], kind)
    for cov in (0.5, 0.8, 0.9, 0.95):
        np.testing.assert_array_equal(conformal.sets(cal, a, cov),
                                      conformal.crepes_sets(cal, a, cov))


def test_ordinal_sets_are_ranges_and_nominal_need_not_be():
    p = np.array([[0.45, 0.05, 0.45, 0.05]])
    o = conformal.sets(np.array([0.6] * 9), conformal.label_scores(p, "ordinal"), 0.85)[0]
    assert o.tolist() == [True, True, True, False]  # the gap at level 1 is filled
    n = conformal.sets(np.array([0.6] * 9), conformal.label_scores(p, "nominal"), 0.85)[0]
    assert n.tolist() == [True, False, True, False]
    p2, _ = _data(500, 6, 3)
    for row in conformal.sets(np.linspace(0, 1, 50), conformal.label_scores(p2, "ordinal"), 0.8):
        on = np.flatnonzero(row)
        assert on.size == 0 or on[-1] - on[0] + 1 == on.size


@pytest.mark.parametrize("kind", ["ordinal", "nominal"])
def test_exchangeable_coverage_near_nominal_and_shift_breaks_it(kind):
    p, y = _data(4000, 5, 1)
    s = conformal.split_conformal(p[:2000], y[:2000], p[2000:], kind, 0.9)
    cov, size = conformal.coverage_and_size(s, y[2000:])
    assert abs(cov - 0.9) < 0.02 and 1 <= size < 5
    ps, ys = _data(2000, 5, 2, shift=1.5)  # texts unlike the calibration texts
    cov_s, _ = conformal.coverage_and_size(conformal.split_conformal(p[:2000], y[:2000], ps,
                                                                     kind, 0.9), ys)
    assert cov_s < 0.85


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.9", True, float("nan")])
def test_coverage_outside_open_interval_refused(bad):
    with pytest.raises(ValueError):
        conformal.check_coverage(bad)


def test_ece_zero_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1, 20000)
    hit = rng.uniform(size=conf.size) < conf
    y = np.where(hit, 0, 1)
    p = np.stack([conf, 1 - conf], 1)
    assert ece(p, y) < 0.02
    over = np.stack([np.full(1000, 0.95), np.full(1000, 0.05)], 1)
    y2 = (np.arange(1000) % 2).astype(int)  # right half the time
    assert ece(over, y2) == pytest.approx(0.45, abs=1e-9)
    r = reliability_bins(over, y2)
    assert r["count"].sum() == 1000 and r["count"][-1] == 1000


def test_trust_rows_calibrate_each_fold_on_its_own_validation_texts():
    p, y = _data(1200, 4, 5)
    idx = np.arange(600, 1200)
    fold = np.repeat(["a", "b"], 300)
    cal_idx = np.arange(600)
    cal_fold = np.repeat(["a", "b"], 300)
    pooled = Pooled({"model": "m", "mode": "tuned", "seed": 0, "protocol": "iid", "probe": "x",
                     "layer": "3"}, idx, p[idx].argmax(1), p[idx], fold, np.ones(600, bool),
                    y, cal_idx=cal_idx, cal_proba=p[cal_idx], cal_fold=cal_fold)
    corpora = np.array(["c"] * 1200)
    rows = {r["metric"]: r for r in trust_rows(pooled, y, corpora, task="cefr", kind="ordinal")}
    assert set(rows) == {"coverage", "set_size", "ece"}
    assert abs(rows["coverage"]["value"] - 0.9) < 0.05
    assert rows["coverage"]["ci_low"] < rows["coverage"]["value"] < rows["coverage"]["ci_high"]
    # fold b's sets use fold b's calibration texts only: spoil them and only b changes
    bad = p[cal_idx].copy()
    bad[300:] = bad[300:, ::-1]
    spoiled = Pooled(pooled.key, idx, pooled.pred, pooled.proba, fold, pooled.shared, y,
                     cal_idx=cal_idx, cal_proba=bad, cal_fold=cal_fold)
    s0, s1 = fold_sets(pooled, y, "ordinal"), fold_sets(spoiled, y, "ordinal")
    assert (s0[:300] == s1[:300]).all() and not (s0[300:] == s1[300:]).all()
    no_cal = Pooled(pooled.key, idx, pooled.pred, pooled.proba, fold, pooled.shared, y)
    assert {r["metric"] for r in trust_rows(no_cal, y, corpora, task="cefr",
                                            kind="ordinal")} == {"ece"}


def test_report_sections_show_coverage_gap_and_reliability():
    from learnerprobe.evaluation.results import results_frame
    from learnerprobe.study.report_trust import coverage_table, trust_sections

    p, y = _data(1600, 4, 7)
    ps, _ = _data(1600, 4, 8, shift=1.2)
    corpora = np.array(["a"] * 800 + ["b"] * 800)
    pooled, rows = [], []
    for proto, test_p in (("iid", p), ("loco", ps)):
        q = Pooled({"model": "m", "mode": "tuned", "seed": 0, "protocol": proto, "probe": "x",
                    "layer": "selected"}, np.arange(800, 1600), test_p[800:].argmax(1),
                   test_p[800:], np.repeat(["0"], 800), np.ones(800, bool), y,
                   selected_layers=[3], cal_idx=np.arange(800), cal_proba=p[:800],
                   cal_fold=np.repeat(["0"], 800))
        pooled.append(q)
        rows += trust_rows(q, y, corpora, task="cefr", kind="ordinal")
    df = results_frame(rows)
    tab = coverage_table(df)
    iid = tab[(tab.protocol == "iid") & (tab.test_corpus == "all")].iloc[0]
    loco = tab[(tab.protocol == "loco") & (tab.test_corpus == "all")].iloc[0]
    assert abs(iid.gap_pp) < 4 and loco.gap_pp < -5
    secs = trust_sections(df, pooled, y)
    assert "coverage-table" in secs[0].html and "LOCO" in secs[0].html
    assert secs[1].figures and secs[1].figures[0][1][:4] == b"\x89PNG"


def test_sets_are_never_empty_and_keep_the_top_label():
    p = np.array([[0.1, 0.7, 0.2], [0.3, 0.3, 0.4]])
    raw = np.zeros((2, 3), dtype=bool)
    out = conformal.never_empty(raw, p)
    assert out.tolist() == [[False, True, False], [False, False, True]]
    full = np.ones((2, 3), dtype=bool)
    assert conformal.never_empty(full, p).all()


def test_cells_keep_validation_probabilities_through_the_cache(tmp_path):
    """A cached cell reloads its validation probabilities; one without (refit, regressors)
    reloads as such instead of being recomputed every run; one cached before coverage rows
    existed is recomputed once."""
    from learnerprobe.evaluation.cell_cache import write_npz
    from learnerprobe.study.runner import CellResult, load_cell, save_cell

    vp = np.random.default_rng(0).random((2, 5, 3)).astype(np.float32)
    r = CellResult(np.zeros((2, 4), np.int64), np.zeros((2, 4, 3), np.float32), np.zeros(2), 1,
                   0.5, val_proba=vp)
    save_cell(tmp_path / "a.npz", r)
    np.testing.assert_array_equal(load_cell(tmp_path / "a.npz").val_proba, vp)
    save_cell(tmp_path / "b.npz", CellResult(r.pred, None, r.val_scores, 1, 0.5))
    again = load_cell(tmp_path / "b.npz")
    assert again is not None and again.val_proba is None
    write_npz(tmp_path / "old.npz", {"pred": r.pred, "proba": r.proba, "has_proba": True,
                                     "val_scores": r.val_scores, "selected": 1, "seconds": 0.5})
    assert load_cell(tmp_path / "old.npz") is None

